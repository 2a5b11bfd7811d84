//! `pop executor` (spec §5.3): runs the one agenda its environment
//! carries — as an executor pod a remote puller started, or by hand — and
//! reports through the ResourcePool service of `POP_SERVER` with the
//! scoped `POP_TOKEN`:
//!
//! * the agenda as the payload (`PAYLOAD`, or compressed segments),
//!   `LAST_PROGRESS` the AgendaProgress it resumes from, if any;
//! * `POP_LEASE`: the lease of its delivery (getAgenda's JSON), held by
//!   `POP_PULLER`, extended every third of `POP_LEASE_MS`.
//!
//! It logs `HandlerComplete` last, and then, inside a pod, deletes its own
//! pod unless `POP_EXECUTOR_REAP_SELF=false`.

use std::time::Duration;

use anyhow::Context as _;
use pop_core::Lease;

use super::run::{RemoteDelivery, RemoteLaunch, run_remote};
use super::service::ResourcePoolClient;
use crate::cli::ExecutorOptions;

/// The environment variable carrying the delivery's lease.
pub const LEASE_ENV: &str = "POP_LEASE";

/// Runs the agenda; `Ok(false)` when it could not be run to an outcome.
pub async fn execute(options: ExecutorOptions) -> anyhow::Result<bool> {
    let outcome = run(&options).await;
    match &outcome {
        Ok(()) => println!("executor finished: the agenda's outcome is recorded"),
        Err(e) => println!("ERROR executor stopped without recording an outcome: {e:#}"),
    }
    // The follower's end-of-log marker (spec §5.3.1 step 8).
    println!("{}", pop_handler::END_OF_LOG);
    if options.reap_self {
        reap_self().await;
    }
    Ok(outcome.is_ok())
}

async fn run(options: &ExecutorOptions) -> anyhow::Result<()> {
    let inputs = pop_handler::Inputs::from_process().context("cannot read the executor's inputs")?;
    let agenda = inputs
        .payload
        .context("no agenda: PAYLOAD (or POP_COMPRESSED_PAYLOAD_0..N) is empty")?;
    let lease_text = std::env::var(LEASE_ENV).with_context(|| format!("{LEASE_ENV} is not set"))?;
    let lease: Lease = serde_json::from_str(&lease_text).with_context(|| format!("{LEASE_ENV} does not parse"))?;
    let client = ResourcePoolClient::new(&options.server, &options.token);
    let lease_time = Duration::from_millis(options.lease_ms);
    let launch = RemoteLaunch {
        registry: std::sync::Arc::new(super::load_registry(options.registry.as_deref())?),
        runs_dir: options.runs_dir.join(&lease.agenda_id),
        kubernetes_namespace: options.kubernetes.then(|| options.kubernetes_namespace.clone()),
    };
    let context = launch.context(lease_time / 3).await?;
    let delivery = RemoteDelivery {
        lease,
        agenda,
        progress: inputs.last_progress,
    };
    run_remote(context, client, &options.puller, lease_time, delivery).await
}

#[cfg(feature = "kubernetes")]
async fn reap_self() {
    if let Err(e) = pop_kube::executors::delete_own_pod().await {
        tracing::warn!(error = %e, "the executor pod could not delete itself; the pod reaper will");
    }
}

#[cfg(not(feature = "kubernetes"))]
async fn reap_self() {}
