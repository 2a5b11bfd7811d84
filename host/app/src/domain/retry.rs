//! What a completed attempt writes about the next one: the retry state the
//! retry job acts on ([`pop_core::retry`] decides). Both ways an attempt
//! completes use it: the embedded executor's final write and a remote
//! executor's `updateAgendaProgress`.

use pop_core::retry::{self, AfterAttempt, fields};
use pop_core::{CompleteStateMessage, DiagnosticEvent, EpochMillis};
use pop_ports::Document;
use serde_json::{Value, json};

use super::body::str_field;

/// The retry settings an agenda's progress carries (set at submission).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub maximum_attempts: i64,
    pub base_backoff_ms: i64,
    /// Spreads the jitter: the agenda id.
    pub seed: String,
}

impl RetryPolicy {
    /// The policy of the progress `progress` (its `maximumAttempts` and
    /// `params.retryBackoffMs`).
    pub fn of(progress: &Document) -> Self {
        let maximum = progress.get("maximumAttempts").and_then(number);
        let backoff = progress
            .get("params")
            .and_then(|p| p.get(retry::BACKOFF_PARAM))
            .and_then(number);
        let seed = str_field(progress, "agendaId")
            .or_else(|| str_field(progress, "id"))
            .unwrap_or_default();
        Self {
            maximum_attempts: retry::maximum_attempts(maximum, None),
            base_backoff_ms: backoff.unwrap_or(retry::DEFAULT_BACKOFF_MS),
            seed: seed.to_owned(),
        }
    }

    /// What follows an attempt that ended at `now`, `attempts_completed`
    /// attempts done counting it.
    pub fn after(&self, failed: bool, attempts_completed: i64, now: EpochMillis) -> AfterAttempt {
        retry::after_attempt(
            failed,
            attempts_completed,
            self.maximum_attempts,
            self.base_backoff_ms,
            &self.seed,
            now,
        )
    }
}

/// A number, or its text (POP's params are often strings).
fn number(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Whether a completion message means the attempt failed.
pub fn is_failure(message: Option<&str>) -> bool {
    message.is_some_and(|m| m.eq_ignore_ascii_case(CompleteStateMessage::Failed.as_str()))
}

/// The progress fields a completion sets for `decision`, and the
/// diagnostic it adds.
pub fn completion_fields(decision: &AfterAttempt, now: EpochMillis) -> (Document, Option<DiagnosticEvent>) {
    let mut patch = Document::new();
    match decision {
        AfterAttempt::Done => {}
        AfterAttempt::Retry { due, .. } => {
            patch.insert(fields::STATE.into(), json!(fields::PENDING));
            patch.insert(fields::NEXT_ATTEMPT_TIME.into(), json!(due));
        }
        AfterAttempt::GaveUp { .. } => {
            patch.insert(fields::STATE.into(), json!(fields::GAVE_UP));
        }
    }
    let event = decision.message().map(|message| DiagnosticEvent {
        message: Some(message),
        time: Some(now),
        ..Default::default()
    });
    (patch, event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(value: Value) -> Document {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn the_policy_is_read_from_the_progress() {
        let policy = RetryPolicy::of(&doc(json!({"id": "p", "agendaId": "a",
            "maximumAttempts": "3", "params": {"retryBackoffMs": 250}})));
        assert_eq!(
            policy,
            RetryPolicy {
                maximum_attempts: 3,
                base_backoff_ms: 250,
                seed: "a".into()
            }
        );
        let bare = RetryPolicy::of(&doc(json!({"id": "p"})));
        assert_eq!(bare.maximum_attempts, 1);
        assert_eq!(bare.base_backoff_ms, retry::DEFAULT_BACKOFF_MS);
        assert_eq!(
            RetryPolicy::of(&doc(json!({"maximumAttempts": 99}))).maximum_attempts,
            20
        );
    }

    #[test]
    fn completion_fields_per_decision() {
        let (patch, event) = completion_fields(&AfterAttempt::Retry { attempt: 2, due: 5_000 }, 4_000);
        assert_eq!(patch.get("retryState"), Some(&json!("pending")));
        assert_eq!(patch.get("nextAttemptTime"), Some(&json!(5_000)));
        assert!(event.unwrap().message.unwrap().contains("attempt 2 is due at 5000"));
        let (patch, event) = completion_fields(&AfterAttempt::GaveUp { attempts: 3 }, 4_000);
        assert_eq!(patch.get("retryState"), Some(&json!("gaveUp")));
        assert_eq!(event.unwrap().message.as_deref(), Some("gave up after 3 attempts"));
        let (patch, event) = completion_fields(&AfterAttempt::Done, 4_000);
        assert!(patch.is_empty() && event.is_none());
        assert!(is_failure(Some("FAILED")) && !is_failure(Some("succeeded")) && !is_failure(None));
    }
}
