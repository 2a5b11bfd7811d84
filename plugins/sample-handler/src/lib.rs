//! POP's sample handler (spec §5.6) as a component of the `handler` world, the in-process twin
//! of the native `pop-sample-handler`. Payload: `{"actions": [...], "resultPayload": ...}`.
//! Each action may first sleep `paramsMap.sleepMilliseconds` (in steps of about a second,
//! reporting progress after each); then `log` reports its `logMessage`, `exception` fails the
//! operation with its `exceptionMessage`. The output is `resultPayload`, unchanged.
//! `externalExecute` starts a program, which a sandboxed component cannot: it fails, saying so.

use pop_plugin_sdk::handler::{Handler, OperationContext, report_progress, sleep};
use pop_plugin_sdk::serde_json::{self, Value};

struct Sample;

impl Handler for Sample {
    fn run(payload: &str, context: &OperationContext) -> Result<String, String> {
        let payload: Value = serde_json::from_str(payload).map_err(|e| format!("Failed to parse the payload: {e}"))?;
        if let Some(job) = context.last_progress.as_deref().and_then(job_id) {
            report_progress(0.0, &format!("Resuming after a previous attempt with jobId {job}"));
        }
        let actions = match payload.get("actions") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(actions)) => actions.as_slice(),
            Some(_) => return Err("actions must be a list".into()),
        };
        for action in actions {
            run_action(action)?;
        }
        let result = payload.get("resultPayload").cloned().unwrap_or(Value::Null);
        Ok(result.to_string())
    }
}

fn run_action(action: &Value) -> Result<(), String> {
    let params = action.get("paramsMap").unwrap_or(&Value::Null);
    let text = |key: &str| match params.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    if let Some(ms) = milliseconds(params.get("sleepMilliseconds")) {
        // The native handler's steps: max(1, ms / 1000) of equal length.
        let steps = (ms / 1000).max(1);
        for done in 1..=steps {
            sleep(ms / steps);
            report_progress(done as f64 * 100.0 / steps as f64, &format!("Sleeping {done}/{steps}"));
        }
    }
    match action.get("action").and_then(Value::as_str).unwrap_or_default() {
        "log" => {
            report_progress(100.0, &text("logMessage"));
            Ok(())
        }
        "exception" => Err(text("exceptionMessage")),
        "externalExecute" => {
            Err("externalExecute needs the process handler (type sample); a wasm handler cannot start programs".into())
        }
        other => Err(format!("Unknown action: {other}")),
    }
}

/// A positive number of milliseconds, given as a number or as text (POP's params are often
/// strings).
fn milliseconds(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|ms| *ms > 0)
}

fn job_id(last_progress: &str) -> Option<String> {
    let progress: Value = serde_json::from_str(last_progress).ok()?;
    progress.pointer("/params/jobInfo/jobId").map(|id| id.to_string())
}

pop_plugin_sdk::export_handler!(Sample);
