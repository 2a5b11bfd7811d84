//! Resident handlers: operation types run inside the server itself (spec
//! §5.3.4), before the registry is consulted.
//!
//! * `logMessages` logs each line of `{"logMessages": [...]}`; no output.
//! * `updateAgenda` is the generator's partner: it persists the operations
//!   of `{"operations": [...], "params": {...}, "logOnly": bool}` into the
//!   running agenda (with WAITING progress rows) and outputs them, so the
//!   executor adds them to the plan and a restart or rerun still knows them.

use pop_core::params::keys;
use pop_core::visibility::Caller;
use pop_core::{Operation, OperationProgress, ParamsMap};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{OperationResult, OperationRun};
use crate::domain::{now_millis, resourcepool};
use crate::error::ApiError;
use crate::runner::Runner;

pub const LOG_MESSAGES: &str = "logMessages";
pub const UPDATE_AGENDA: &str = "updateAgenda";

/// Attempts of the agenda update when another generator's update won the
/// race (POP: `resourcePool.expandAgenda.attemptCount`, 3).
const UPDATE_ATTEMPTS: u32 = 3;

/// `None` when `op_type` is not resident.
pub async fn run(runner: &Runner, op_type: &str, run: &OperationRun) -> Option<OperationResult> {
    let started = now_millis();
    let outcome = match op_type {
        LOG_MESSAGES => log_messages(run),
        UPDATE_AGENDA => update_agenda(runner, run).await,
        _ => return None,
    };
    let progress = OperationProgress {
        started_time: Some(started),
        ..Default::default()
    };
    Some(match outcome {
        Ok(output) => OperationResult::succeeded(progress, output),
        Err(message) => OperationResult::failed(
            progress,
            Some(super::event(format!(
                "Resident execution failed for operation: {}: {message}",
                run.name
            ))),
        ),
    })
}

fn log_messages(run: &OperationRun) -> Result<Value, String> {
    let lines = match run.payload.get("logMessages") {
        Some(Value::Array(lines)) => lines.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err("logMessages must be a list".into()),
    };
    for line in lines {
        let text = line.as_str().map_or_else(|| line.to_string(), str::to_owned);
        tracing::info!(agenda = run.agenda_id, operation = run.name, cid = run.cid, "{text}");
    }
    Ok(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateInput {
    #[serde(default)]
    operations: Vec<Operation>,
    #[serde(default)]
    params: Option<ParamsMap>,
    #[serde(default)]
    log_only: bool,
}

async fn update_agenda(runner: &Runner, run: &OperationRun) -> Result<Value, String> {
    let mut input: UpdateInput =
        serde_json::from_value(run.payload.clone()).map_err(|e| format!("invalid updateAgenda payload: {e}"))?;
    for op in &mut input.operations {
        op.params
            .get_or_insert_with(ParamsMap::new)
            .insert(keys::GENERATED_OPERATION_PARENT, run.name.as_str());
    }
    let output = json!({"operations": input.operations, "params": input.params.clone().unwrap_or_default()});
    if input.log_only || input.operations.is_empty() {
        tracing::info!(operation = run.name, generated = %output, "updateAgenda (log only)");
        return Ok(output);
    }
    let request = json!({"agendaId": run.agenda_id, "operations": input.operations, "params": input.params});
    let mut attempt = 0;
    loop {
        attempt += 1;
        match resourcepool::update_agenda(runner.store.as_ref(), &Caller::service(), request.clone()).await {
            Ok(_) => return Ok(output),
            Err(ApiError::Conflict(_) | ApiError::Internal(_)) if attempt < UPDATE_ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}
