use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use serde::{Deserialize, Serialize};

use super::state::{self, FastMap, Id};
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
            serde_json::from_slice(config.as_bytes()).map_err(|e| ScheduleError::InvalidConfig(e.to_string()))?
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

    /// Virtual time one release costs `customer`: `1 / weight` releases, in
    /// ticks, at least one.
    fn stride(&self, customer: &str) -> u64 {
        // `as` saturates: a vanishing weight costs u64::MAX per release.
        (TICKS_PER_RELEASE / self.weight(customer)).round().max(1.0) as u64
    }
}

/// Fixed-point units of virtual time in one release at weight 1.
pub const TICKS_PER_RELEASE: f64 = 1_000_000.0;

/// Weighted-fair state: each customer's virtual time (releases divided by
/// weight, in [`TICKS_PER_RELEASE`] fixed point), carried across decisions
/// so shares hold over time. Integers, not floats: exact, and reading and
/// writing them is a fraction of the cost, in WebAssembly most of all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedFairState {
    #[serde(default)]
    pub virtual_ticks: BTreeMap<String, u64>,
}

impl WeightedFairState {
    pub fn decode(bytes: &[u8]) -> Result<Self, ScheduleError> {
        state::decode_owned(bytes)
    }

    pub fn encode(&self) -> Vec<u8> {
        state::encode(self)
    }
}

/// [`WeightedFairState`] as a decision reads it: ids borrowed from the bytes.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateIn<'a> {
    // Missing in states written before virtual time was fixed point
    // (`virtualTime`): those customers start afresh at the floor.
    #[serde(borrow, default, deserialize_with = "state::entries")]
    virtual_ticks: Vec<(Id<'a>, u64)>,
}

/// [`WeightedFairState`] as a decision writes it: ids borrowed from the
/// input, customers with work first (in customer order), then the ones
/// remembered from before.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StateOut<'a> {
    #[serde(serialize_with = "state::object")]
    virtual_ticks: Vec<(&'a str, u64)>,
}

/// `WeightedFair` (stride scheduling): the customer with the least virtual
/// time goes next; each release advances it by `1 / weight`, so over time
/// customers get slots in proportion to their weights. Running agendas count
/// as already released. A customer returning after idling starts at the
/// smallest virtual time of those with work, so idling earns no credit.
pub fn weighted_fair(input: &ScheduleInput<'_>) -> Result<ScheduleOutput, ScheduleError> {
    let config = WeightedFairConfig::parse(input.config)?;
    let state: StateIn = state::decode(input.state)?;
    // A later duplicate id wins, as it would in a map.
    let mut remembered: FastMap<&str, u64> = FastMap::default();
    remembered.reserve(state.virtual_ticks.len());
    for (id, ticks) in &state.virtual_ticks {
        remembered.insert(id.as_str(), *ticks);
    }
    let mut queues = Queues::new(input);
    let with_work: Vec<usize> = (0..queues.len()).filter(|&c| !queues.is_empty(c)).collect();
    let previous: Vec<Option<u64>> = with_work
        .iter()
        .map(|&c| remembered.get(&input.customers[c]).copied())
        .collect();
    let floor = previous.iter().flatten().copied().min().unwrap_or(0);
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::with_capacity(with_work.len());
    let mut time = vec![0u64; queues.len()];
    let mut stride = vec![0u64; queues.len()];
    for (&c, previous) in with_work.iter().zip(&previous) {
        stride[c] = config.stride(&input.customers[c]);
        let running = u64::from(input.running.get(c).copied().unwrap_or(0)).saturating_mul(stride[c]);
        time[c] = previous.unwrap_or(floor).max(floor).max(running);
        heap.push(Reverse((time[c], c)));
    }
    let mut release = Vec::with_capacity(input.free_slots as usize);
    while release.len() < input.free_slots as usize {
        let Some(Reverse((_, c))) = heap.pop() else { break };
        let Some(index) = queues.pop_front(c) else { continue };
        release.push(index);
        time[c] = time[c].saturating_add(stride[c]);
        if !queues.is_empty(c) {
            heap.push(Reverse((time[c], c)));
        }
    }
    // Forget customers that have neither work nor a lead to remember.
    let min_active = with_work.iter().map(|&c| time[c]).min();
    let worth_keeping = |ticks: u64| min_active.is_none_or(|least| ticks > least);
    let mut kept: Vec<(&str, u64)> = Vec::with_capacity(with_work.len() + remembered.len());
    for &c in &with_work {
        let id = &input.customers[c];
        remembered.remove(id);
        if worth_keeping(time[c]) {
            kept.push((id, time[c]));
        }
    }
    for (id, _) in &state.virtual_ticks {
        if let Some(ticks) = remembered.remove(id.as_str())
            && worth_keeping(ticks)
        {
            kept.push((id.as_str(), ticks));
        }
    }
    Ok(ScheduleOutput {
        release,
        state: state::encode(&StateOut { virtual_ticks: kept }),
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
            virtual_ticks: [("a".to_string(), 100 * TICKS_PER_RELEASE as u64)].into(),
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
