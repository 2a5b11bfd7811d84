//! Running one operation: its type picks a resident handler (run inside the
//! server), or an entry of the handlers registry — a local process or a wasm
//! component (a Kubernetes pod needs the Kubernetes resource pool). Every
//! path ends in the operation's final progress: COMPLETE `succeeded` with
//! the output, or COMPLETE `failed` with diagnostics saying why (spec
//! §5.3.3). Launching never returns an error: a launch that could not even
//! start is a failed operation too.

mod process;
mod resident;
mod wasm;

use std::path::PathBuf;

use pop_core::{CompleteStateMessage, DiagnosticEvent, Operation, OperationProgress, ProcessingState};
use pop_handlers_registry::HandlerSpec;
use serde_json::Value;

use super::Runner;
pub use super::progress::ProgressSender;
use crate::domain::now_millis;

/// Largest operation result kept, in bytes of its JSON text. A result goes
/// into the operation's progress row and into the payloads of the
/// operations that reference it, so it must stay well inside a stored
/// document; a larger one fails the operation, saying so.
pub const MAX_RESULT_BYTES: usize = 1 << 20;

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
    /// Where a process handler reports; kept across restarts.
    pub report_file: PathBuf,
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
    pub fn succeeded(mut progress: OperationProgress, output: Value) -> Self {
        progress.processing_state = Some(ProcessingState::Complete);
        progress.processing_state_message = Some(CompleteStateMessage::Succeeded.as_str().into());
        progress.percent_complete = Some(100.0);
        progress.completed_time = progress.completed_time.or(Some(now_millis()));
        if progress.result_payload.is_none() && !output.is_null() {
            progress.result_payload = Some(output.to_string());
        }
        Self {
            progress,
            output: Some(output),
        }
    }

    pub fn failed(mut progress: OperationProgress, diagnostic: Option<DiagnosticEvent>) -> Self {
        progress.processing_state = Some(ProcessingState::Complete);
        progress.processing_state_message = Some(CompleteStateMessage::Failed.as_str().into());
        progress.completed_time = progress.completed_time.or(Some(now_millis()));
        if let Some(diagnostic) = diagnostic {
            progress.diagnostic_events.get_or_insert_with(Vec::new).push(diagnostic);
        }
        Self { progress, output: None }
    }

    /// A failure before or outside any handler, with POP's message.
    pub fn failed_with(started: i64, message: String) -> Self {
        let progress = OperationProgress {
            started_time: Some(started),
            ..Default::default()
        };
        Self::failed(progress, Some(event(message)))
    }
}

pub fn event(message: impl Into<String>) -> DiagnosticEvent {
    DiagnosticEvent {
        message: Some(message.into()),
        time: Some(now_millis()),
        ..Default::default()
    }
}

impl Runner {
    /// Run `run` to its end; a result over [`MAX_RESULT_BYTES`] fails it.
    pub async fn launch(&self, run: OperationRun, progress: ProgressSender) -> OperationResult {
        let result = self.launch_unchecked(&run, progress).await;
        within_result_limit(result, &run.name)
    }

    async fn launch_unchecked(&self, run: &OperationRun, progress: ProgressSender) -> OperationResult {
        let started = now_millis();
        let op_type = run.operation.op_type.clone().unwrap_or_default();
        if let Some(result) = resident::run(self, &op_type, run).await {
            return result;
        }
        let spec = match self.registry.resolve(&op_type) {
            Ok(spec) => spec,
            Err(e) => return OperationResult::failed_with(started, format!("{e} on operation: {}", run.name)),
        };
        match spec {
            HandlerSpec::Process(spec) => process::run(&spec, run, progress).await,
            HandlerSpec::Wasm(spec) => wasm::run(self, &spec, run, progress).await,
            HandlerSpec::Pod(_) => OperationResult::failed_with(
                started,
                format!(
                    "Operation type {op_type} runs as a Kubernetes pod, which the embedded resource pool cannot start (operation: {})",
                    run.name
                ),
            ),
        }
    }
}

/// `result`, or a failure saying its result is too large to keep.
fn within_result_limit(result: OperationResult, name: &str) -> OperationResult {
    let bytes = match (&result.output, &result.progress.result_payload) {
        (Some(_), Some(text)) => text.len(),
        (Some(output), None) => serde_json::to_vec(output).map_or(0, |b| b.len()),
        (None, _) => return result,
    };
    if bytes <= MAX_RESULT_BYTES {
        return result;
    }
    let mut progress = result.progress;
    progress.result_payload = None;
    progress.percent_complete = Some(0.0);
    let message = format!(
        "Failed to execute operation: {name}: its result is {bytes} bytes; at most {MAX_RESULT_BYTES} are kept"
    );
    OperationResult::failed(progress, Some(event(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_result_fails_the_operation_and_says_why() {
        let big = Value::String("x".repeat(MAX_RESULT_BYTES));
        let result = within_result_limit(OperationResult::succeeded(OperationProgress::default(), big), "op");
        assert!(result.output.is_none());
        assert_eq!(result.progress.result_payload, None);
        assert_eq!(
            result.progress.processing_state_message.as_deref(),
            Some(CompleteStateMessage::Failed.as_str())
        );
        let message = result.progress.diagnostic_events.unwrap_or_default()[0].message.clone();
        assert!(message.unwrap_or_default().contains("at most 1048576"));
        let small = OperationResult::succeeded(OperationProgress::default(), serde_json::json!({"ok": true}));
        assert!(within_result_limit(small, "op").output.is_some());
    }
}
