//! The embedded resource pool: what runs submitted agendas inside `pop serve`.
//!
//! * [`puller`]: one loop claims queued agendas of every insight under a
//!   lease, up to each insight's `executionLimit` at once, and starts an
//!   executor task per agenda (POP: a puller pod per insight launching an
//!   executor pod per agenda).
//! * [`executor`]: drives `pop_core::execution::ExecutionPlan` for one
//!   agenda: operations in parallel as their references are met, fail-fast,
//!   resume from recorded progress, generators, progress roll-up.
//! * [`recorder`]: the executor's only writer. Every batch it writes carries
//!   the lease renewal as a guard, so an executor that lost its lease (it
//!   expired and the agenda went to someone else, or a rerun cleared it)
//!   cannot record anything more; the last batch removes the queue entry
//!   together with the final progress (acknowledgement).
//! * [`progress`]: running operations' reports, coalesced (latest wins) and
//!   bounded, written a few times a second at most.
//! * [`launch`]: operation type → resident handler, local process or wasm
//!   component (the handlers registry), each returning the final
//!   OperationProgress and, on success, the output.
//!
//! Crash safety: the queue entry stays leased to this server's puller id
//! while the agenda runs; at start-up the puller releases what its previous
//! process held, so after a `kill -9` every agenda is delivered again at
//! once and resumes from its recorded progress, skipping succeeded
//! operations. A process handler that finished just before the crash left
//! its report in the runs directory and is adopted, not run again.

mod executor;
mod launch;
mod progress;
mod puller;
mod recorder;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pop_handlers_registry::Registry;
use pop_store::Store;
use tokio::sync::Notify;

use crate::plugins::PluginHost;

pub use puller::spawn;

/// How the embedded resource pool runs.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Lease owner name of this server's puller; stable across restarts of
    /// the same data directory so a restart can take back its leases.
    pub puller_id: String,
    /// Agendas run at once per insight without an `executionLimit`.
    pub default_execution_limit: usize,
    /// Operations of one agenda run at once (POP's conductor pool, 50).
    pub operation_parallelism: usize,
    /// Lease length; renewed with every write and at least every `heartbeat`.
    pub lease: Duration,
    /// Progress heartbeat (POP re-sent progress every 5 s).
    pub heartbeat: Duration,
    /// How long the puller sleeps when no insight has work.
    pub idle_poll: Duration,
    /// Where process handlers report (one file per operation run).
    pub runs_dir: PathBuf,
}

impl RunnerConfig {
    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }
}

/// What every executor shares.
pub struct Runner {
    pub store: Arc<dyn Store>,
    pub plugins: Arc<PluginHost>,
    pub registry: Arc<Registry>,
    pub config: RunnerConfig,
    /// Wakes the scheduler loop when claims made room in a queue.
    pub wake_scheduler: Arc<Notify>,
}
