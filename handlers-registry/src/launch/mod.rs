//! Launching handlers locally: the input every launcher gets, what comes back, and the `process`
//! launcher.

mod env;
mod logs;
mod orphans;
mod process;
mod verdict;

use pop_core::OperationProgress;
use serde_json::Value;
use thiserror::Error;

pub use env::CONTRACT_VARS;
pub use logs::{DIAGNOSTIC_LOG_LINES, KEPT_LOG_LINES};
pub use orphans::kill_orphans;
pub use process::{run_process, run_process_with_clock};

/// What a handler is launched with (§5.2 / §5.3.6). Blank ids are not passed on, as in POP.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaunchInput {
    /// The operation payload, references already resolved (`PAYLOAD`).
    pub payload: Value,
    /// The operation's progress from an earlier attempt (`LAST_PROGRESS`), for resuming.
    pub last_progress: Option<OperationProgress>,
    pub cid: Option<String>,
    pub agenda_id: Option<String>,
    pub operation_name: Option<String>,
    pub operation_id: Option<String>,
    pub customer_id: Option<String>,
    pub progress_id: Option<String>,
    /// `LOG_LEVEL`; `INFO` when absent (what POP's executor gives handler pods).
    pub log_level: Option<String>,
    /// Where the handler reports (`POP_REPORT_FILE`). `None`: a temporary file, removed after
    /// the run. An executor passes a durable path so that a handler which finished just before
    /// a crash is adopted on resume ([`crate::report::settled`]) instead of run again.
    pub report_file: Option<std::path::PathBuf>,
}

/// What a handler run came to.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchOutput {
    pub outcome: Outcome,
    /// The final OperationProgress to record: COMPLETE, `succeeded` or `failed`, with the
    /// handler's own fields (params, times, diagnostics) kept and, on failure, one more
    /// diagnostic holding the last log lines.
    pub progress: OperationProgress,
    /// The process exit code; `None` when it was killed by a signal (including by us).
    pub exit_code: Option<i32>,
    /// The last [`DIAGNOSTIC_LOG_LINES`] lines of stdout/stderr, oldest first.
    pub log_tail: Vec<String>,
}

/// Success with the operation output, or the reason for failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The handler's reported result (`{"result": …}`), `Null` if it reported none.
    Succeeded {
        output: Value,
    },
    Failed {
        failure: Failure,
    },
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Succeeded { .. })
    }
}

/// Why a handler run failed. The text is the message of the diagnostic event.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Failure {
    #[error("handler process exceeded its timeout of {timeout_ms} ms and was killed")]
    TimedOut { timeout_ms: u64 },
    #[error("handler process logged nothing for {stdout_timeout_ms} ms and was killed")]
    Quiet { stdout_timeout_ms: u64 },
    #[error("handler process exited with code {code}")]
    ExitCode { code: i32 },
    #[error("handler process was killed by a signal")]
    Signalled,
    #[error("handler process exited without logging the end-of-log marker {marker}")]
    NoEndOfLog { marker: String },
    #[error("handler reported {state}")]
    Reported { state: String },
}
