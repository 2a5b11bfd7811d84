//! The `Launcher` port: runs one operation somewhere — inside the server,
//! as a local process, as a wasm component, later as a Kubernetes pod —
//! and reports its progress while it runs and its final result.
//!
//! A launch never fails as a call: whatever goes wrong (the handler cannot
//! start, crashes, answers nonsense) ends as a COMPLETE `failed`
//! [`OperationResult`] with a diagnostic saying why (spec §5.3.3), so the
//! executor has one path for every outcome.
//!
//! Launchers whose runs outlive the process that started them
//! ([`Durability::Detached`]: processes, pods) make two more promises, so
//! that the executor and the puller need not know what a run is:
//!
//! * [`Launcher::adopt`]: a successor that finds an operation recorded
//!   EXECUTING asks the launcher first; a run that already finished (or is
//!   still running, for a pod) is taken over instead of started again.
//! * [`Launcher::reap_orphans`]: what a dead predecessor left running is
//!   stopped before the work is handed out again.

use std::sync::Arc;

use async_trait::async_trait;
use pop_core::{CompleteStateMessage, DiagnosticEvent, EpochMillis, Operation, OperationProgress, ProcessingState};
use serde_json::Value;

/// One operation to run, its payload already resolved.
#[derive(Debug, Clone)]
pub struct OperationRun {
    pub name: String,
    pub operation: Operation,
    pub payload: Value,
    /// The progress of an earlier, unfinished attempt (`LAST_PROGRESS`).
    pub last_progress: Option<OperationProgress>,
    pub agenda_id: String,
    pub progress_id: String,
    pub customer_id: String,
    pub cid: String,
    /// The agenda's attempt this run belongs to (1 for the first; a rerun
    /// or retry starts the next). With the progress id and the operation
    /// it names a run that a successor can find again (a pod's name).
    pub attempt: i64,
    /// Where the agenda runs, for launchers that place or label work by it.
    pub placement: Placement,
}

/// The insight and resource pool an operation's agenda runs on, and where
/// that pool puts the customer's work.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    pub insight_id: String,
    pub resource_pool_id: String,
    /// The Kubernetes namespace the resource pool assigns the customer
    /// (`None`: the launcher's own). A pod launcher creates the run's pod
    /// there and nowhere else.
    pub namespace: Option<String>,
}

impl OperationRun {
    /// The operation's type (what the registry is keyed by).
    pub fn op_type(&self) -> &str {
        self.operation.op_type.as_deref().unwrap_or_default()
    }

    /// Whether the recorded state says this operation was started and not
    /// reset since (a rerun resets it to WAITING): only then may an earlier
    /// run's result be adopted.
    pub fn was_started(&self) -> bool {
        self.last_progress
            .as_ref()
            .is_some_and(|p| p.processing_state == Some(ProcessingState::Executing))
    }
}

/// How an operation ended.
#[derive(Debug, Clone)]
pub struct OperationResult {
    /// COMPLETE, `succeeded` or `failed`.
    pub progress: OperationProgress,
    /// `Some` exactly when the operation succeeded.
    pub output: Option<Value>,
}

impl OperationResult {
    /// Succeeded at `now` with `output` (kept as the result payload too).
    pub fn succeeded(mut progress: OperationProgress, output: Value, now: EpochMillis) -> Self {
        progress.processing_state = Some(ProcessingState::Complete);
        progress.processing_state_message = Some(CompleteStateMessage::Succeeded.as_str().into());
        progress.percent_complete = Some(100.0);
        progress.completed_time = progress.completed_time.or(Some(now));
        if progress.result_payload.is_none() && !output.is_null() {
            progress.result_payload = Some(output.to_string());
        }
        Self {
            progress,
            output: Some(output),
        }
    }

    /// Failed at `now`, with `diagnostic` added to the progress's events.
    pub fn failed(mut progress: OperationProgress, diagnostic: Option<DiagnosticEvent>, now: EpochMillis) -> Self {
        progress.processing_state = Some(ProcessingState::Complete);
        progress.processing_state_message = Some(CompleteStateMessage::Failed.as_str().into());
        progress.completed_time = progress.completed_time.or(Some(now));
        if let Some(diagnostic) = diagnostic {
            progress.diagnostic_events.get_or_insert_with(Vec::new).push(diagnostic);
        }
        Self { progress, output: None }
    }

