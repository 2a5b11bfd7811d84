//! `pop puller --server URL --insight ID` (spec §5.1): claims the
//! insight's agendas from a POP server (`getAgenda`, leased to this
//! puller) while fewer than the insight's `executionLimit` run, and runs
//! each either in this process (its lease kept alive by the run's
//! heartbeat) or, with `--executor-pods`, as an executor pod of the
//! registry's `executor` entry (which keeps the lease alive itself); then
//! the running count is the insight's executor pods that still run, so a
//! restarted puller counts what its predecessor started. `--health-listen`
//! serves `GET /healthz` for a Deployment's probes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::run::{RemoteDelivery, RemoteLaunch, run_remote};
use super::service::{Claim, ResourcePoolClient};
use crate::cli::PullerOptions;

/// How long running agendas get to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(10);

pub async fn pull(options: PullerOptions) -> anyhow::Result<()> {
    let client = ResourcePoolClient::new(&options.server, &options.token);
    let puller_id = options
        .puller_id
        .clone()
        .unwrap_or_else(|| format!("puller-{}", uuid::Uuid::new_v4()));
    let running = Arc::new(AtomicUsize::new(0));
    if let Some(address) = &options.health_listen {
        serve_health(address, options.insight.clone(), running.clone()).await?;
    }
    let lease_time = Duration::from_millis(options.lease_ms);
    let mut runs = Runs::new(&options, &puller_id, client.clone(), lease_time).await?;
    tracing::info!(
        insight = options.insight,
        puller = puller_id,
        server = client.server(),
        mode = runs.mode(),
        "pulling"
    );
    let poll = Duration::from_millis(options.poll_ms);
    let stop = crate::serve::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let pause = match step(&options, &client, &puller_id, lease_time, &mut runs, &running).await {
            Ok(true) => Duration::ZERO,
            Ok(false) => poll,
            Err(e) => {
                tracing::warn!(error = %e, "pulling failed; trying again");
                poll
            }
        };
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(pause) => {}
            () = runs.finished(), if !pause.is_zero() => {}
        }
    }
    runs.drain().await;
    Ok(())
}

/// One claim while there is room; `true` when agendas were started.
async fn step(
    options: &PullerOptions,
    client: &ResourcePoolClient,
    puller_id: &str,
    lease_time: Duration,
    runs: &mut Runs,
    running: &AtomicUsize,
) -> anyhow::Result<bool> {
    let insight = client.insight(&options.insight).await?;
    let limit = insight["executionLimit"]
        .as_u64()
        .map_or(options.default_execution_limit, |l| {
            usize::try_from(l).unwrap_or(usize::MAX)
        });
    let now_running = runs.running(&options.insight).await?;
    running.store(now_running, Ordering::Relaxed);
    let room = limit.saturating_sub(now_running);
    if room == 0 {
        return Ok(false);
    }
    let claim = client.get_agenda(&options.insight, room, lease_time, puller_id).await?;
    if claim.leases.is_empty() {
        return Ok(false);
    }
    for lease in &claim.leases {
        runs.start(&claim, lease).await;
    }
    Ok(true)
}

/// Where claimed agendas run.
enum Runs {
    InProcess {
        tasks: JoinSet<()>,
        context: pop_app::runner::RunContext,
        client: ResourcePoolClient,
        puller: String,
        lease_time: Duration,
    },
    #[cfg(feature = "kubernetes")]
    Pods(pods::PodRuns),
}

impl Runs {
    async fn new(
        options: &PullerOptions,
        puller: &str,
        client: ResourcePoolClient,
        lease_time: Duration,
    ) -> anyhow::Result<Self> {
        let registry = Arc::new(super::load_registry(options.registry.as_deref())?);
        if options.executor_pods {
            #[cfg(feature = "kubernetes")]
            return Ok(Self::Pods(
                pods::PodRuns::connect(options, puller, client, registry).await?,
            ));
            #[cfg(not(feature = "kubernetes"))]
            anyhow::bail!("--executor-pods needs a pop built with `--features kubernetes`");
        }
        let launch = RemoteLaunch {
            registry,
            runs_dir: options.runs_dir.clone(),
            kubernetes_namespace: options.kubernetes.then(|| options.kubernetes_namespace.clone()),
        };
        Ok(Self::InProcess {
            tasks: JoinSet::new(),
            context: launch.context(lease_time / 3).await?,
            client,
            puller: puller.to_owned(),
            lease_time,
        })
    }

