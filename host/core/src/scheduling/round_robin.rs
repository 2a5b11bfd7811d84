use serde::{Deserialize, Serialize};

use super::state::{self, FastMap, Id};
use super::{Queues, ScheduleError, ScheduleInput, ScheduleOutput};

/// Round-robin state: the customers that have not had their turn in the
/// current cycle (POP's `InsightScheduleInfo.pendingCustomerIds`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundRobinState {
    pub pending_customer_ids: Vec<String>,
}

impl RoundRobinState {
    pub fn decode(bytes: &[u8]) -> Result<Self, ScheduleError> {
        state::decode_owned(bytes)
    }

    pub fn encode(&self) -> Vec<u8> {
        state::encode(self)
    }
}

/// [`RoundRobinState`] as a decision reads it: ids borrowed from the bytes.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateIn<'a> {
    #[serde(borrow)]
    pending_customer_ids: Vec<Id<'a>>,
}

/// [`RoundRobinState`] as a decision writes it: ids borrowed from the input.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StateOut<'a> {
    pending_customer_ids: Vec<&'a str>,
}

/// `RoundRobin` (spec §4.4): every customer with work gets at most one slot
/// per round, and a customer who got a slot goes to the back of the cycle.
///
/// Pass 1 gives one agenda to each customer still waiting for its turn in
/// the current cycle. If slots remain, pass 2 runs whole rounds over the
/// cycle's customers until the slots are used or nobody has work left.
pub fn round_robin(input: &ScheduleInput<'_>) -> Result<ScheduleOutput, ScheduleError> {
    let state: StateIn = state::decode(input.state)?;
    let ids = |customers: &[usize]| StateOut {
        pending_customer_ids: customers.iter().map(|&c| &input.customers[c]).collect(),
    };
    let requested = input.free_slots as usize;
    if requested == 0 {
        let kept = StateOut {
            pending_customer_ids: state.pending_customer_ids.iter().map(Id::as_str).collect(),
        };
        return Ok(ScheduleOutput {
            release: Vec::new(),
            state: state::encode(&kept),
        });
    }
    let customers = input.customers.len();
    let mut cycle: Vec<usize> = if state.pending_customer_ids.is_empty() {
        Vec::new()
    } else {
        // The cycle can name every customer: one index instead of a linear
        // search per name, which was quadratic in the number of customers.
        let mut index: FastMap<&str, usize> = FastMap::default();
        index.reserve(customers);
        for (i, id) in input.customers.iter().enumerate() {
            index.entry(id).or_insert(i);
        }
        let index_of = |id: &Id<'_>| index.get(id.as_str()).copied();
        state.pending_customer_ids.iter().filter_map(index_of).collect()
    };
    let full_set = cycle.is_empty();
    if full_set {
        cycle = (0..customers).collect();
    }
    if cycle.is_empty() {
        return Ok(ScheduleOutput::default());
    }
    let mut queues = Queues::new(input);
    let mut release = Vec::with_capacity(requested);

    let mut served = vec![false; customers];
    for &customer in &cycle {
        if release.len() == requested {
            break;
        }
        if let Some(index) = queues.pop_front(customer) {
            release.push(index);
            served[customer] = true;
        }
    }
    let remaining: Vec<usize> = if release.len() == requested {
        cycle.into_iter().filter(|&c| !served[c]).collect()
    } else {
        let all = if full_set { cycle } else { (0..customers).collect() };
        served.fill(false);
        'rounds: loop {
            let mut added = false;
            for &customer in &all {
                if release.len() == requested {
                    break 'rounds;
                }
                if let Some(index) = queues.pop_front(customer) {
                    release.push(index);
                    served[customer] = true;
                    added = true;
                }
            }
            if !added {
                break;
            }
        }
        all.into_iter().filter(|&c| !served[c]).collect()
    };
    Ok(ScheduleOutput {
        release,
        state: state::encode(&ids(&remaining)),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn decide(
        c: &super::super::CustomerList,
        p: &[super::super::PendingAgenda],
        slots: u32,
        state: &[u8],
    ) -> (Vec<u32>, Vec<String>) {
        let running = vec![0; c.len()];
        let out = round_robin(&input(c, p, &running, slots, "{}", state)).unwrap();
        (
            out.release,
            RoundRobinState::decode(&out.state).unwrap().pending_customer_ids,
        )
    }

    #[test]
    fn one_slot_per_customer_per_round() {
        let c = customers(&["a", "b", "c"]);
        // a has 4 agendas, b 1, c 2.
        let p = pending(&[
            (0, 0, 1),
            (0, 0, 2),
            (1, 0, 3),
            (0, 0, 4),
            (2, 0, 5),
            (0, 0, 6),
            (2, 0, 7),
        ]);
        // Full set, 2 slots: pass 1 fills with a and b; c still owes a turn.
        let (release, pending_ids) = decide(&c, &p, 2, &[]);
        assert_eq!(release, vec![0, 2]);
        assert_eq!(pending_ids, vec!["c"]);
        // 5 slots from scratch: round 1 a,b,c; round 2 a,c (b has no more
        // work), so b keeps its turn in the next cycle.
        let (release, pending_ids) = decide(&c, &p, 5, &[]);
        assert_eq!(release, vec![0, 2, 4, 1, 6]);
        assert_eq!(pending_ids, vec!["b"]);
    }

    #[test]
    fn the_cycle_continues_where_it_stopped() {
        let c = customers(&["a", "b", "c"]);
        let p = pending(&[(0, 0, 1), (1, 0, 2), (2, 0, 3), (0, 0, 4)]);
        let state = RoundRobinState {
            pending_customer_ids: vec!["c".into()],
        }
        .encode();
        let (release, pending_ids) = decide(&c, &p, 1, &state);
        assert_eq!(release, vec![2], "c's turn comes first");
        assert!(pending_ids.is_empty());
        // Pass 2 over all customers when the cycle's customers run dry.
        let (release, pending_ids) = decide(&c, &p, 3, &state);
        assert_eq!(release, vec![2, 0, 1]);
        assert_eq!(pending_ids, vec!["c"]);
    }

    #[test]
    fn a_flood_does_not_starve_a_newcomer() {
        // Customer a has 2,000 agendas queued before b's 10.
        let c = customers(&["a", "b"]);
        let mut items: Vec<(u32, i32, u64)> = (0..2000).map(|i| (0, 0, i)).collect();
        items.extend((0..10).map(|i| (1, 0, 5000 + i)));
        let mut p = pending(&items);
        let mut state = Vec::new();
        let mut released_b = Vec::new();
        for slot in 0..20 {
            let running = [0, 0];
            let out = round_robin(&input(&c, &p, &running, 1, "{}", &state)).unwrap();
            let index = out.release[0] as usize;
            if p[index].customer == 1 {
                released_b.push(slot);
            }
            p.remove(index);
            state = out.state;
        }
        assert!(released_b[0] <= 1, "b's first agenda within 2 slots: {released_b:?}");
        assert_eq!(released_b.len(), 10, "all of b's within 20 slots: {released_b:?}");
    }

    #[test]
    fn unknown_customers_in_state_are_dropped_and_bad_state_rejected() {
        let c = customers(&["a"]);
        let p = pending(&[(0, 0, 1)]);
        let state = RoundRobinState {
            pending_customer_ids: vec!["gone".into()],
        }
        .encode();
        assert_eq!(decide(&c, &p, 1, &state).0, vec![0]);
        let running = [0];
        assert!(matches!(
            round_robin(&input(&c, &p, &running, 1, "{}", b"not json")),
            Err(ScheduleError::InvalidState(_))
        ));
    }
}
