//! The `process` launcher driving the real `pop-sample-handler` binary.

use pop_core::ProcessingState;
use pop_handlers_registry::launch::Failure;
use pop_handlers_registry::{HandlerSpec, LaunchInput, Outcome, ProcessSpec, Registry, run_process};
use serde_json::{Value, json};

/// The default registry's `sample` entry, pointed at the binary cargo built for this test.
fn sample_spec() -> ProcessSpec {
    let HandlerSpec::Process(mut spec) = Registry::builtin().resolve("sample").unwrap() else {
        panic!("sample is a process handler")
    };
    spec.program = env!("CARGO_BIN_EXE_pop-sample-handler").to_owned();
    spec
}

fn input(payload: Value) -> LaunchInput {
    LaunchInput {
        payload,
        cid: Some("cid-1".into()),
        agenda_id: Some("agenda-1".into()),
        operation_name: Some("op1".into()),
        operation_id: Some("op-id-1".into()),
        customer_id: Some("acme".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn log_action_succeeds_and_outputs_the_result_payload() {
    let payload = json!({
        "actions": [{"action": "log", "paramsMap": {"logMessage": "hello from the sample"}}],
        "resultPayload": {"answer": 42, "nested": {"list": [1, 2]}}
    });
    let output = run_process(&sample_spec(), &input(payload), |_| {}).await.unwrap();
    assert_eq!(
        output.outcome,
        Outcome::Succeeded {
            output: json!({"answer": 42, "nested": {"list": [1, 2]}})
        }
    );
    assert_eq!(output.exit_code, Some(0));
    let progress = &output.progress;
    assert_eq!(progress.processing_state, Some(ProcessingState::Complete));
    assert_eq!(progress.processing_state_message.as_deref(), Some("succeeded"));
    assert_eq!(progress.percent_complete, Some(100.0));
    assert_eq!(progress.operation.as_deref(), Some("op1"));
    let result: Value = serde_json::from_str(progress.result_payload.as_deref().unwrap()).unwrap();
    assert_eq!(result["answer"], 42);
    assert!(
        output.log_tail.iter().any(|l| l == "hello from the sample"),
        "{:?}",
        output.log_tail
    );
    assert!(
        output
            .log_tail
            .iter()
            .any(|l| l.contains("cid=cid-1") && l.contains("owner=acme"))
    );
    assert_eq!(output.log_tail.last().map(String::as_str), Some("HandlerComplete"));
}

#[tokio::test]
async fn sleep_reports_progress_with_a_fixed_job_id() {
    let payload = json!({
        "actions": [{"action": "log", "paramsMap": {"sleepMilliseconds": 2000, "logMessage": "slept"}}],
        "resultPayload": {"done": true}
    });
    let mut seen = Vec::new();
    let output = run_process(&sample_spec(), &input(payload), |p| seen.push(p.clone()))
        .await
        .unwrap();
    assert!(output.outcome.is_success(), "{:?}", output.outcome);
    let executing: Vec<_> = seen
        .iter()
        .filter(|p| p.processing_state == Some(ProcessingState::Executing))
        .collect();
    let percents: Vec<f64> = executing.iter().filter_map(|p| p.percent_complete).collect();
    assert_eq!(percents, [50.0, 100.0]);
    let job_ids: Vec<_> = seen
        .iter()
        .map(|p| p.params.as_ref().unwrap().get_string("JobId").unwrap())
        .collect();
    assert!(job_ids.windows(2).all(|w| w[0] == w[1]), "{job_ids:?}");
    let last = seen.last().unwrap();
    assert_eq!(last.processing_state, Some(ProcessingState::Complete));
    assert_eq!(output.progress.params, last.params, "the handler's params are kept");
}

#[tokio::test]
async fn exception_fails_with_handler_and_log_diagnostics() {
    let payload = json!({
        "actions": [
            {"action": "log", "paramsMap": {"logMessage": "before the failure"}},
            {"action": "exception", "paramsMap": {"exceptionMessage": "boom"}}
        ],
        "resultPayload": {"never": true}
    });
    let output = run_process(&sample_spec(), &input(payload), |_| {}).await.unwrap();
    assert_eq!(
        output.outcome,
        Outcome::Failed {
            failure: Failure::ExitCode { code: 1 }
        }
    );
    assert_eq!(output.exit_code, Some(1));
    assert_eq!(output.progress.processing_state_message.as_deref(), Some("failed"));
    let events = output.progress.diagnostic_events.as_ref().unwrap();
    assert_eq!(
        events[0].message.as_deref(),
        Some("An unknown error has occurred with operation: op1")
    );
    assert_eq!(events[0].stack_trace.as_deref(), Some("boom"));
    assert_eq!(events[1].message.as_deref(), Some("handler process exited with code 1"));
    let tail: Vec<String> = serde_json::from_value(events[1].payload.clone().unwrap()).unwrap();
    assert!(tail.len() <= 10);
    assert!(tail.iter().any(|l| l == "before the failure"), "{tail:?}");
    assert_eq!(tail.last().map(String::as_str), Some("HandlerComplete"));
    assert_eq!(tail, output.log_tail);
}

#[tokio::test]
async fn unknown_action_fails() {
    let payload = json!({"actions": [{"action": "dance"}]});
    let output = run_process(&sample_spec(), &input(payload), |_| {}).await.unwrap();
    assert!(!output.outcome.is_success());
    let events = output.progress.diagnostic_events.unwrap();
    assert_eq!(events[0].stack_trace.as_deref(), Some("Unknown action: dance"));
}

#[tokio::test]
async fn quietness_timeout_kills_a_silent_sleeper() {
    let spec = ProcessSpec {
        stdout_timeout_ms: 500,
        ..sample_spec()
    };
    let payload = json!({"actions": [{"action": "log", "paramsMap": {"sleepMilliseconds": 30000}}]});
    // The outcome below says the quiet-log timeout ended it (a handler that
    // slept its 30 s out would have succeeded).
    let output = run_process(&spec, &input(payload), |_| {}).await.unwrap();
    assert_eq!(
        output.outcome,
        Outcome::Failed {
            failure: Failure::Quiet { stdout_timeout_ms: 500 }
        }
    );
    assert_eq!(output.exit_code, None);
    let events = output.progress.diagnostic_events.unwrap();
    assert!(
        events
            .last()
            .unwrap()
            .message
            .as_deref()
            .unwrap()
            .contains("logged nothing for 500 ms")
    );
}

#[tokio::test]
async fn overall_timeout_kills_a_long_run() {
    let spec = ProcessSpec {
        timeout_ms: 700,
        ..sample_spec()
    };
    let payload = json!({"actions": [{"action": "log", "paramsMap": {"sleepMilliseconds": 30000}}]});
    let output = run_process(&spec, &input(payload), |_| {}).await.unwrap();
    assert_eq!(
        output.outcome,
        Outcome::Failed {
            failure: Failure::TimedOut { timeout_ms: 700 }
        }
    );
}

#[tokio::test]
async fn missing_program_is_a_launch_error() {
    let spec = ProcessSpec {
        program: "/nonexistent/pop-handler".into(),
        ..sample_spec()
    };
    let err = run_process(&spec, &input(json!({})), |_| {}).await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/pop-handler"), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn plain_commands_follow_the_same_rules() {
    let shell = |script: &str| ProcessSpec {
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
        ..sample_spec()
    };
    // Exit 0 without the marker is a failure: the log may be incomplete.
    let output = run_process(&shell("echo hi"), &input(json!({})), |_| {}).await.unwrap();
    assert_eq!(
        output.outcome,
        Outcome::Failed {
            failure: Failure::NoEndOfLog {
                marker: "HandlerComplete".into()
            }
        }
    );
    // With the marker and no report file use, success with a null output; the contract
    // environment reaches the process and stray variables do not.
    let script = r#"test "$CID" = cid-1 && test -z "$PROGRESS_ID" && test -n "$POP_REPORT_FILE" && echo "$PAYLOAD"; echo HandlerComplete"#;
    let output = run_process(&shell(script), &input(json!({"p": 1})), |_| {})
        .await
        .unwrap();
    assert_eq!(output.outcome, Outcome::Succeeded { output: Value::Null });
    assert_eq!(output.log_tail, [r#"{"p":1}"#, "HandlerComplete"]);
    // A grandchild holding the pipes open does not keep the operation running.
    let output = run_process(&shell("sleep 30 & echo HandlerComplete"), &input(json!({})), |_| {})
        .await
        .unwrap();
    assert!(output.outcome.is_success(), "{:?}", output.outcome);
}

/// A handler whose launcher died keeps running in its own process group;
/// `kill_orphans` finds it (and what it started) by its report file.
#[cfg(target_os = "linux")]
#[test]
fn orphaned_handlers_are_found_by_their_report_file_and_killed() {
    use std::os::unix::process::CommandExt as _;
    use std::time::{Duration, Instant};

    let runs = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let spawn = |dir: &std::path::Path| {
        std::process::Command::new("sh")
            .args(["-c", "sleep 60 & wait"])
            .env("POP_REPORT_FILE", dir.join("a/op.jsonl"))
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let mut orphan = spawn(runs.path());
    let mut bystander = spawn(elsewhere.path());
    // Until the shell has exec'd, its environment is the test's own.
    std::thread::sleep(Duration::from_millis(200));
    // The shell and its `sleep` (which inherited the environment).
    let killed = pop_handlers_registry::kill_orphans(runs.path());
    assert!((1..=2).contains(&killed), "{killed}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = orphan.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the orphan survived");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "other launchers' handlers are left alone"
    );
    // The whole group: the shell's `sleep` would otherwise outlive the test.
    // SAFETY: kill(2) only sends a signal.
    unsafe { libc::kill(-(bystander.id() as i32), libc::SIGKILL) };
    let _ = bystander.wait();
}
