//! What every `Launcher` adapter must show (run from each adapter's tests
//! with operation types of its own kind that behave as described).

use std::sync::{Arc, Mutex};

use pop_core::{CompleteStateMessage, Operation, OperationProgress, ProcessingState};
use serde_json::Value;

use super::{Launcher, OperationResult, OperationRun, ProgressSink};

/// The launcher under test and operations it runs.
pub struct LauncherFixture {
    pub launcher: Arc<dyn Launcher>,
    /// An operation type, a payload, and the output its run ends with.
    pub succeeds: (String, Value, Value),
    /// An operation type and a payload whose run fails in the handler.
    pub fails: (String, Value),
    /// A type this launcher does not run.
    pub foreign: String,
}

/// Runs every case on `fixture`.
pub async fn launcher_conformance(fixture: LauncherFixture) {
    case_accepts_its_own_types(&fixture);
    case_success_is_complete_with_its_output(&fixture).await;
    case_failure_is_a_result_with_a_diagnostic(&fixture).await;
    case_concurrent_runs_keep_their_outputs(&fixture).await;
    case_nothing_to_adopt_or_reap_is_fine(&fixture).await;
}

/// A run of `op_type` named `name` of agenda `agenda`.
pub fn run_of(agenda: &str, name: &str, op_type: &str, payload: Value) -> OperationRun {
    OperationRun {
        name: name.into(),
        operation: Operation {
            name: Some(name.into()),
            op_type: Some(op_type.into()),
            ..Default::default()
        },
        payload,
        last_progress: None,
        agenda_id: agenda.into(),
        progress_id: format!("{agenda}-progress"),
        customer_id: "conformance".into(),
        attempt: 1,
        placement: Default::default(),
        cid: format!("{agenda}-cid"),
    }
}

/// A sink that keeps every report.
#[derive(Default)]
pub struct RecordingSink(pub Mutex<Vec<OperationProgress>>);

impl ProgressSink for RecordingSink {
    fn report(&self, progress: &OperationProgress) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(progress.clone());
    }

    fn report_running(&self, percent: f64, message: &str) {
        self.report(&OperationProgress {
            processing_state: Some(ProcessingState::Executing),
            percent_complete: Some(percent),
            processing_state_message: Some(message.into()),
            ..Default::default()
        });
    }
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn assert_complete(result: &OperationResult, message: CompleteStateMessage, what: &str) {
    assert_eq!(
        result.progress.processing_state,
        Some(ProcessingState::Complete),
        "{what}: {result:?}"
    );
    assert_eq!(
        result.progress.processing_state_message.as_deref(),
        Some(message.as_str()),
        "{what}: {result:?}"
    );
}

pub fn case_accepts_its_own_types(f: &LauncherFixture) {
    assert!(f.launcher.accepts(&f.succeeds.0), "accepts {}", f.succeeds.0);
    assert!(f.launcher.accepts(&f.fails.0), "accepts {}", f.fails.0);
    assert!(!f.launcher.accepts(&f.foreign), "does not accept {}", f.foreign);
    assert!(!f.launcher.name().is_empty());
}

pub async fn case_success_is_complete_with_its_output(f: &LauncherFixture) {
    let (op_type, payload, expected) = &f.succeeds;
    let run = run_of(&unique("ok"), "op", op_type, payload.clone());
    let result = f.launcher.launch(&run, Arc::new(RecordingSink::default())).await;
    assert_complete(&result, CompleteStateMessage::Succeeded, "a succeeding run");
    assert_eq!(result.output.as_ref(), Some(expected), "the run's output");
    assert_eq!(result.progress.percent_complete, Some(100.0));
    if !expected.is_null() {
        let kept: Value = serde_json::from_str(result.progress.result_payload.as_deref().unwrap_or("null"))
            .expect("the result payload is the output's JSON");
        assert_eq!(&kept, expected, "the result payload holds the output");
    }
    assert!(result.progress.completed_time.is_some(), "a finished run says when");
    f.launcher.forget_agenda(&run.agenda_id).await;
}

pub async fn case_failure_is_a_result_with_a_diagnostic(f: &LauncherFixture) {
    let (op_type, payload) = &f.fails;
    let run = run_of(&unique("fail"), "op", op_type, payload.clone());
    let result = f.launcher.launch(&run, Arc::new(RecordingSink::default())).await;
    assert_complete(&result, CompleteStateMessage::Failed, "a failing run");
    assert!(result.output.is_none(), "a failed run has no output");
    let diagnostics = result.progress.diagnostic_events.unwrap_or_default();
    assert!(
        diagnostics
            .iter()
            .any(|d| d.message.as_deref().is_some_and(|m| !m.is_empty())),
        "a failure says why: {diagnostics:?}"
    );
    f.launcher.forget_agenda(&run.agenda_id).await;
}

pub async fn case_concurrent_runs_keep_their_outputs(f: &LauncherFixture) {
    let (op_type, payload, expected) = &f.succeeds;
    let agenda = unique("many");
    let runs: Vec<OperationRun> = (0..8)
        .map(|n| run_of(&agenda, &format!("op{n}"), op_type, payload.clone()))
        .collect();
    let launches = runs
        .iter()
        .map(|run| f.launcher.launch(run, Arc::new(RecordingSink::default())));
    for result in futures_util::future::join_all(launches).await {
        assert_complete(&result, CompleteStateMessage::Succeeded, "one of 8 runs at once");
        assert_eq!(result.output.as_ref(), Some(expected));
    }
    f.launcher.forget_agenda(&agenda).await;
}

pub async fn case_nothing_to_adopt_or_reap_is_fine(f: &LauncherFixture) {
    let (op_type, payload, _) = &f.succeeds;
    let mut run = run_of(&unique("fresh"), "op", op_type, payload.clone());
    run.last_progress = Some(OperationProgress {
        processing_state: Some(ProcessingState::Executing),
        ..Default::default()
    });
    assert!(
        f.launcher.adopt(&run).await.is_none(),
        "a run that never happened is not adopted"
    );
    f.launcher.forget_agenda("never-launched").await;
    let reaped = f.launcher.reap_orphans().await.expect("reaping with no predecessor");
    assert_eq!(reaped, 0, "nothing was left behind");
}