    fn mode(&self) -> &'static str {
        match self {
            Self::InProcess { .. } => "in-process",
            #[cfg(feature = "kubernetes")]
            Self::Pods(_) => "executor pods",
        }
    }

    /// Agendas of `insight_id` running now.
    async fn running(&mut self, _insight_id: &str) -> anyhow::Result<usize> {
        match self {
            Self::InProcess { tasks, .. } => {
                while tasks.try_join_next().is_some() {}
                Ok(tasks.len())
            }
            #[cfg(feature = "kubernetes")]
            Self::Pods(pods) => Ok(pods.active(_insight_id).await?),
        }
    }

    async fn start(&mut self, claim: &Claim, lease: &pop_core::Lease) {
        let (Some(agenda), progress) = claim.parts_of(lease) else {
            tracing::warn!(agenda = lease.agenda_id, "getAgenda leased an agenda it did not send");
            return;
        };
        match self {
            Self::InProcess {
                tasks,
                context,
                client,
                puller,
                lease_time,
            } => {
                let delivery = RemoteDelivery {
                    lease: lease.clone(),
                    agenda,
                    progress,
                };
                let (context, client, puller, lease_time) =
                    (context.clone(), client.clone(), puller.clone(), *lease_time);
                let agenda_id = lease.agenda_id.clone();
                tasks.spawn(async move {
                    if let Err(e) = run_remote(context, client, &puller, lease_time, delivery).await {
                        tracing::warn!(agenda_id, error = %e, "agenda run ended without an outcome; it will be delivered again");
                    }
                });
            }
            #[cfg(feature = "kubernetes")]
            Self::Pods(pods) => pods.start(lease, agenda, progress).await,
        }
    }

    /// Resolves when an in-process run ends (room for the next claim).
    async fn finished(&mut self) {
        match self {
            Self::InProcess { tasks, .. } if !tasks.is_empty() => {
                let _ = tasks.join_next().await;
            }
            _ => std::future::pending().await,
        }
    }

    /// Stop: in-process runs get [`DRAIN`] to finish; what is cut off is
    /// delivered again once its lease runs out. Executor pods run on.
    async fn drain(self) {
        match self {
            Self::InProcess { mut tasks, .. } => {
                let _ = tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
                tasks.abort_all();
            }
            #[cfg(feature = "kubernetes")]
            Self::Pods(_) => {}
        }
    }
}

/// `GET /healthz` on `address`: the insight served and the agendas running.
async fn serve_health(address: &str, insight: String, running: Arc<AtomicUsize>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let router = axum::Router::new().route(
        "/healthz",
        axum::routing::get(move || {
            let body: Value = json!({"status": "ok", "insightId": insight, "running": running.load(Ordering::Relaxed)});
            async move { axum::Json(body) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(())
}

#[cfg(feature = "kubernetes")]
mod pods {
    //! Executor pods of the claimed agendas.

    use std::sync::Arc;

    use pop_core::Lease;
    use pop_handlers_registry::Registry;
    use pop_kube::executors::{ExecutorPods, ExecutorRun};
    use pop_ports::Placement;
    use serde_json::Value;

    use super::super::executor::LEASE_ENV;
    use super::ResourcePoolClient;
    use crate::cli::PullerOptions;

    pub struct PodRuns {
        pods: ExecutorPods,
        client: ResourcePoolClient,
        puller: String,
        lease_ms: u64,
        namespace: String,
        reap_self: bool,
    }

    impl PodRuns {
        pub async fn connect(
            options: &PullerOptions,
            puller: &str,
            client: ResourcePoolClient,
            registry: Arc<Registry>,
        ) -> anyhow::Result<Self> {
            // Without it every claimed agenda would only wait out its lease.
            if !matches!(
                registry.resolve(pop_kube::executors::EXECUTOR_TYPE),
                Ok(pop_handlers_registry::HandlerSpec::Pod(_))
            ) {
                anyhow::bail!("--executor-pods needs an `executor` entry with a podConfig in the handlers registry");
            }
            Ok(Self {
                pods: ExecutorPods::connect(registry, options.kubernetes_namespace.clone()).await?,
                client,
                puller: puller.to_owned(),
                lease_ms: options.lease_ms,
                namespace: options.kubernetes_namespace.clone(),
                reap_self: options.executor_reap_self,
            })
        }

        pub async fn active(&self, insight_id: &str) -> anyhow::Result<usize> {
            Ok(self.pods.active(insight_id).await?)
        }

        pub async fn start(&self, lease: &Lease, agenda: Value, progress: Option<Value>) {
            let text = |field: &str| agenda[field].as_str().unwrap_or_default().to_owned();
            let bound = &agenda["agendaInsight"];
            let namespace = lease.namespace.clone().unwrap_or_else(|| self.namespace.clone());
            let mut env = vec![
                (LEASE_ENV.to_owned(), serde_json::to_string(lease).unwrap_or_default()),
                ("POP_PULLER".to_owned(), self.puller.clone()),
                ("POP_LEASE_MS".to_owned(), self.lease_ms.to_string()),
                ("POP_SERVER".to_owned(), self.client.server().to_owned()),
                ("POP_TOKEN".to_owned(), self.client.token().to_owned()),
                ("POP_KUBERNETES".to_owned(), "true".to_owned()),
                ("POP_KUBERNETES_NAMESPACE".to_owned(), namespace.clone()),
                ("POP_EXECUTOR_REAP_SELF".to_owned(), self.reap_self.to_string()),
            ];
            if let Some(progress) = &progress {
                env.push(("LAST_PROGRESS".to_owned(), progress.to_string()));
            }
            let run = ExecutorRun {
                agenda_id: lease.agenda_id.clone(),
                progress_id: text("progressId"),
                customer_id: text("customerId"),
                cid: text("cid"),
                delivery: lease.deliveries,
                placement: Placement {
                    insight_id: bound["insightId"].as_str().unwrap_or_default().to_owned(),
                    resource_pool_id: bound["resourcePoolId"].as_str().unwrap_or_default().to_owned(),
                    namespace: Some(namespace),
                },
                agenda,
                env,
            };
            match self.pods.start(&run).await {
                Ok(pod) => tracing::info!(agenda = run.agenda_id, pod, "executor pod started"),
                // The lease runs out and the agenda comes back.
                Err(e) => tracing::error!(agenda = run.agenda_id, error = %e, "cannot start the executor pod"),
            }
        }
    }
}
