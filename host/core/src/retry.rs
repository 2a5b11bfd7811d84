//! Automatic retry of failed agendas (spec §6.2, fixed): how many attempts
//! an agenda gets, when the next one is due, and what its progress says.
//!
//! POP's retry Lambda reran every failed agenda at once from a DynamoDB
//! stream, with a default of 3 attempts and no backoff. Here an agenda gets
//! `params.maximumAttempts` attempts, else its insight's `maximumAttempts`,
//! else one (no retry), never more than [`MAX_ATTEMPTS`]; each retry waits
//! an exponential backoff with jitter, capped. The jitter is derived from
//! the agenda and attempt (this crate draws no random numbers), so agendas
//! that failed together spread out, and a decision is reproducible.

use crate::EpochMillis;

/// No agenda is attempted more often than this, whatever it asks for.
pub const MAX_ATTEMPTS: i64 = 20;
/// Attempts of an agenda when neither it nor its insight says.
pub const DEFAULT_MAXIMUM_ATTEMPTS: i64 = 1;
/// The agenda parameter (and insight field) naming the attempts.
pub const MAXIMUM_ATTEMPTS_PARAM: &str = "maximumAttempts";
/// The agenda parameter naming the first retry's backoff, in milliseconds.
pub const BACKOFF_PARAM: &str = "retryBackoffMs";
/// The first retry's backoff when the agenda does not say.
pub const DEFAULT_BACKOFF_MS: i64 = 1_000;
/// No backoff is longer than this.
pub const MAX_BACKOFF_MS: i64 = 15 * 60 * 1_000;

/// Progress fields of the retry state (set by the server only).
pub mod fields {
    /// `pending` while a retry is due or waiting for its time; `gaveUp`
    /// after the last attempt failed; empty once a rerun took the agenda.
    pub const STATE: &str = "retryState";
    /// When the pending retry is due (epoch ms).
    pub const NEXT_ATTEMPT_TIME: &str = "nextAttemptTime";
    pub const PENDING: &str = "pending";
    pub const GAVE_UP: &str = "gaveUp";
    /// What a rerun leaves: no retry pending.
    pub const NONE: &str = "";
}

/// The attempts an agenda gets: its own `maximumAttempts`, else its
/// insight's, else [`DEFAULT_MAXIMUM_ATTEMPTS`]; between 1 and
/// [`MAX_ATTEMPTS`].
pub fn maximum_attempts(agenda: Option<i64>, insight: Option<i64>) -> i64 {
    agenda
        .or(insight)
        .unwrap_or(DEFAULT_MAXIMUM_ATTEMPTS)
        .clamp(1, MAX_ATTEMPTS)
}

/// How long to wait before the retry that follows `attempts_completed`
/// failed attempts: `base × 2^(attempts − 1)`, capped at [`MAX_BACKOFF_MS`],
/// then scaled into its upper half by a jitter drawn from `seed` (the
/// agenda id): between 50 % and 100 % of the exponential value.
pub fn backoff_ms(base_ms: i64, attempts_completed: i64, seed: &str) -> i64 {
    let base = base_ms.clamp(0, MAX_BACKOFF_MS);
    let doublings = u32::try_from((attempts_completed - 1).clamp(0, 30)).unwrap_or(0);
    let exponential = base.saturating_mul(1_i64 << doublings).min(MAX_BACKOFF_MS);
    let half = exponential / 2;
    let spread = half + 1;
    half + (jitter(seed, attempts_completed) % spread as u64) as i64
}

