//! The embedded resource pool: what runs submitted agendas inside `pop serve`.
//!
//! * [`puller`]: one loop claims queued agendas of every insight under a
//!   lease, up to each insight's `executionLimit` at once, and starts an
//!   executor task per agenda (POP: a puller pod per insight launching an
//!   executor pod per agenda).
//! * [`executor`]: drives `pop_core::execution::ExecutionPlan` for one
//!   agenda: operations in parallel as their references are met, fail-fast,
//!   resume from recorded progress, generators, progress roll-up.
//! * [`recorder`]: the executor's only writer. Every batch it writes is
//!   conditional on the delivery's fencing token ([`crate::domain::fence`]), so an executor
//!   that lost its lease (it expired and the agenda went to someone else, or
//!   a rerun reset it) cannot record anything more; after the final
//!   progress it acknowledges the delivery (idempotent).
//! * [`progress`]: running operations' reports, coalesced (latest wins) and
//!   bounded, written a few times a second at most.
//! * [`launch`]: operation type → the first launcher (port
//!   `pop_ports::Launcher`) that accepts it: resident handlers, the local
//!   process launcher the composition root adds, wasm components; each
//!   returns the final OperationProgress and, on success, the output.
//!
//! Crash safety: the queue entry stays leased to this server's puller id
//! while the agenda runs; at start-up the puller releases what its previous
//! process held, so after a `kill -9` every agenda is delivered again at
//! once and resumes from its recorded progress, skipping succeeded
//! operations. Before that, every launcher reaps what the previous process
//! left running; an operation recorded EXECUTING is offered to its
//! launcher for adoption first (a process handler that finished just before
//! the crash left its report, and is not run again).

pub mod executor;
pub mod launch;
pub mod ledger;
mod progress;
mod puller;
mod recorder;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use pop_ports::{Clock, Queue, Store};
use tokio::sync::Notify;

pub use executor::{Delivery, RunContext, RunError, run_delivery};
pub use launch::Launchers;
pub use ledger::{Ledger, LedgerError};
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
    /// How long one long-polling claim waits for work before the puller
    /// looks again (for insights created meanwhile, and for messages that
    /// another process enqueued or whose lease ran out).
    pub claim_wait: Duration,
}

/// What every executor shares.
pub struct Runner {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    pub launchers: Launchers,
    pub config: RunnerConfig,
    /// Wakes the scheduler loop when claims made room in a queue.
    pub wake_scheduler: Arc<Notify>,
    /// Rung by the scheduler after a release: the puller looks for insights
    /// it does not serve yet at once.
    pub released: Arc<Notify>,
}

impl Runner {
    /// What each agenda run of this runner works with.
    pub fn context(&self) -> RunContext {
        RunContext {
            clock: self.clock.clone(),
            launchers: self.launchers.clone(),
            operation_parallelism: self.config.operation_parallelism,
            heartbeat: self.config.heartbeat,
            row_limit: self
                .store
                .document_limits(pop_core::ObjectKind::OperationProgress)
                .max_bytes,
        }
    }
}
