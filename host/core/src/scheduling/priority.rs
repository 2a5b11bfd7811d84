use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::Deserialize;

use super::{ScheduleError, ScheduleInput, ScheduleOutput};

/// Configuration of `Priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct PriorityConfig {
    /// Waiting this long raises an agenda's priority by one level, so low
    /// priorities never starve. 0 disables aging.
    pub aging_ms: u64,
}

impl Default for PriorityConfig {
    fn default() -> Self {
        Self { aging_ms: 60_000 }
    }
}

impl PriorityConfig {
    pub fn parse(config: &str) -> Result<Self, ScheduleError> {
        if config.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_slice(config.as_bytes()).map_err(|e| ScheduleError::InvalidConfig(e.to_string()))
    }
}

/// Ranking of one pending agenda: effective priority, then older first,
/// then earlier in the backlog (greater is better).
type Rank = (i64, Reverse<u64>, Reverse<u32>);

/// `Priority`: the highest effective priority first, where the effective
/// priority is the agenda's priority plus one level per `agingMs` waited;
/// ties go to the older agenda.
pub fn priority(input: &ScheduleInput<'_>) -> Result<ScheduleOutput, ScheduleError> {
    let config = PriorityConfig::parse(input.config)?;
    let wanted = input.free_slots as usize;
    // Keep the best `wanted` in a min-heap: O(n log k) for a small k.
    let mut best: BinaryHeap<Reverse<Rank>> = BinaryHeap::with_capacity(wanted + 1);
    if wanted == 0 {
        return Ok(ScheduleOutput::default());
    }
    for (index, agenda) in input.pending.iter().enumerate() {
        let waited = input.now_ms.saturating_sub(agenda.added_ms);
        let aged = waited.checked_div(config.aging_ms).unwrap_or(0).min(i32::MAX as u64) as i64;
        let key = (
            i64::from(agenda.priority) + aged,
            Reverse(agenda.added_ms),
            Reverse(index as u32),
        );
        if best.len() < wanted {
            best.push(Reverse(key));
        } else if best.peek().is_some_and(|Reverse(worst)| key > *worst) {
            best.pop();
            best.push(Reverse(key));
        }
    }
    let mut chosen: Vec<_> = best.into_iter().map(|Reverse(key)| key).collect();
    chosen.sort_by(|a, b| b.cmp(a));
    Ok(ScheduleOutput {
        release: chosen.into_iter().map(|(_, _, Reverse(i))| i).collect(),
        state: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn highest_first_then_oldest() {
        let c = customers(&["a"]);
        let now = 1_000_000;
        let p = pending(&[(0, 1, now - 10), (0, 5, now - 5), (0, 5, now - 8), (0, 0, now - 1)]);
        let running = [0];
        let out = priority(&input(&c, &p, &running, 3, r#"{"agingMs": 0}"#, &[])).unwrap();
        assert_eq!(out.release, vec![2, 1, 0]);
    }

    #[test]
    fn aging_lets_old_low_priority_work_through() {
        let c = customers(&["a"]);
        let now = 1_000_000;
        // Priority 0 waiting 10 minutes beats priority 5 submitted just now.
        let p = pending(&[(0, 5, now), (0, 0, now - 600_000)]);
        let running = [0];
        let aged = priority(&input(&c, &p, &running, 1, r#"{"agingMs": 60000}"#, &[])).unwrap();
        assert_eq!(aged.release, vec![1]);
        let strict = priority(&input(&c, &p, &running, 1, r#"{"agingMs": 0}"#, &[])).unwrap();
        assert_eq!(strict.release, vec![0]);
    }

    #[test]
    fn bad_config_is_an_error() {
        let c = customers(&["a"]);
        let p = pending(&[(0, 0, 1)]);
        let running = [0];
        let err = priority(&input(&c, &p, &running, 1, r#"{"agingMs": "soon"}"#, &[])).unwrap_err();
        assert!(matches!(err, ScheduleError::InvalidConfig(_)));
    }
}