    /// A failure before or outside any handler, with POP's message.
    pub fn failed_with(started: EpochMillis, message: String, now: EpochMillis) -> Self {
        let progress = OperationProgress {
            started_time: Some(started),
            ..Default::default()
        };
        Self::failed(progress, Some(event(message, now)), now)
    }
}

/// A diagnostic event saying `message`, at `now`.
pub fn event(message: impl Into<String>, now: EpochMillis) -> DiagnosticEvent {
    DiagnosticEvent {
        message: Some(message.into()),
        time: Some(now),
        ..Default::default()
    }
}

/// Where a running operation's reports go (one sink per operation run).
/// Reporting must be cheap and never block: the executor coalesces.
pub trait ProgressSink: Send + Sync {
    /// A full progress report from the handler (state, percent, message,
    /// diagnostics).
    fn report(&self, progress: &OperationProgress);

    /// A running report of `percent` and `message` only.
    fn report_running(&self, percent: f64, message: &str);
}

/// Whether a run lives and dies with the process that launched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// In the launching process (resident handlers, wasm): a crash ends
    /// the run, and the next delivery simply starts it again.
    InProcess,
    /// Outside it (a process, a pod): it may finish after its launcher
    /// died, so its start must be recorded before it is launched, and a
    /// successor adopts it ([`Launcher::adopt`]) rather than start another.
    Detached,
}

/// Why a launcher's housekeeping failed (a launch itself never fails).
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The engine could not be reached or answered with a retryable error.
    #[error("launcher engine unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The engine refused; retrying will not help.
    #[error("launcher failed: {message}")]
    Failed {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl LaunchError {
    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Runs operations of the types it accepts.
#[async_trait]
pub trait Launcher: Send + Sync {
    /// A short name for logs and diagnostics (`resident`, `process`, …).
    fn name(&self) -> &'static str;

    /// Whether this launcher runs operations of `op_type`.
    fn accepts(&self, op_type: &str) -> bool;

    /// Whether its runs outlive the launching process.
    fn durability(&self) -> Durability;

    /// Run `run` to its end, reporting to `progress` while it runs.
    async fn launch(&self, run: &OperationRun, progress: Arc<dyn ProgressSink>) -> OperationResult;

    /// The result of an earlier run of `run` that a predecessor started
    /// (the executor asks only when [`OperationRun::was_started`]): `Some`
    /// when it is known to have finished and is taken over; `None` runs it
    /// again.
    async fn adopt(&self, _run: &OperationRun) -> Option<OperationResult> {
        None
    }

    /// The agenda's outcome is recorded: drop whatever was kept so that
    /// its runs could be adopted (report files, finished pods).
    async fn forget_agenda(&self, _agenda_id: &str) {}

    /// Stop the runs a dead predecessor left behind (before any work is
    /// handed out again, so that they cannot race their new runs); how many.
    async fn reap_orphans(&self) -> Result<usize, LaunchError> {
        Ok(0)
    }

    /// Remove finished runs that stay behind on their own (completed pods)
    /// and finished before `finished_before` (epoch ms): the data reaper's
    /// share of a launcher (POP's pod reaper). How many were removed.
    async fn reap_leftovers(&self, _finished_before: EpochMillis) -> Result<usize, LaunchError> {
        Ok(0)
    }

    /// The agendas this launcher keeps something of for adoption (report
    /// files), each with when it was last touched (epoch ms). The data
    /// reaper calls [`Launcher::forget_agenda`] for those whose agenda is
    /// finished or gone: what a crash kept from being forgotten.
    async fn kept_agendas(&self) -> Result<Vec<(String, EpochMillis)>, LaunchError> {
        Ok(Vec::new())
    }
}

#[cfg(feature = "conformance")]
pub mod conformance;
