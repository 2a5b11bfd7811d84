//! `pop serve`: open the store, authenticate, serve the API until SIGINT or
//! SIGTERM, then finish in-flight requests and flush the store.

use std::sync::Arc;

use anyhow::Context as _;
use pop_ports::Launcher;
use pop_store::{Clock, Queue, StoreQueue, SystemClock};
use pop_wasm::{Limits, Runtime, RuntimeConfig};
use std::time::Duration;
use tokio::net::TcpListener;

use crate::cli::{JobOptions, ServeOptions};
use pop_app::jobs::{JobSettings, Jobs, JobsConfig};
use pop_app::plugins::PluginHost;
use pop_app::runner::{Launchers, Runner, RunnerConfig};
use pop_app::scheduler::SchedulerPorts;
use pop_app::{AppState, Engines};
use pop_handlers_registry::Registry;
use pop_process_launcher::ProcessLauncher;

/// Directory of compiled plugin artifacts inside the data directory.
pub const WASM_CACHE_DIR: &str = "wasm-cache";
/// Directory of process handlers' report files inside the data directory.
pub const RUNS_DIR: &str = "runs";
/// The node id file inside the data directory.
pub const NODE_ID_FILE: &str = "node-id";
/// The handlers registry looked for inside the data directory.
pub const REGISTRY_FILE: &str = "registry.json";
/// How long shutdown waits for the scheduler's turns in progress.
const SCHEDULER_STOP_BOUND: Duration = Duration::from_secs(5);
/// How long shutdown waits for running agendas before giving them back.
pub const DRAIN_BOUND: Duration = Duration::from_secs(10);

