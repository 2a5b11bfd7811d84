//! Scheduling algorithms: which pending agendas of one insight to release.
//!
//! These are the single source of truth for the built-in schedulers: the
//! host's native path calls them directly and the built-in WebAssembly
//! scheduler plugins (`schedulers/*`) are compiled from them.
//!
//! The input mirrors the `scheduler` world of `wit/plugin.wit`: customers
//! are referenced by index and the backlog is a flat list of scalars, so a
//! decision over 10,000 agendas copies no strings.

mod customers;
mod fifo;
mod priority;
mod round_robin;
mod state;
mod weighted_fair;

pub use customers::{CustomerIds, CustomerList, InvalidCustomerIds};
pub use fifo::fifo;
pub use priority::{PriorityConfig, priority};
pub use round_robin::{RoundRobinState, round_robin};
pub use weighted_fair::{WeightedFairConfig, WeightedFairState, weighted_fair};

/// One agenda in an insight's backlog.
///
/// `repr(C)` gives it the canonical-ABI layout of the WIT record
/// `pending-agenda` (u32 at 0, s32 at 4, u64 at 8): the guest bindings map
/// `list<pending-agenda>` onto `Vec<PendingAgenda>` without copying, so
/// Rust's default field reordering would scramble every agenda a
/// WebAssembly scheduler sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct PendingAgenda {
    /// Index into [`ScheduleInput::customers`].
    pub customer: u32,
    /// Higher runs first (`params.priority`, 0 when unset).
    pub priority: i32,
    /// When it entered the backlog, epoch milliseconds.
    pub added_ms: u64,
}

const _: () = {
    assert!(std::mem::offset_of!(PendingAgenda, customer) == 0);
    assert!(std::mem::offset_of!(PendingAgenda, priority) == 4);
    assert!(std::mem::offset_of!(PendingAgenda, added_ms) == 8);
    assert!(std::mem::size_of::<PendingAgenda>() == 16);
};

/// What a scheduler knows when it decides for one insight.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleInput<'a> {
    pub now_ms: u64,
    pub free_slots: u32,
    /// Customer ids: the pool's customers in pool order, then any other
    /// customer with pending work.
    pub customers: CustomerIds<'a>,
    /// The backlog, oldest first.
    pub pending: &'a [PendingAgenda],
    /// Running agendas per customer index.
    pub running: &'a [u32],
    /// JSON configuration from the insight (`"{}"` when unset).
    pub config: &'a str,
    /// The scheduler's state from its previous decision.
    pub state: &'a [u8],
}

/// A decision: indices into `pending` to release, in order, and the state
/// to keep for the next decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleOutput {
    pub release: Vec<u32>,
    pub state: Vec<u8>,
}

/// Why a scheduler could not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid scheduler configuration: {0}")]
    InvalidConfig(String),
    #[error("invalid scheduler state: {0}")]
    InvalidState(String),
}

/// The built-in algorithms, by the names insights use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    FirstInFirstOut,
    RoundRobin,
    Priority,
    WeightedFair,
}

impl Algorithm {
    pub const ALL: [Algorithm; 4] = [
        Algorithm::FirstInFirstOut,
        Algorithm::RoundRobin,
        Algorithm::Priority,
        Algorithm::WeightedFair,
    ];

    /// The `schedulingAlgorithm` value naming this algorithm.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::FirstInFirstOut => "FirstInFirstOut",
            Algorithm::RoundRobin => "RoundRobin",
            Algorithm::Priority => "Priority",
            Algorithm::WeightedFair => "WeightedFair",
        }
    }

    /// The algorithm a `schedulingAlgorithm` value names (exact, as POP).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Decide with this algorithm.
    pub fn schedule(self, input: &ScheduleInput<'_>) -> Result<ScheduleOutput, ScheduleError> {
        match self {
            Algorithm::FirstInFirstOut => fifo(input),
            Algorithm::RoundRobin => round_robin(input),
            Algorithm::Priority => priority(input),
            Algorithm::WeightedFair => weighted_fair(input),
        }
    }
}

/// Check a decision against its input: every index offered, none twice, at
/// most `free_slots`. The host applies this to every plugin's output.
pub fn check_decision(input: &ScheduleInput<'_>, output: &ScheduleOutput) -> Result<(), String> {
    // Names first: releasing an agenda that was never offered is the worse
    // breach, and the message should say so even when the count is off too.
    let mut seen = vec![false; input.pending.len()];
    for &index in &output.release {
        let slot = seen.get_mut(index as usize).ok_or_else(|| {
            format!(
                "released agenda #{index}, which was not offered ({} were)",
                input.pending.len()
            )
        })?;
        if std::mem::replace(slot, true) {
            return Err(format!("released agenda #{index} twice"));
        }
    }
    if output.release.len() > input.free_slots as usize {
        return Err(format!(
            "released {} agendas but only {} slots were free",
            output.release.len(),
            input.free_slots
        ));
    }
    Ok(())
}

/// Per-customer queues of pending indices, oldest first.
///
/// Each customer's queue is a linked list threaded through one array
/// (`link[i]` is the next agenda of the same customer after agenda `i`),
/// built in a single pass over the backlog: a decision releases a handful
/// of agendas out of thousands, so building the queues is nearly all of its
/// work. The pass is unrolled by hand because the WebAssembly builds of the
/// schedulers run it too, and a compiled guest pays a deadline check and
/// register spills per loop iteration (see `BUILD_UNROLL`).
pub(crate) struct Queues {
    /// Per agenda: the index of the next agenda of its customer. Slot
    /// `pending.len() + c` is customer `c`'s list head while building.
    link: Vec<u32>,
    /// Per customer: its oldest agenda not yet taken, or [`NONE`].
    head: Vec<u32>,
    /// Per customer: its newest agenda, or [`NONE`].
    tail: Vec<u32>,
}

