//! Operations run in-process by a component of the `handler` world, under
//! the plugin limits (deadline, memory cap, no I/O).

use pop_core::OperationProgress;
use pop_handlers_registry::{WasmSource, WasmSpec};
use pop_wasm::types::OperationContext;
use serde_json::Value;

use super::{OperationResult, OperationRun, ProgressSender, event};
use crate::domain::now_millis;
use crate::runner::Runner;

pub async fn run(runner: &Runner, spec: &WasmSpec, run: &OperationRun, progress: ProgressSender) -> OperationResult {
    let started = now_millis();
    let (name, builtin) = match &spec.source {
        WasmSource::Plugin(name) => (name.as_str(), false),
        WasmSource::Builtin(name) => (name.as_str(), true),
    };
    let Some(slot) = runner.plugins.handler(&run.customer_id, name, builtin) else {
        return OperationResult::failed_with(
            started,
            format!("No active handler plugin named {name} for operation: {}", run.name),
        );
    };
    let context = OperationContext {
        agenda_id: run.agenda_id.clone(),
        operation_name: run.name.clone(),
        cid: run.cid.clone(),
        last_progress: run.last_progress.as_ref().and_then(|p| serde_json::to_string(p).ok()),
    };
    let operation = run.name.clone();
    // Overwrites the operation's latest report in place: a handler that
    // reports in a loop costs the host one report, not one per call.
    let on_progress = move |percent: f64, message: &str| progress.report_running(&operation, percent, message);
    let payload = run.payload.to_string();
    let base = OperationProgress {
        started_time: Some(started),
        ..Default::default()
    };
    let deadline = std::time::Duration::from_millis(spec.timeout_ms);
    match runner
        .plugins
        .run_handler(slot, payload, context, deadline, on_progress)
        .await
    {
        // Output is JSON text by the contract; anything else is kept as a string.
        Ok(text) => {
            let output = serde_json::from_str(&text).unwrap_or(Value::String(text));
            OperationResult::succeeded(base, output)
        }
        Err(e) => OperationResult::failed(
            base,
            Some(event(format!("Failed to execute operation: {}: {e}", run.name))),
        ),
    }
}
