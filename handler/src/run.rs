//! The framing every handler shares (§5.2): "Operation metadata" lines at the start, the
//! handler's outcome reported (an error or a panic as COMPLETE/failed with POP's "unknown
//! error" diagnostic), the closing summary line, `HandlerComplete` as the very last line (the
//! end-of-log marker launchers wait for), exit code 0 or 1.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::time::Instant;

use pop_core::DiagnosticEvent;
use serde_json::Value;

use crate::inputs::{InputError, Inputs, Metadata, process_env};
use crate::reporter::{Conclusion, Reporter};

/// The last line of every handler's log.
pub const END_OF_LOG: &str = "HandlerComplete";

/// Runs `handler` under the launch contract and returns the process's exit code. The handler
/// gets the inputs and the reporter; `Ok(result)` is reported as `succeeded` with the result,
/// `Err(problem)` (or a panic) as `failed`, unless the handler already reported a COMPLETE
/// progress itself (the first one stands).
pub fn run<F>(handler: F) -> ExitCode
where
    F: FnOnce(&Inputs, &mut Reporter) -> Result<Value, String>,
{
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let metadata = Metadata::read(&process_env);
    for (name, value) in metadata.fields() {
        println!("Operation metadata - {name} : {value}");
    }
    let mut reporter = Reporter::from_env(&metadata, &process_env);
    let output = execute(Inputs::read(&process_env, &args), &metadata, &mut reporter, handler);
    // The final report is out (or given up on) before the log says the handler is done.
    reporter.flush();
    let conclusion = reporter.conclusion().unwrap_or(Conclusion::Failed);
    let payload = match conclusion {
        Conclusion::Succeeded => output,
        Conclusion::Failed => Value::Null,
    };
    let field = |value: &Option<String>| value.clone().unwrap_or_default();
    println!(
        "cid={} operationId={} owner={} conclusionStatus={} elapsedTime={} operation={} payload={payload}",
        field(&metadata.cid),
        field(&metadata.operation_id),
        field(&metadata.customer_id),
        conclusion.as_str(),
        started.elapsed().as_millis(),
        metadata.operation(),
    );
    drop(reporter);
    println!("{END_OF_LOG}");
    match conclusion {
        Conclusion::Succeeded => ExitCode::SUCCESS,
        Conclusion::Failed => ExitCode::FAILURE,
    }
}

/// Runs the handler on the inputs and reports its outcome; returns its output (`null` when it
/// failed).
pub(crate) fn execute<F>(
    inputs: Result<Inputs, InputError>,
    metadata: &Metadata,
    reporter: &mut Reporter,
    handler: F,
) -> Value
where
    F: FnOnce(&Inputs, &mut Reporter) -> Result<Value, String>,
{
    let outcome = match inputs {
        // The reporter is only appended to, so a panic halfway leaves nothing inconsistent.
        Ok(inputs) => catch_unwind(AssertUnwindSafe(|| handler(&inputs, reporter)))
            .unwrap_or_else(|panic| Err(panic_message(panic.as_ref()))),
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(output) => {
            reporter.succeeded(&output);
            output
        }
        Err(problem) => {
            println!("ERROR {problem}");
            let event = DiagnosticEvent {
                message: Some(format!(
                    "An unknown error has occurred with operation: {}",
                    metadata.operation()
                )),
                time: Some(crate::reporter::now_millis()),
                stack_trace: Some(problem),
                ..Default::default()
            };
            reporter.failed_with(vec![event], None);
            Value::Null
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    format!("panicked: {text}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::reporter::tests::recording;

    fn metadata() -> Metadata {
        Metadata {
            operation_name: Some("op1".into()),
            ..Default::default()
        }
    }

    fn unknown_error(seen: &crate::reporter::tests::Seen) -> DiagnosticEvent {
        let seen = seen.lock().unwrap();
        let (progress, _, complete) = seen.last().unwrap();
        assert!(complete);
        assert_eq!(progress.processing_state_message.as_deref(), Some("failed"));
        progress.diagnostic_events.clone().unwrap()[0].clone()
    }

    #[test]
    fn a_result_is_reported_as_succeeded() {
        let (mut reporter, seen) = recording("op1");
        let output = execute(Ok(Inputs::default()), &metadata(), &mut reporter, |_, _| Ok(json!(7)));
        assert_eq!(output, json!(7));
        assert_eq!(reporter.conclusion(), Some(Conclusion::Succeeded));
        assert_eq!(seen.lock().unwrap()[0].1, Some(json!(7)));
    }

    #[test]
    fn an_error_or_a_panic_is_an_unknown_error() {
        let (mut reporter, seen) = recording("op1");
        execute(Ok(Inputs::default()), &metadata(), &mut reporter, |_, _| {
            Err("no disk".into())
        });
        let event = unknown_error(&seen);
        assert_eq!(
            event.message.as_deref(),
            Some("An unknown error has occurred with operation: op1")
        );
        assert_eq!(event.stack_trace.as_deref(), Some("no disk"));

        let (mut reporter, seen) = recording("op1");
        let output = execute(Ok(Inputs::default()), &metadata(), &mut reporter, |_, reporter| {
            reporter.executing("half way", 50.0);
            panic!("index out of bounds")
        });
        assert_eq!(output, Value::Null);
        assert_eq!(reporter.conclusion(), Some(Conclusion::Failed));
        assert_eq!(
            unknown_error(&seen).stack_trace.as_deref(),
            Some("panicked: index out of bounds")
        );
    }

    #[test]
    fn unreadable_inputs_fail_before_the_handler_runs() {
        let (mut reporter, seen) = recording("op1");
        let bad = serde_json::from_str::<Value>("{").unwrap_err();
        execute(Err(InputError::Payload(bad)), &metadata(), &mut reporter, |_, _| {
            unreachable!("not called")
        });
        let trace = unknown_error(&seen).stack_trace.unwrap_or_default();
        assert!(trace.starts_with("Failed to parse the payload"), "{trace}");
    }

    #[test]
    fn the_handlers_own_verdict_stands() {
        let (mut reporter, _) = recording("op1");
        execute(Ok(Inputs::default()), &metadata(), &mut reporter, |_, reporter| {
            reporter.failed("rejected the input");
            Ok(json!(1))
        });
        assert_eq!(reporter.conclusion(), Some(Conclusion::Failed));
    }
}
