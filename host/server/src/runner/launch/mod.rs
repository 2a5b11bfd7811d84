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
use tokio::sync::mpsc;

use super::Runner;
use crate::domain::now_millis;

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

/// Progress a running operation reports, for the executor's roll-up.
pub type ProgressSender = mpsc::UnboundedSender<(String, OperationProgress)>;

impl Runner {
    /// Run `run` to its end.
    pub async fn launch(&self, run: OperationRun, progress: ProgressSender) -> OperationResult {
        let started = now_millis();
        let op_type = run.operation.op_type.clone().unwrap_or_default();
        if let Some(result) = resident::run(self, &op_type, &run).await {
            return result;
        }
        let spec = match self.registry.resolve(&op_type) {
            Ok(spec) => spec,
            Err(e) => return OperationResult::failed_with(started, format!("{e} on operation: {}", run.name)),
        };
        match spec {
            HandlerSpec::Process(spec) => process::run(&spec, &run, progress).await,
            HandlerSpec::Wasm(spec) => wasm::run(self, &spec, &run, progress).await,
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
