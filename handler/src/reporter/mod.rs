//! POP's reporter (§5.2): `executing` (EXECUTING with a percentage), `succeeded` (COMPLETE,
//! `succeeded`, 100 %, the result), `failed` (COMPLETE, `failed`, diagnostics). Once a COMPLETE
//! progress is set, later progress is ignored: the first verdict is the one the launcher
//! records, whichever way the handler's code goes on.

mod annotations;
mod destination;
#[cfg(feature = "kubernetes")]
mod pod;
mod progress;
mod sink;
mod throttle;

use pop_core::{CompleteStateMessage, DiagnosticEvent, OperationProgress, ProcessingState};
use serde_json::Value;

use crate::inputs::{Env, Metadata};

pub use annotations::{PAYLOAD_ANNOTATION, PROGRESS_ANNOTATION, annotation_patch};
pub use destination::{DEFAULT_INTERVAL, Destination, INTERVAL_ENV, OpenError};
#[cfg(feature = "kubernetes")]
pub use pod::{PodError, PodPublisher};
pub use sink::{FileSink, LogSink, Sink};
pub use throttle::{Publish, Retry, Throttle, Tick};

use progress::ProgressShape;
pub(crate) use progress::now_millis;

/// How the operation ended, as the first COMPLETE progress said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    Succeeded,
    Failed,
}

impl Conclusion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

pub struct Reporter {
    shape: ProgressShape,
    sink: Box<dyn Sink>,
    conclusion: Option<Conclusion>,
}

impl Reporter {
    /// The reporter for this environment ([`Destination::choose`]); a destination that cannot
    /// be opened falls back to the report file or the log, with a warning line.
    pub fn from_env(metadata: &Metadata, env: Env<'_>) -> Self {
        let destination = Destination::choose(env);
        let sink = destination.open().unwrap_or_else(|e| {
            let local = Destination::local(env);
            println!("warning: cannot report to {destination} ({e}); reporting to {local}");
            local.open().unwrap_or_else(|e| {
                println!("warning: {e}; reporting to the log");
                Box::new(LogSink)
            })
        });
        Self::with_sink(metadata, sink)
    }

    /// A reporter sending to `sink` (a handler's tests record reports this way).
    pub fn with_sink(metadata: &Metadata, sink: Box<dyn Sink>) -> Self {
        Self {
            shape: ProgressShape::new(metadata.operation_name.clone()),
            sink,
            conclusion: None,
        }
    }

    /// POP's `addProgress(message, percent)`: EXECUTING.
    pub fn executing(&mut self, message: &str, percent: f64) {
        let progress = OperationProgress {
            percent_complete: Some(percent),
            ..self.shape.progress(ProcessingState::Executing, message)
        };
        self.send(progress, None);
    }

    /// POP's `addProgress(state, message)`. A COMPLETE state concludes the operation, failed
    /// unless the message is `succeeded` (any case).
    pub fn progress(&mut self, state: ProcessingState, message: &str) {
        let progress = self.shape.progress(state, message);
        self.send(progress, None);
    }

    /// POP's `addSucceeded(result)`: COMPLETE, `succeeded`, 100 %, the result as
    /// `pop.report.payload` and as the progress's `resultPayload`.
    pub fn succeeded(&mut self, result: &Value) {
        let progress = OperationProgress {
            percent_complete: Some(100.0),
            result_payload: Some(result.to_string()),
            ..self
                .shape
                .progress(ProcessingState::Complete, CompleteStateMessage::Succeeded.as_str())
        };
        self.send(progress, Some(result));
    }

    /// POP's `addFailed`: COMPLETE, `failed`, with one diagnostic saying `message`.
    pub fn failed(&mut self, message: &str) {
        let event = DiagnosticEvent {
            message: Some(message.to_owned()),
            time: Some(now_millis()),
            ..Default::default()
        };
        self.failed_with(vec![event], None);
    }

    /// POP's `addFailed(diagnostics, payload)`: COMPLETE, `failed`, these diagnostics, and the
    /// payload as `pop.report.payload` when given.
    pub fn failed_with(&mut self, diagnostics: Vec<DiagnosticEvent>, payload: Option<Value>) {
        let progress = OperationProgress {
            diagnostic_events: Some(diagnostics),
            ..self
                .shape
                .progress(ProcessingState::Complete, CompleteStateMessage::Failed.as_str())
        };
        self.send(progress, payload.as_ref());
    }

