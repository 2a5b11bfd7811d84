//! One claimed agenda run outside the server: the same executor as `pop
//! serve`'s (`pop_app::runner::run_delivery`), recording through the
//! ResourcePool service ([`RemoteLedger`]), its operations launched by the
//! launchers this process has (local processes, and pods with
//! `--kubernetes`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use pop_app::domain::retry::RetryPolicy;
use pop_app::runner::{Delivery, Launchers, RunContext, run_delivery};
use pop_core::{Agenda, Lease, OperationProgress};
use pop_handlers_registry::Registry;
use pop_ports::{Clock, DocumentLimits, Launcher, Placement, SystemClock};
use pop_process_launcher::ProcessLauncher;
use serde_json::Value;

use super::ledger::RemoteLedger;
use super::service::ResourcePoolClient;

/// Operations of one agenda run at once (POP's conductor pool).
const OPERATION_PARALLELISM: usize = 50;

/// Where a remote process runs operations.
pub struct RemoteLaunch {
    pub registry: Arc<Registry>,
    /// Report files of local handler processes.
    pub runs_dir: std::path::PathBuf,
    /// Pods too, in this namespace unless the lease names one (feature
    /// `kubernetes`).
    pub kubernetes_namespace: Option<String>,
}

impl RemoteLaunch {
    /// The run context: local processes, and pods when asked for.
    pub async fn context(&self, heartbeat: Duration) -> anyhow::Result<RunContext> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut launchers: Vec<Arc<dyn Launcher>> = vec![Arc::new(ProcessLauncher::new(
            self.registry.clone(),
            self.runs_dir.clone(),
            clock.clone(),
        ))];
        if let Some(namespace) = &self.kubernetes_namespace {
            launchers.push(pod_launcher(self.registry.clone(), clock.clone(), namespace).await?);
        }
        Ok(RunContext {
            clock,
            launchers: Launchers::new(launchers, self.registry.clone()),
            operation_parallelism: OPERATION_PARALLELISM,
            heartbeat,
            row_limit: DocumentLimits::ITEM.max_bytes,
        })
    }
}

#[cfg(feature = "kubernetes")]
async fn pod_launcher(
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    namespace: &str,
) -> anyhow::Result<Arc<dyn Launcher>> {
    let config = pop_kube::PodLauncherConfig::new(namespace);
    Ok(Arc::new(pop_kube::PodLauncher::connect(registry, clock, config).await?))
}

#[cfg(not(feature = "kubernetes"))]
async fn pod_launcher(_: Arc<Registry>, _: Arc<dyn Clock>, _: &str) -> anyhow::Result<Arc<dyn Launcher>> {
    anyhow::bail!("this pop was built without Kubernetes support: build it with `--features kubernetes`")
}

/// One delivery as getAgenda handed it out.
pub struct RemoteDelivery {
    pub lease: Lease,
    pub agenda: Value,
    /// The agenda's progress when it ran in part before.
    pub progress: Option<Value>,
}

/// Runs `delivery` to its end through the ResourcePool service.
pub async fn run_remote(
    context: RunContext,
    client: ResourcePoolClient,
    puller: &str,
    lease_time: Duration,
    delivery: RemoteDelivery,
) -> anyhow::Result<()> {
    let RemoteDelivery {
        lease,
        agenda,
        progress,
    } = delivery;
    let agenda: Agenda = serde_json::from_value(agenda).context("the delivered agenda does not parse")?;
    let progress_id = agenda
        .progress_id
        .clone()
        .context("the delivered agenda names no progress")?;
    let progress = match progress {
        Some(Value::Object(doc)) => doc,
        _ => pop_ports::Document::new(),
    };
    let rows: Vec<OperationProgress> = match progress.get("operationProgress") {
        Some(rows) => serde_json::from_value(rows.clone()).context("the delivered progress does not parse")?,
        None => Vec::new(),
    };
    let attempts = match lease.attempt {
        Some(attempt) => attempt - 1,
        None => progress.get("attemptsCompleted").and_then(Value::as_i64).unwrap_or(0),
    };
    let bound = agenda.agenda_insight.clone().unwrap_or_default();
    let placement = Placement {
        insight_id: bound.insight_id.unwrap_or_default(),
        resource_pool_id: bound.resource_pool_id.unwrap_or_default(),
        namespace: lease.namespace.clone(),
    };
    let ledger = RemoteLedger::new(client, lease, puller.to_owned(), lease_time, progress_id.clone());
    let delivery = Delivery {
        agenda,
        progress_id,
        attempts,
        retry: RetryPolicy::of(&progress),
        rows,
        placement,
    };
    run_delivery(context, Arc::new(ledger), delivery).await?;
    Ok(())
}