pub async fn serve(options: ServeOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("cannot create data directory {}", options.data_dir.display()))?;
    let auth = crate::identity::open(&options)?;
    let engines_opened = crate::backend::open(&options).await?;
    let (store, blobs) = (engines_opened.store, engines_opened.blobs);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // The insight queues live in the same file, as their own table.
    let queue: Arc<dyn Queue> = Arc::new(StoreQueue::new(store.clone(), clock.clone()));
    // Compiled plugins are kept next to the data so restarts skip Cranelift.
    let limits = Limits {
        deadline: Duration::from_millis(options.plugin_deadline_ms),
        ..Limits::default()
    };
    let config = RuntimeConfig {
        limits,
        cache_dir: Some(options.data_dir.join(WASM_CACHE_DIR)),
        ..Default::default()
    };
    let runtime = Runtime::new(config)?;
    let blobs_for_jobs = blobs.clone();
    let plugins = PluginHost::start(Arc::new(runtime), store.clone(), blobs, clock.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the plugin host: {e}"))?;
    let wake_scheduler = Arc::new(tokio::sync::Notify::new());
    let released = Arc::new(tokio::sync::Notify::new());
    let ports = SchedulerPorts {
        store: store.clone(),
        queue: queue.clone(),
        clock: clock.clone(),
        released: released.clone(),
    };
    let scheduler = pop_app::scheduler::spawn(
        ports,
        plugins.clone(),
        std::time::Duration::from_millis(options.schedule_interval_ms),
        wake_scheduler.clone(),
    );
    let registry = Arc::new(load_registry(&options)?);
    // The embedded resource pool adds local processes to the resident and
    // wasm launchers the application brings.
    let processes: Arc<dyn Launcher> = Arc::new(ProcessLauncher::new(
        registry.clone(),
        options.data_dir.join(RUNS_DIR),
        clock.clone(),
    ));
    let mut detached = vec![processes.clone()];
    if let Some(pods) = pod_launcher(&options, registry.clone(), clock.clone()).await? {
        detached.push(pods);
    }
    let launchers = Launchers::embedded(
        store.clone(),
        clock.clone(),
        plugins.clone(),
        registry,
        detached.clone(),
    );
    let runner = Runner {
        store: store.clone(),
        queue: queue.clone(),
        clock: clock.clone(),
        launchers,
        config: runner_config(&options)?,
        wake_scheduler,
        released,
    };
    let engines = Engines {
        store: store.clone(),
        queue: queue.clone(),
        clock: clock.clone(),
    };
    let jobs = Jobs::new(store.clone(), queue.clone(), clock.clone(), jobs_config(&options.jobs))
        .with_launchers(detached)
        .with_blobs(blobs_for_jobs);
    let jobs = Arc::new(jobs);
    let state = AppState::new(engines, auth, plugins.clone(), runner.wake_scheduler.clone()).with_jobs(jobs.clone());
    let puller = pop_app::runner::spawn(Arc::new(runner));
    let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
    let job_loops = pop_app::jobs::spawn(jobs, jobs_stopped);

    let listener = TcpListener::bind(&options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, store = %engines_opened.description, "pop serving");
    // Tests and tools read this line to find the port.
    println!("pop listening on http://{address}");
    axum::serve(listener, pop_http::router(state.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("pop stopped accepting requests; flushing the store");
    // A job cut between two of its conditional writes leaves a state the
    // next run moves on.
    let _ = stop_jobs.send(true);
    let _ = job_loops.await;
    // No more releases; the turns in progress finish (a cut one is
    // re-driven by the next scheduler).
    scheduler.stop(SCHEDULER_STOP_BOUND).await;
    // SIGTERM drains: running agendas get a bound to finish, the rest are
    // given back to the queue for another puller (nothing stays EXECUTING
    // with no owner: the next delivery takes over its fencing token).
    let unfinished = puller.drain(DRAIN_BOUND).await;
    if unfinished > 0 {
        tracing::info!(unfinished, "released the leases of unfinished agendas");
    }
    drop(state);
    Ok(())
}

/// The pod launcher when `--kubernetes` asks for it.
#[cfg(feature = "kubernetes")]
async fn pod_launcher(
    options: &ServeOptions,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Option<Arc<dyn Launcher>>> {
    if !options.kubernetes {
        return Ok(None);
    }
    let config = pop_kube::PodLauncherConfig {
        namespace: options.kubernetes_namespace.clone(),
        reap_namespaces: options.kubernetes_reap_namespaces.clone(),
        zone: options.kubernetes_zone.clone(),
    };
    let launcher = pop_kube::PodLauncher::connect(registry, clock, config).await?;
    tracing::info!(
        namespace = options.kubernetes_namespace,
        "podConfig operations run as Kubernetes pods"
    );
    Ok(Some(Arc::new(launcher)))
}

/// Without the `kubernetes` feature, `--kubernetes` is refused (the
/// embedded build compiles no Kubernetes client).
#[cfg(not(feature = "kubernetes"))]
async fn pod_launcher(
    options: &ServeOptions,
    _registry: Arc<Registry>,
    _clock: Arc<dyn Clock>,
) -> anyhow::Result<Option<Arc<dyn Launcher>>> {
    if options.kubernetes {
        anyhow::bail!("this pop was built without Kubernetes support: build it with `--features kubernetes`");
    }
    Ok(None)
}

/// The handlers registry: `--registry`, else `registry.json` in the data
/// directory, else the built-in one (`sample` runs with no setup).
fn load_registry(options: &ServeOptions) -> anyhow::Result<Registry> {
    let path = options
        .registry
        .clone()
        .unwrap_or_else(|| options.data_dir.join(REGISTRY_FILE));
    let registry = if options.registry.is_some() {
        Registry::load(&path)?
    } else {
        Registry::load_or_builtin(&path)?
    };
    let types: Vec<&str> = registry.operation_types().collect();
    tracing::info!(registry = %path.display(), types = ?types, "handlers registry loaded");
    Ok(registry)
}

fn jobs_config(options: &JobOptions) -> JobsConfig {
    let every = |interval_ms: u64, batch: usize| JobSettings {
        interval: Duration::from_millis(interval_ms),
        batch,
        max_run: Duration::from_millis(options.job_max_run_ms),
        page_pause: Duration::from_millis(options.job_page_pause_ms),
        log_only: options.jobs_log_only,
    };
    JobsConfig {
        retry: every(options.retry_interval_ms, options.retry_batch),
        reclaim: every(options.reclaim_interval_ms, options.reclaim_batch),
        reap: every(options.reap_interval_ms, options.reap_batch),
        reclaim_after: Duration::from_millis(options.reclaim_after_ms),
        max_deliveries: options.max_deliveries,
        retention: Duration::from_millis(options.retention_ms),
    }
}

fn runner_config(options: &ServeOptions) -> anyhow::Result<RunnerConfig> {
    Ok(RunnerConfig {
        puller_id: format!("embedded@{}", node_id(&options.data_dir)?),
        default_execution_limit: options.execution_limit,
        operation_parallelism: options.operation_parallelism,
        lease: Duration::from_millis(options.lease_ms),
        heartbeat: Duration::from_millis(options.heartbeat_ms.min(options.lease_ms / 3).max(10)),
        claim_wait: Duration::from_secs(1),
    })
}

/// This data directory's node id, created on first start: the name its
/// puller holds leases under, the same after a restart.
fn node_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
            Ok(id)
        }
    }
}

pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