/// No agenda.
const NONE: u32 = u32::MAX;

/// Agendas handled per iteration of the build loop.
const BUILD_UNROLL: usize = 8;

impl Queues {
    /// The backlog of `input` by customer. Agendas of a customer index
    /// outside `input.customers` are in no queue.
    #[inline(never)]
    pub(crate) fn new(input: &ScheduleInput<'_>) -> Self {
        let customers = input.customers.len();
        let agendas = input.pending.len();
        // Every customer's tail starts at its own sentinel slot past the
        // agendas, so appending is the same store for the first agenda of a
        // customer as for the others: no branch in the loop.
        let mut link = vec![NONE; agendas + customers];
        let mut tail: Vec<u32> = (agendas..agendas + customers).map(|slot| slot as u32).collect();
        let mut append = |index: usize, customer: u32| {
            if let Some(last) = tail.get_mut(customer as usize) {
                link[*last as usize] = index as u32;
                *last = index as u32;
            }
        };
        let (chunks, rest) = input.pending.as_chunks::<BUILD_UNROLL>();
        for (n, chunk) in chunks.iter().enumerate() {
            let base = n * BUILD_UNROLL;
            for (k, agenda) in chunk.iter().enumerate() {
                append(base + k, agenda.customer);
            }
        }
        let base = chunks.len() * BUILD_UNROLL;
        for (k, agenda) in rest.iter().enumerate() {
            append(base + k, agenda.customer);
        }
        let head = link[agendas..].to_vec();
        for (c, last) in tail.iter_mut().enumerate() {
            if *last as usize == agendas + c {
                *last = NONE;
            }
        }
        link.truncate(agendas);
        Self { link, head, tail }
    }

    /// How many customers (queues) there are.
    pub(crate) fn len(&self) -> usize {
        self.head.len()
    }

    pub(crate) fn is_empty(&self, customer: usize) -> bool {
        self.head[customer] == NONE
    }

    /// Take the oldest pending index of `customer`.
    pub(crate) fn pop_front(&mut self, customer: usize) -> Option<u32> {
        let first = self.head[customer];
        if first == NONE {
            return None;
        }
        self.head[customer] = if first == self.tail[customer] {
            NONE
        } else {
            self.link[first as usize]
        };
        Some(first)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A backlog described as `(customer index, priority, added_ms)`.
    pub fn pending(items: &[(u32, i32, u64)]) -> Vec<PendingAgenda> {
        items
            .iter()
            .map(|&(customer, priority, added_ms)| PendingAgenda {
                customer,
                priority,
                added_ms,
            })
            .collect()
    }

    pub fn customers(names: &[&str]) -> CustomerList {
        names.iter().collect()
    }

    pub fn input<'a>(
        customers: &'a CustomerList,
        pending: &'a [PendingAgenda],
        running: &'a [u32],
        free_slots: u32,
        config: &'a str,
        state: &'a [u8],
    ) -> ScheduleInput<'a> {
        ScheduleInput {
            now_ms: 1_000_000,
            free_slots,
            customers: customers.ids(),
            pending,
            running,
            config,
            state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn decisions_are_checked() {
        let c = customers(&["a"]);
        let p = pending(&[(0, 0, 1), (0, 0, 2)]);
        let running = [0];
        let i = input(&c, &p, &running, 1, "{}", &[]);
        let out = |release: Vec<u32>| ScheduleOutput { release, state: vec![] };
        assert!(check_decision(&i, &out(vec![1])).is_ok());
        assert!(check_decision(&i, &out(vec![0, 1])).unwrap_err().contains("slots"));
        let two = input(&c, &p, &running, 2, "{}", &[]);
        assert!(check_decision(&two, &out(vec![1, 1])).unwrap_err().contains("twice"));
        assert!(check_decision(&two, &out(vec![7])).unwrap_err().contains("not offered"));
    }

    #[test]
    fn queues_keep_each_customers_backlog_in_order() {
        let c = customers(&["a", "b", "c"]);
        // Customer 7 does not exist: its agenda is in no queue.
        let p = pending(&[(1, 0, 1), (0, 0, 2), (1, 0, 3), (7, 0, 4), (1, 0, 5)]);
        let running = [0, 0, 0];
        let mut queues = Queues::new(&input(&c, &p, &running, 1, "{}", &[]));
        assert_eq!(queues.len(), 3);
        assert!(queues.is_empty(2));
        assert_eq!(queues.pop_front(1), Some(0));
        assert_eq!(queues.pop_front(1), Some(2));
        assert_eq!(queues.pop_front(0), Some(1));
        assert!(queues.is_empty(0));
        assert_eq!(queues.pop_front(0), None);
        assert_eq!(queues.pop_front(1), Some(4));
        assert_eq!(queues.pop_front(1), None);
        assert_eq!(queues.pop_front(2), None);
    }

    #[test]
    fn names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(a.name()), Some(a));
        }
        assert_eq!(Algorithm::from_name("roundrobin"), None);
    }
}
