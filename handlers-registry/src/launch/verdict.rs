//! Turning what was observed of a handler run into success or failure.

use std::process::ExitStatus;

use pop_core::{DiagnosticEvent, OperationProgress, ProcessingState};
use serde_json::Value;

use crate::launch::{Failure, LaunchOutput, Outcome};

/// Why the launcher stopped a handler before it exited on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Timeout,
    Quiet,
}

/// Everything the verdict depends on, gathered while following the process.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    pub exit: Option<ExitStatus>,
    pub stop: Option<Stop>,
    pub timeout_ms: u64,
    pub stdout_timeout_ms: u64,
    /// The configured end-of-log identifier and whether a log line contained it.
    pub marker: Option<String>,
    pub marker_seen: bool,
    /// The handler's latest progress; frozen once it reported COMPLETE.
    pub progress: Option<OperationProgress>,
    pub result: Option<Value>,
    pub log_tail: Vec<String>,
    pub operation_name: Option<String>,
    pub started_time: i64,
    pub completed_time: i64,
}

const SUCCEEDED: &str = "succeeded";
const FAILED: &str = "failed";

impl Observed {
    fn reported_complete(&self) -> Option<&OperationProgress> {
        self.progress
            .as_ref()
            .filter(|p| p.processing_state == Some(ProcessingState::Complete))
    }

    /// The failure, if any. Order matters: the strongest evidence decides.
    fn failure(&self) -> Option<Failure> {
        let handler_verdict = || {
            let complete = self.reported_complete()?;
            let state = complete.processing_state_message.clone().unwrap_or_default();
            (!state.eq_ignore_ascii_case(SUCCEEDED)).then_some(Failure::Reported { state })
        };
        if let Some(stop) = self.stop {
            // §5.3.6: a timeout after a COMPLETE progress means "completed but did not exit
            // gracefully"; the handler's own verdict stands.
            if self.reported_complete().is_some() {
                return handler_verdict();
            }
            return Some(match stop {
                Stop::Timeout => Failure::TimedOut {
                    timeout_ms: self.timeout_ms,
                },
                Stop::Quiet => Failure::Quiet {
                    stdout_timeout_ms: self.stdout_timeout_ms,
                },
            });
        }
        match self.exit.map(|status| status.code()) {
            Some(Some(0)) => {}
            Some(Some(code)) => return Some(Failure::ExitCode { code }),
            Some(None) | None => return Some(Failure::Signalled),
        }
        if let Some(marker) = self.marker.as_ref().filter(|_| !self.marker_seen) {
            return Some(Failure::NoEndOfLog { marker: marker.clone() });
        }
        // A process that never used the report file but exited 0 with the marker succeeds: the
        // exit code is a stronger signal locally than a pod phase was in POP.
        handler_verdict()
    }

    pub fn into_output(self) -> LaunchOutput {
        let failure = self.failure();
        let mut progress = self.progress.clone().unwrap_or_default();
        progress.operation = self.operation_name.clone().or(progress.operation);
        progress.processing_state = Some(ProcessingState::Complete);
        progress.started_time = progress.started_time.or(Some(self.started_time));
        progress.completed_time = progress.completed_time.or(Some(self.completed_time));
        let outcome = match failure {
            None => {
                progress.processing_state_message = Some(SUCCEEDED.to_owned());
                progress.percent_complete = Some(100.0);
                let output = self.result.clone().unwrap_or(Value::Null);
                progress.result_payload = self.result.as_ref().map(Value::to_string);
                Outcome::Succeeded { output }
            }
            Some(failure) => {
                progress.processing_state_message = Some(FAILED.to_owned());
                // The handler's own diagnostics first, then ours with the log tail (§5.5).
                progress
                    .diagnostic_events
                    .get_or_insert_with(Vec::new)
                    .push(DiagnosticEvent {
                        message: Some(failure.to_string()),
                        time: Some(self.completed_time),
                        payload: Some(Value::from(self.log_tail.clone())),
                        ..Default::default()
                    });
                Outcome::Failed { failure }
            }
        };
        LaunchOutput {
            outcome,
            progress,
            exit_code: self.exit.and_then(|status| status.code()),
            log_tail: self.log_tail,
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn exited(code: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(code << 8))
    }

    fn complete(message: &str) -> Option<OperationProgress> {
        Some(OperationProgress {
            processing_state: Some(ProcessingState::Complete),
            processing_state_message: Some(message.into()),
            ..Default::default()
        })
    }

    fn marker() -> Option<String> {
        Some("HandlerComplete".into())
    }

    #[test]
    fn verdict_table() {
        let cases: Vec<(&str, Observed, Option<Failure>)> = vec![
            (
                "clean",
                Observed {
                    exit: exited(0),
                    marker: marker(),
                    marker_seen: true,
                    ..Default::default()
                },
                None,
            ),
            (
                "no marker configured",
                Observed {
                    exit: exited(0),
                    ..Default::default()
                },
                None,
            ),
            (
                "marker missing",
                Observed {
                    exit: exited(0),
                    marker: marker(),
                    ..Default::default()
                },
                Some(Failure::NoEndOfLog {
                    marker: "HandlerComplete".into(),
                }),
            ),
            (
                "exit code wins over a succeeded report",
                Observed {
                    exit: exited(3),
                    progress: complete("succeeded"),
                    ..Default::default()
                },
                Some(Failure::ExitCode { code: 3 }),
            ),
            (
                "signal",
                Observed {
                    exit: Some(ExitStatus::from_raw(9)),
                    ..Default::default()
                },
                Some(Failure::Signalled),
            ),
            (
                "reported failure with exit 0",
                Observed {
                    exit: exited(0),
                    progress: complete("failed"),
                    ..Default::default()
                },
                Some(Failure::Reported { state: "failed".into() }),
            ),
            (
                "case-insensitive succeeded",
                Observed {
                    exit: exited(0),
                    progress: complete("SUCCEEDED"),
                    ..Default::default()
                },
                None,
            ),
            (
                "quiet",
                Observed {
                    stop: Some(Stop::Quiet),
                    stdout_timeout_ms: 5,
                    ..Default::default()
                },
                Some(Failure::Quiet { stdout_timeout_ms: 5 }),
            ),
            (
                "timeout",
                Observed {
                    stop: Some(Stop::Timeout),
                    timeout_ms: 7,
                    ..Default::default()
                },
                Some(Failure::TimedOut { timeout_ms: 7 }),
            ),
            (
                "timeout after COMPLETE is not graceful but done",
                Observed {
                    stop: Some(Stop::Timeout),
                    progress: complete("succeeded"),
                    ..Default::default()
                },
                None,
            ),
        ];
        for (name, observed, expected) in cases {
            assert_eq!(observed.failure(), expected, "{name}");
        }
    }

    #[test]
    fn failure_progress_carries_the_log_tail() {
        let observed = Observed {
            exit: exited(1),
            log_tail: vec!["a".into(), "b".into()],
            operation_name: Some("op".into()),
            completed_time: 42,
            ..Default::default()
        };
        let output = observed.into_output();
        assert_eq!(output.exit_code, Some(1));
        assert_eq!(output.progress.operation.as_deref(), Some("op"));
        assert_eq!(output.progress.processing_state_message.as_deref(), Some("failed"));
        let events = output.progress.diagnostic_events.unwrap();
        assert_eq!(events[0].payload, Some(serde_json::json!(["a", "b"])));
        assert_eq!(events[0].message.as_deref(), Some("handler process exited with code 1"));
    }
}
