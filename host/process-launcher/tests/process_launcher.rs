//! The process launcher through the `Launcher` port, on real `sh` handlers
//! that follow the launch contract: launch, progress, adoption after a
//! crash, forgetting, and reaping what a dead predecessor left running.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use pop_core::{Operation, ProcessingState};
use pop_handlers_registry::Registry;
use pop_ports::launcher::conformance::RecordingSink;
use pop_ports::{Durability, Launcher, ManualClock, OperationRun};
use pop_process_launcher::ProcessLauncher;
use serde_json::{Value, json};

const NOW: i64 = 1_700_000_000_000;

/// A handler that reports 50 %, then success with `{"echo": $PAYLOAD}`.
const SUCCEEDS: &str = r#"
printf '{"progress":{"processingState":"EXECUTING","percentComplete":50}}\n' >> "$POP_REPORT_FILE"
printf '{"progress":{"processingState":"COMPLETE","processingStateMessage":"succeeded"}}\n' >> "$POP_REPORT_FILE"
printf '{"result":{"echo":%s}}\n' "$PAYLOAD" >> "$POP_REPORT_FILE"
echo HandlerComplete
"#;

fn registry() -> Arc<Registry> {
    let document = json!({
        "baseProcessConfig": {"timeoutMs": 20000, "stdoutTimeoutMs": 20000, "endOfLogIdentifier": "HandlerComplete"},
        "succeeds": {"processConfig": {"program": "/bin/sh", "args": ["-c", SUCCEEDS]}},
        "fails": {"processConfig": {"program": "/bin/sh", "args": ["-c", "echo broken; exit 3"]}},
        "inWasm": {"wasmConfig": {"builtin": "sample"}},
    });
    Arc::new(Registry::from_value(&document).expect("a valid registry"))
}

fn launcher(runs: &std::path::Path) -> ProcessLauncher {
    ProcessLauncher::new(registry(), runs.to_path_buf(), Arc::new(ManualClock::at(NOW)))
}

fn run(op_type: &str, payload: Value) -> OperationRun {
    OperationRun {
        name: "op1".into(),
        operation: Operation {
            name: Some("op1".into()),
            op_type: Some(op_type.into()),
            ..Default::default()
        },
        payload,
        last_progress: None,
        agenda_id: "agenda-1".into(),
        progress_id: "progress-1".into(),
        customer_id: "acme".into(),
        cid: "cid-1".into(),
        attempt: 1,
        placement: Default::default(),
    }
}

#[test]
fn it_accepts_only_the_registry_process_entries_and_its_runs_outlive_it() {
    let runs = tempfile::tempdir().unwrap();
    let launcher = launcher(runs.path());
    assert!(launcher.accepts("succeeds"));
    assert!(!launcher.accepts("inWasm"));
    assert!(!launcher.accepts("unknown"));
    assert_eq!(launcher.durability(), Durability::Detached);
}

#[tokio::test]
async fn a_launch_reports_progress_and_ends_with_the_handler_result() {
    let runs = tempfile::tempdir().unwrap();
    let launcher = launcher(runs.path());
    let sink = Arc::new(RecordingSink::default());
    let result = launcher.launch(&run("succeeds", json!({"n": 1})), sink.clone()).await;
    assert_eq!(result.output, Some(json!({"echo": {"n": 1}})));
    assert_eq!(result.progress.processing_state, Some(ProcessingState::Complete));
    assert_eq!(result.progress.processing_state_message.as_deref(), Some("succeeded"));
    let percents: Vec<f64> = sink
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|p| p.percent_complete)
        .collect();
    assert!(percents.contains(&50.0), "{percents:?}");
    // Times come from the launcher's clock, not the system's.
    assert_eq!(result.progress.started_time, Some(NOW));
    assert_eq!(result.progress.completed_time, Some(NOW));
}

