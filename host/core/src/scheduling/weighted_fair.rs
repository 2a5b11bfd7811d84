use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use serde::{Deserialize, Serialize};

use super::{Queues, ScheduleError, ScheduleInput, ScheduleOutput};

/// Configuration of `WeightedFair`: customer id → weight.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct WeightedFairConfig {
    pub weights: BTreeMap<String, f64>,
    /// Weight of customers not listed.
    pub default_weight: f64,
}

impl Default for WeightedFairConfig {
    fn default() -> Self {
        Self {
            weights: BTreeMap::new(),
            default_weight: 1.0,
        }
    }
}

impl WeightedFairConfig {
    pub fn parse(config: &str) -> Result<Self, ScheduleError> {
        let parsed: Self = if config.trim().is_empty() {
            Self::default()
        } else {
            serde_json::from_str(config).map_err(|e| ScheduleError::InvalidConfig(e.to_string()))?
        };
        let positive = |w: f64| w.is_finite() && w > 0.0;
        if !positive(parsed.default_weight) || !parsed.weights.values().all(|&w| positive(w)) {
            return Err(ScheduleError::InvalidConfig("weights must be positive numbers".into()));
        }
        Ok(parsed)
    }

    fn weight(&self, customer: &str) -> f64 {
        self.weights.get(customer).copied().unwrap_or(self.default_weight)
    }
}

/// Weighted-fair state: each customer's virtual time (releases divided by
/// weight), carried across decisions so shares hold over time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedFairState {
    pub virtual_time: BTreeMap<String, f64>,
}

impl WeightedFairState {
    pub fn decode(bytes: &[u8]) -> Result<Self, ScheduleError> {
        super::decode_json_state(bytes)
    }

    pub fn encode(&self) -> Vec<u8> {
        super::encode_json_state(self)
    }
}

/// Virtual time in fixed point so that it orders totally in a heap.
fn ticks(v: f64) -> u64 {
    (v * 1_000_000.0) as u64
}

/// `WeightedFair` (stride scheduling): the customer with the least virtual
/// time goes next; each release advances it by `1 / weight`, so over time
/// customers get slots in proportion to their weights. Running agendas count
/// as already released. A customer returning after idling starts at the
/// smallest virtual time of those with work, so idling earns no credit.
pub fn weighted_fair(input: &ScheduleInput<'_>) -> Result<ScheduleOutput, ScheduleError> {
    let config = WeightedFairConfig::parse(input.config)?;
    let mut state = WeightedFairState::decode(input.state)?;
    let mut queues = Queues::new(input);
    let with_work: Vec<usize> = (0..queues.len()).filter(|&c| !queues.is_empty(c)).collect();
    // Each customer's id is looked up once in the state and once in the
    // weights; string-keyed map searches were most of a decision.
    let previous: Vec<Option<f64>> = with_work
        .iter()
        .map(|&c| state.virtual_time.get(&input.customers[c]).copied())
        .collect();
    let floor = previous.iter().flatten().copied().fold(f64::INFINITY, f64::min);
    let floor = if floor.is_finite() { floor } else { 0.0 };
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::with_capacity(with_work.len());
    let mut time: Vec<f64> = vec![0.0; queues.len()];
    let mut weight: Vec<f64> = vec![config.default_weight; queues.len()];
    for (&c, previous) in with_work.iter().zip(&previous) {
        weight[c] = config.weight(&input.customers[c]);
        let running = f64::from(input.running.get(c).copied().unwrap_or(0)) / weight[c];
        time[c] = previous.unwrap_or(floor).max(floor).max(running);
        heap.push(Reverse((ticks(time[c]), c)));
    }
    let mut release = Vec::with_capacity(input.free_slots as usize);
    while release.len() < input.free_slots as usize {
        let Some(Reverse((_, c))) = heap.pop() else { break };
        let Some(index) = queues.pop_front(c) else { continue };
        release.push(index);
        time[c] += 1.0 / weight[c];
        if !queues.is_empty(c) {
            heap.push(Reverse((ticks(time[c]), c)));
        }
    }
    for (&c, previous) in with_work.iter().zip(&previous) {
        let id = &input.customers[c];
        // Known ids are updated in place: no key to clone and drop.
        match previous.and_then(|_| state.virtual_time.get_mut(id)) {
            Some(slot) => *slot = time[c],
            None => {
                state.virtual_time.insert(id.clone(), time[c]);
            }
        }
    }
    // Forget customers that have neither work nor a lead to remember.
    let min_active = with_work.iter().map(|&c| time[c]).fold(f64::INFINITY, f64::min);
    state
        .virtual_time
        .retain(|_, t| !min_active.is_finite() || *t > min_active);
    Ok(ScheduleOutput {
        release,
        state: state.encode(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn shares_follow_weights() {
        let c = customers(&["gold", "silver", "bronze"]);
        let items: Vec<(u32, i32, u64)> = (0..300).map(|i| ((i % 3) as u32, 0, i as u64)).collect();
        let mut p = pending(&items);
        let config = r#"{"weights": {"gold": 3, "silver": 2}, "defaultWeight": 1}"#;
        let mut state = Vec::new();
        let mut counts = [0usize; 3];
        for _ in 0..30 {
            let running = [0, 0, 0];
            let out = weighted_fair(&input(&c, &p, &running, 2, config, &state)).unwrap();
            let mut released: Vec<usize> = out.release.iter().map(|&i| i as usize).collect();
            for &i in &released {
                counts[p[i].customer as usize] += 1;
            }
            released.sort_unstable_by(|a, b| b.cmp(a));
            for i in released {
                p.remove(i);
            }
            state = out.state;
        }
        assert_eq!(counts, [30, 20, 10], "60 slots split 3:2:1");
    }

    #[test]
    fn idle_customers_earn_no_credit_and_oldest_goes_first() {
        let c = customers(&["a", "b"]);
        let p = pending(&[(0, 0, 1), (0, 0, 2), (1, 0, 3), (1, 0, 4)]);
        // a has run far ahead in the past; b has no history.
        let state = WeightedFairState {
            virtual_time: [("a".to_string(), 100.0)].into(),
        }
        .encode();
        let running = [0, 0];
        let out = weighted_fair(&input(&c, &p, &running, 4, "{}", &state)).unwrap();
        // b starts at a's level (the floor), not at 0: they alternate.
        assert_eq!(out.release, vec![0, 2, 1, 3]);
    }

    #[test]
    fn running_work_counts_against_a_customer() {
        let c = customers(&["a", "b"]);
        let p = pending(&[(0, 0, 1), (1, 0, 2)]);
        let running = [5, 0];
        let out = weighted_fair(&input(&c, &p, &running, 1, "{}", &[])).unwrap();
        assert_eq!(out.release, vec![1]);
    }

    #[test]
    fn invalid_weights_are_rejected() {
        for config in [
            r#"{"weights": {"a": 0}}"#,
            r#"{"defaultWeight": -1}"#,
            r#"{"weights": 3}"#,
        ] {
            assert!(WeightedFairConfig::parse(config).is_err(), "{config}");
        }
    }
}