    /// The verdict of the first COMPLETE progress, `None` while the operation runs.
    pub fn conclusion(&self) -> Option<Conclusion> {
        self.conclusion
    }

    /// Waits until everything reported so far was delivered (the final pod report sent or
    /// given up on after its retries). Nothing can be reported after a flush that followed a
    /// COMPLETE, so it is where a handler may say "my result is out".
    pub fn flush(&mut self) {
        self.sink.flush();
    }

    /// Flushes and ends the reporter (dropping it does the same).
    pub fn finish(mut self) {
        self.flush();
    }

    fn send(&mut self, progress: OperationProgress, result: Option<&Value>) {
        if self.conclusion.is_some() {
            return;
        }
        if progress.processing_state == Some(ProcessingState::Complete) {
            let succeeded = progress
                .processing_state_message
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(CompleteStateMessage::Succeeded.as_str()));
            self.conclusion = Some(if succeeded {
                Conclusion::Succeeded
            } else {
                Conclusion::Failed
            });
            self.sink.complete(&progress, result);
        } else {
            self.sink.progress(&progress);
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.sink.flush();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use super::*;

    /// What a sink was handed: `(progress, result, complete)`.
    pub(crate) type Seen = Arc<Mutex<Vec<(OperationProgress, Option<Value>, bool)>>>;

    pub(crate) struct Recording(pub(crate) Seen);

    impl Sink for Recording {
        fn progress(&mut self, progress: &OperationProgress) {
            self.0.lock().unwrap().push((progress.clone(), None, false));
        }
        fn complete(&mut self, progress: &OperationProgress, result: Option<&Value>) {
            self.0.lock().unwrap().push((progress.clone(), result.cloned(), true));
        }
    }

    pub(crate) fn recording(operation: &str) -> (Reporter, Seen) {
        let seen = Seen::default();
        let metadata = Metadata {
            operation_name: Some(operation.into()),
            ..Default::default()
        };
        (Reporter::with_sink(&metadata, Box::new(Recording(seen.clone()))), seen)
    }

    #[test]
    fn progress_has_pops_shape() {
        let (mut reporter, seen) = recording("op1");
        reporter.executing("Sleeping 1/2", 50.0);
        reporter.succeeded(&json!({"out": 1}));
        let seen = seen.lock().unwrap();
        let (executing, _, complete) = &seen[0];
        assert!(!complete);
        assert_eq!(executing.operation.as_deref(), Some("op1"));
        assert_eq!(executing.processing_state, Some(ProcessingState::Executing));
        assert_eq!(executing.percent_complete, Some(50.0));
        assert_eq!(executing.completed_time, None);
        let job_id = executing.params.as_ref().and_then(|p| p.get_string("JobId"));
        assert!(job_id.is_some());

        let (done, result, complete) = &seen[1];
        assert!(complete);
        assert_eq!(result, &Some(json!({"out": 1})));
        assert_eq!(done.processing_state_message.as_deref(), Some("succeeded"));
        assert_eq!(done.percent_complete, Some(100.0));
        assert_eq!(done.result_payload.as_deref(), Some(r#"{"out":1}"#));
        assert_eq!(done.started_time, executing.started_time, "the handler's start");
        assert!(done.completed_time.is_some());
        assert_eq!(done.params.as_ref().and_then(|p| p.get_string("JobId")), job_id);
        assert_eq!(reporter.conclusion(), Some(Conclusion::Succeeded));
    }

    #[test]
    fn complete_is_sticky() {
        let (mut reporter, seen) = recording("op1");
        reporter.failed("broken");
        reporter.executing("still going", 10.0);
        reporter.succeeded(&json!(1));
        reporter.progress(ProcessingState::Complete, "succeeded");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        let events = seen[0].0.diagnostic_events.clone().unwrap_or_default();
        assert_eq!(events[0].message.as_deref(), Some("broken"));
        assert_eq!(reporter.conclusion(), Some(Conclusion::Failed));
    }

    #[test]
    fn a_complete_state_concludes_by_its_message() {
        let (mut reporter, _) = recording("op1");
        reporter.progress(ProcessingState::Executing, "working");
        assert_eq!(reporter.conclusion(), None);
        reporter.progress(ProcessingState::Complete, "SUCCEEDED");
        assert_eq!(reporter.conclusion(), Some(Conclusion::Succeeded));
    }
}