#[tokio::test]
async fn a_failing_handler_is_a_failed_result_with_its_log_not_an_error() {
    let runs = tempfile::tempdir().unwrap();
    let result = launcher(runs.path())
        .launch(&run("fails", json!({})), Arc::new(RecordingSink::default()))
        .await;
    assert_eq!(result.output, None);
    assert_eq!(result.progress.processing_state_message.as_deref(), Some("failed"));
    let diagnostics = result.progress.diagnostic_events.unwrap_or_default();
    let text = serde_json::to_string(&diagnostics).unwrap();
    assert!(text.contains("broken"), "{text}");
}

#[tokio::test]
async fn a_finished_run_is_adopted_until_its_agenda_is_forgotten() {
    let runs = tempfile::tempdir().unwrap();
    let launcher = launcher(runs.path());
    let operation = run("succeeds", json!({"n": 2}));
    assert!(launcher.adopt(&operation).await.is_none(), "nothing ran yet");
    launcher.launch(&operation, Arc::new(RecordingSink::default())).await;
    // The server died after the handler finished, before recording it.
    let adopted = launcher.adopt(&operation).await.expect("the finished run is adopted");
    assert_eq!(adopted.output, Some(json!({"echo": {"n": 2}})));
    assert_eq!(adopted.progress.processing_state_message.as_deref(), Some("succeeded"));
    // Once the outcome is recorded the report goes, and a rerun runs again.
    launcher.forget_agenda("agenda-1").await;
    assert!(launcher.adopt(&operation).await.is_none());
    assert!(!launcher.report_file(&operation).exists());
}

#[tokio::test]
async fn a_run_left_by_a_dead_predecessor_is_reaped() {
    let runs = tempfile::tempdir().unwrap();
    let launcher = launcher(runs.path());
    let report = launcher.report_file(&run("succeeds", json!({})));
    // What a killed server leaves: a handler in its own process group,
    // reporting under the runs directory, with no parent waiting for it.
    let mut orphan = Command::new("/bin/sh")
        .args(["-c", "exec sleep 60"])
        .env("POP_REPORT_FILE", &report)
        .process_group(0)
        .spawn()
        .unwrap();
    let unrelated = tempfile::tempdir().unwrap();
    let mut bystander = Command::new("/bin/sh")
        .args(["-c", "exec sleep 60"])
        .env("POP_REPORT_FILE", unrelated.path().join("x.jsonl"))
        .process_group(0)
        .spawn()
        .unwrap();
    // /proc shows the environment once the child has exec'd: a condition
    // to wait for (bounded generously for a loaded machine), not a delay.
    let mut reaped = 0;
    for _ in 0..1000 {
        reaped = launcher.reap_orphans().await.unwrap();
        if reaped > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(reaped, 1);
    let status = orphan.wait().unwrap();
    assert!(!status.success(), "killed, not finished: {status:?}");
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "a process of another runs directory is left alone"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

/// What the data reaper asks: the agendas whose reports are kept, by id,
/// with when they were last written; forgetting one removes them.
#[tokio::test]
async fn kept_agendas_are_listed_by_id_until_forgotten() {
    let runs = tempfile::tempdir().unwrap();
    let launcher = launcher(runs.path());
    assert!(launcher.kept_agendas().await.unwrap().is_empty());
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut run = run("succeeds", json!({"n": 1}));
    run.agenda_id = "acme:agenda-7".into();
    launcher.launch(&run, Arc::new(RecordingSink::default())).await;
    let kept = launcher.kept_agendas().await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].0, "acme:agenda-7");
    assert!(kept[0].1 >= before - 1000, "last written at the launch: {kept:?}");
    launcher.forget_agenda("acme:agenda-7").await;
    assert!(launcher.kept_agendas().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_process_launcher_passes_the_launcher_suite() {
    let runs = tempfile::tempdir().unwrap();
    let fixture = pop_ports::launcher::conformance::LauncherFixture {
        launcher: Arc::new(launcher(runs.path())),
        succeeds: ("succeeds".into(), json!({"n": 1}), json!({"echo": {"n": 1}})),
        fails: ("fails".into(), json!({})),
        foreign: "inWasm".into(),
    };
    pop_ports::launcher::conformance::launcher_conformance(fixture).await;
}
