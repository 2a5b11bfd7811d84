//! Operations run as local processes under the launch contract (the
//! handlers registry's `process` kind).

use pop_core::{OperationProgress, ProcessingState};
use pop_handlers_registry::{LaunchInput, Outcome, ProcessSpec, report, run_process};

use super::{OperationResult, OperationRun, ProgressSender};
use crate::domain::now_millis;

pub async fn run(spec: &ProcessSpec, run: &OperationRun, progress: ProgressSender) -> OperationResult {
    if let Some(adopted) = adopt(run) {
        return adopted;
    }
    let started = now_millis();
    let input = LaunchInput {
        payload: run.payload.clone(),
        last_progress: run.last_progress.clone(),
        cid: Some(run.cid.clone()),
        agenda_id: Some(run.agenda_id.clone()),
        operation_name: Some(run.name.clone()),
        operation_id: run.operation.id.clone(),
        customer_id: Some(run.customer_id.clone()),
        progress_id: Some(run.progress_id.clone()),
        log_level: None,
        report_file: Some(run.report_file.clone()),
    };
    let name = run.name.clone();
    let launched = run_process(spec, &input, |reported: &OperationProgress| {
        progress.report(&name, reported);
    })
    .await;
    match launched {
        Ok(output) => match output.outcome {
            Outcome::Succeeded { output: value } => OperationResult::succeeded(output.progress, value),
            // The launcher already added the diagnostic with the log tail.
            Outcome::Failed { .. } => OperationResult::failed(output.progress, None),
        },
        Err(e) => OperationResult::failed_with(started, format!("Failed to execute operation: {} ({e})", run.name)),
    }
}

/// A handler that finished before the server crashed left its success in its
/// report file; the crash came before the success was recorded. It is
/// adopted instead of run again — but only when the recorded state says
/// this operation was started (EXECUTING) and not reset since: a rerun
/// resets it to WAITING, and then the old report must not count.
fn adopt(run: &OperationRun) -> Option<OperationResult> {
    let started = run
        .last_progress
        .as_ref()
        .is_some_and(|p| p.processing_state == Some(ProcessingState::Executing));
    if !started {
        return None;
    }
    match report::settled(&run.report_file) {
        Ok(Some((progress, output))) => {
            tracing::info!(
                agenda = run.agenda_id,
                operation = run.name,
                "adopting the result of a handler run that finished before a restart"
            );
            Some(OperationResult::succeeded(progress, output))
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(operation = run.name, error = %e, "cannot read an earlier report; running again");
            None
        }
    }
}