/// FNV-1a of the seed and the attempt: a stable, well-spread number.
fn jitter(seed: &str, attempt: i64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in seed.bytes().chain(attempt.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// What follows a completed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterAttempt {
    /// It succeeded, or failed with no retry configured: nothing more.
    Done,
    /// It failed and attempts remain: attempt `attempt` is due at `due`.
    Retry { attempt: i64, due: EpochMillis },
    /// It failed and it was the last of `attempts` allowed.
    GaveUp { attempts: i64 },
}

impl AfterAttempt {
    /// The diagnostic the progress carries, if any.
    pub fn message(&self) -> Option<String> {
        match self {
            AfterAttempt::Done => None,
            AfterAttempt::Retry { attempt, due } => Some(format!(
                "Attempt {} failed; attempt {attempt} is due at {due} (epoch ms).",
                attempt - 1
            )),
            AfterAttempt::GaveUp { attempts } => Some(format!("gave up after {attempts} attempts")),
        }
    }
}

/// The decision after an attempt ended at `now`: `failed` or not, with
/// `attempts_completed` attempts now done (this one included) of `maximum`.
pub fn after_attempt(
    failed: bool,
    attempts_completed: i64,
    maximum: i64,
    base_backoff_ms: i64,
    seed: &str,
    now: EpochMillis,
) -> AfterAttempt {
    let maximum = maximum.clamp(1, MAX_ATTEMPTS);
    if !failed {
        return AfterAttempt::Done;
    }
    if attempts_completed < maximum {
        let due = now.saturating_add(backoff_ms(base_backoff_ms, attempts_completed, seed));
        return AfterAttempt::Retry {
            attempt: attempts_completed + 1,
            due,
        };
    }
    if maximum > 1 {
        return AfterAttempt::GaveUp {
            attempts: attempts_completed,
        };
    }
    AfterAttempt::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_come_from_the_agenda_then_the_insight_then_one() {
        let cases = [
            (Some(3), Some(5), 3),
            (None, Some(5), 5),
            (None, None, 1),
            (Some(0), None, 1),
            (Some(-4), Some(9), 1),
            (Some(50), None, MAX_ATTEMPTS),
        ];
        for (agenda, insight, expected) in cases {
            assert_eq!(maximum_attempts(agenda, insight), expected, "{agenda:?} {insight:?}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_in_its_upper_half_and_is_capped() {
        for attempts in 1..=6 {
            let exponential = (1_000_i64 << (attempts - 1)).min(MAX_BACKOFF_MS);
            for seed in ["a", "b", "agenda-17"] {
                let wait = backoff_ms(1_000, attempts, seed);
                assert!(
                    (exponential / 2..=exponential).contains(&wait),
                    "attempt {attempts}, {seed}: {wait} outside [{}, {exponential}]",
                    exponential / 2
                );
                assert_eq!(wait, backoff_ms(1_000, attempts, seed), "reproducible");
            }
        }
        assert!(backoff_ms(1_000, 40, "x") <= MAX_BACKOFF_MS);
        assert!(backoff_ms(i64::MAX, 3, "x") <= MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(0, 3, "x"), 0, "no backoff asked, none given");
        let spread: std::collections::HashSet<i64> =
            (0..50).map(|n| backoff_ms(10_000, 1, &format!("agenda-{n}"))).collect();
        assert!(spread.len() > 25, "agendas that failed together spread out: {spread:?}");
    }

    #[test]
    fn after_an_attempt_table() {
        use AfterAttempt::*;
        let now = 1_000_000;
        // (failed, attempts completed, maximum) → decision kind
        let cases: [(bool, i64, i64, &str); 7] = [
            (false, 1, 3, "done"),
            (true, 1, 1, "done"),
            (true, 1, 3, "retry 2"),
            (true, 2, 3, "retry 3"),
            (true, 3, 3, "gave up 3"),
            (true, 4, 3, "gave up 4"),
            (true, 25, 99, "gave up 25"),
        ];
        for (failed, attempts, maximum, expected) in cases {
            let decision = after_attempt(failed, attempts, maximum, 100, "a", now);
            let kind = match &decision {
                Done => "done".to_string(),
                Retry { attempt, due } => {
                    assert!(*due >= now + 50 && *due <= now + (100 << (attempts - 1)), "{due}");
                    format!("retry {attempt}")
                }
                GaveUp { attempts } => format!("gave up {attempts}"),
            };
            assert_eq!(kind, expected, "failed {failed}, {attempts} of {maximum}");
        }
        assert_eq!(
            GaveUp { attempts: 3 }.message().as_deref(),
            Some("gave up after 3 attempts")
        );
        assert!(Done.message().is_none());
    }
}
