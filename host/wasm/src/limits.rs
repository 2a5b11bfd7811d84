//! What one plugin call may use, and how the runtime is configured.

use std::path::PathBuf;
use std::time::Duration;

use pop_core::PluginKind;

/// Longest refusal message (`err(message)`) a plugin may hand back, in
/// bytes. Longer ones are cut (at a character boundary): the message ends
/// up in the failure record the tenant reads, not in a decision.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Resource limits applied to every plugin call.
///
/// Limits hold per call whether the call runs on a fresh instance or on a
/// warm one of the same tenant: the instruction budget and the deadline are
/// re-armed for each call, and the memory and table caps are absolute
/// sizes, so what a warm instance kept from earlier calls counts against
/// them.
///
/// A call is bounded first by its instruction budget ([`Limits::fuel`]),
/// which does not depend on how busy the machine is: a decision that fits
/// on an idle machine fits on a loaded one, and a spinning plugin is
/// stopped after the same amount of work either way. The wall clock is
/// only a backstop, for what instructions do not measure (a machine so
/// loaded that a call waits seconds for a core).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The wall-clock time a scheduler, insight-matcher or visibility call
    /// (instantiation included) is meant to fit in: the instruction
    /// budgets are sized so that a call that uses all of its budget takes
    /// about this long on an idle machine. It is not what stops a call: the
    /// wall clock only cuts a decision off at
    /// `deadline × backstop_factor` (see [`Limits::backstop`]). With
    /// [`Interruption::Epoch`] it is the cut-off itself, as before fuel.
    pub deadline: Duration,
    /// How many [`Limits::deadline`]s a decision may take in wall time
    /// before the backstop stops it (`Timeout`). Generous on purpose: a
    /// healthy call descheduled on a busy machine must not reach it.
    pub backstop_factor: u32,
    /// Wall-clock budget of one in-process handler run, unless the call
    /// gives its own (the handlers registry's `timeoutMs`). Handlers do the
    /// work of an operation and may sleep through the `timer` import, so
    /// their timeout is wall time by nature and is enforced as given (no
    /// backstop factor); their instruction budget, [`Fuel::handler`], caps
    /// the computing they may do within it.
    pub handler_deadline: Duration,
    /// Instructions each world's call may execute.
    pub fuel: Fuel,
    /// What bounds a call's running time. Engine-wide: it decides what the
    /// compiled code checks, so it is fixed when the runtime is built.
    pub interruption: Interruption,
    /// How often the background ticker advances the engine epoch: the
    /// granularity of every wall-clock deadline.
    pub epoch_tick: Duration,
    /// Bytes one linear memory of a call may grow to.
    pub memory_bytes: usize,
    /// Elements one table may hold.
    pub table_elements: usize,
    /// Core instances one call may create (a component is several of them).
    pub instances: usize,
    /// Tables one call may create.
    pub tables: usize,
    /// Linear memories one call may create.
    pub memories: usize,
    /// Calls that may be running at once, engine-wide. Sizes the pooling
    /// allocator; a call beyond it fails to instantiate instead of waiting.
    pub concurrent_calls: u32,
    /// Largest scheduler state a decision may hand back for persisting.
    /// Checked before the state is copied out of the guest: a bigger one
    /// fails the call (`BadOutput`) without the host copying it.
    pub max_state_bytes: usize,
    /// Largest result (or error message) a handler run may hand back, and
    /// the most any call may pass to a host import at once. Checked before
    /// the bytes are copied out of the guest.
    pub max_output_bytes: usize,
    /// Idle instances kept warm between calls, engine-wide, one per
    /// (plugin version, tenant); the least recently used goes first. 0
    /// instantiates afresh for every call. They hold pool slots on top of
    /// [`Limits::concurrent_calls`].
    pub warm_instances: usize,
}

/// Instruction budgets per world, in wasmtime fuel units: about one per
/// WebAssembly instruction executed, plus one per byte that `memory.fill`,
/// `memory.copy` and `memory.init` write (so a bulk copy cannot run past
/// its budget in one instruction). Host work on the call's behalf (copying
/// the input in, the answer out) is not counted here; it is bounded by the
/// input the host chose and by the output limits.
///
/// A call's budget covers the call itself; instantiating a fresh instance
/// gets a budget of its own of the same size, so a call succeeds or fails
/// the same way on a fresh instance and on a warm one. wasmtime checks the
/// count at function entries and loop back-edges, so a call may finish a
/// straight stretch of code past its budget, never a loop.
///
/// The defaults, against the built-ins (`tests/fuel.rs` asserts the
/// margins; `host/wasm/README.md` has the figures): a tight loop executes
/// about 13 of these units per nanosecond on the README's machine, so a
/// spinning decision is stopped after some 15 ms of its own work (about
/// the old 20 ms wall-clock deadline), however long a loaded machine
/// makes that in wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fuel {
    /// One scheduling decision over an insight's whole backlog. The
    /// built-ins use 0.4–0.73 million over 10,000 pending agendas from 100
    /// customers with 10 free slots (a margin of more than 250 ×), and at
    /// most 11.7 million (priority's sort) releasing all 10,000 at once.
    pub scheduler: u64,
    /// One insight selection for a submitted agenda: the built-in mapper
    /// uses 2.6 million for 100 candidates and 50 operations.
    pub insight_matcher: u64,
    /// One visibility decision over a page of objects: the built-in policy
    /// uses 5.6 million for a page of 10,000 agendas.
    pub visibility_policy: u64,
    /// One handler run: a ceiling on the computing one operation may do,
    /// independent of the machine. A handler does an operation's work and
    /// its timeout (wall time, the registry's `timeoutMs`) is what normally
    /// ends it, so the default is out of the way (over a minute of a tight
    /// loop, past the 60 s default timeout); lower it to bound each run's
    /// CPU deterministically.
    pub handler: u64,
}

impl Default for Fuel {
    fn default() -> Self {
        Self {
            scheduler: 200_000_000,
            insight_matcher: 100_000_000,
            visibility_policy: 200_000_000,
            handler: 1_000_000_000_000,
        }
    }
}

impl Fuel {
    /// The budget of one call of a plugin of `kind`.
    pub fn of(&self, kind: PluginKind) -> u64 {
        match kind {
            PluginKind::Scheduler => self.scheduler,
            PluginKind::InsightMatcher => self.insight_matcher,
            PluginKind::VisibilityPolicy => self.visibility_policy,
            PluginKind::Handler => self.handler,
        }
    }
}

/// What bounds the running time of a call.
///
/// Measured with the same decisions in one run (`cargo bench -p pop-wasm
/// -- interruption`, figures in `host/wasm/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interruption {
    /// The instruction budget ([`Fuel`]) first, the wall clock as a
    /// backstop: `deadline × backstop_factor` for a decision, the handler's
    /// own timeout for a handler. Deterministic for every call that is not
    /// starved of a core for that long. The default.
    #[default]
    FuelAndEpoch,
    /// The instruction budget only: deterministic, but no wall clock at all,
    /// so a handler's timeout only ends its sleeps.
    Fuel,
    /// The wall clock only, `deadline` itself (the runtime before fuel):
    /// whether a call finishes depends on how busy the machine is. Kept to
    /// measure what fuel costs against it.
    Epoch,
}

impl Interruption {
    pub(crate) fn fuel(self) -> bool {
        matches!(self, Interruption::FuelAndEpoch | Interruption::Fuel)
    }

    pub(crate) fn epoch(self) -> bool {
        matches!(self, Interruption::FuelAndEpoch | Interruption::Epoch)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(20),
            backstop_factor: 10,
            handler_deadline: Duration::from_secs(1),
            fuel: Fuel::default(),
            interruption: Interruption::default(),
            epoch_tick: Duration::from_millis(1),
            memory_bytes: 64 << 20,
            table_elements: 20_000,
            instances: 32,
            tables: 32,
            memories: 8,
            concurrent_calls: 256,
            max_state_bytes: 1 << 20,
            max_output_bytes: 1 << 20,
            warm_instances: 64,
        }
    }
}

impl Limits {
    /// The wall-clock cut-off of a scheduler, insight-matcher or visibility
    /// call: `deadline × backstop_factor` when fuel is the primary bound,
    /// `deadline` itself when the wall clock is the only one.
    pub fn backstop(&self) -> Duration {
        match self.interruption {
            Interruption::Epoch => self.deadline,
            Interruption::FuelAndEpoch | Interruption::Fuel => {
                self.deadline.saturating_mul(self.backstop_factor.max(1))
            }
        }
    }

    /// A wall-clock duration in epoch ticks, at least one.
    pub(crate) fn ticks(&self, deadline: Duration) -> u64 {
        let tick = self.epoch_tick.as_nanos().max(1);
        deadline.as_nanos().div_ceil(tick).clamp(1, u64::MAX as u128) as u64
    }

    /// The budget of one decision call (scheduler, insight matcher,
    /// visibility policy) that may hand back `output`.
    pub(crate) fn decision(&self, kind: PluginKind, output: Output) -> Budget {
        self.budget(kind, self.backstop(), output)
    }

    /// The budget of one handler run with the wall-clock timeout `timeout`.
    pub(crate) fn handler(&self, timeout: Duration) -> Budget {
        let output = Output::Handler {
            bytes: self.max_output_bytes,
        };
        self.budget(PluginKind::Handler, timeout, output)
    }

    fn budget(&self, kind: PluginKind, wall: Duration, output: Output) -> Budget {
        let fuel = self.interruption.fuel().then(|| self.fuel.of(kind));
        let epoch_ticks = self.interruption.epoch().then(|| self.ticks(wall));
        Budget {
            fuel,
            epoch_ticks,
            wall,
            output,
        }
    }
}

/// What a call may hand back to the host: the most bytes it may pass in one
/// transfer (its answer, or the arguments of one import call), checked by
/// wasmtime before it copies anything out of the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// A scheduler's answer: at most `slots` indices (4 bytes each), a state
    /// of at most `state` bytes, or a refusal message.
    Schedule { state: usize, slots: u32 },
    /// An insight matcher's answer: an index, or a refusal message.
    Choice,
    /// A visibility answer: one byte per object asked about, or a refusal.
    Decisions { asked: usize },
    /// A handler's result or error message.
    Handler { bytes: usize },
    /// Nothing: instantiation only.
    Nothing,
}

impl Output {
    /// The transfer limit: the largest answer the contract allows, plus a
    /// refusal message, so no valid answer is refused by it.
    pub(crate) fn bytes(self) -> usize {
        let answer = match self {
            Output::Schedule { state, slots } => state.saturating_add((slots as usize).saturating_mul(4)),
            Output::Choice | Output::Nothing => 0,
            Output::Decisions { asked } => asked,
            Output::Handler { bytes } => bytes,
        };
        answer.saturating_add(MAX_MESSAGE_BYTES)
    }

    /// What the limit is made of, for the failure the tenant reads.
    pub(crate) fn describe(self) -> String {
        match self {
            Output::Schedule { state, slots } => format!(
                "a state of at most {state} bytes (max_state_bytes), {slots} released indices of 4 bytes \
                 and a message of {MAX_MESSAGE_BYTES}"
            ),
            Output::Choice => format!("an index or a message of {MAX_MESSAGE_BYTES}"),
            Output::Decisions { asked } => {
                format!("one byte for each of the {asked} objects asked about and a message of {MAX_MESSAGE_BYTES}")
            }
            Output::Handler { bytes } => {
                format!("a result of at most {bytes} bytes (max_output_bytes) and a message of {MAX_MESSAGE_BYTES}")
            }
            Output::Nothing => format!("a message of {MAX_MESSAGE_BYTES}"),
        }
    }
}

/// Everything one call is armed with (see [`crate::runtime::Runtime::arm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// Instructions, when fuel is on.
    pub(crate) fuel: Option<u64>,
    /// The wall-clock deadline in epoch ticks, when epochs are on.
    pub(crate) epoch_ticks: Option<u64>,
    /// The wall-clock deadline: what `timer.sleep` never sleeps past.
    pub(crate) wall: Duration,
    /// What the call may hand back.
    pub(crate) output: Output,
}

/// How a [`crate::Runtime`] is built.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    pub limits: Limits,
    /// Where compiled components are kept between restarts. `None` keeps
    /// them in memory only. The directory must be private to this server:
    /// its files are loaded as native code.
    pub cache_dir: Option<PathBuf>,
    /// Compiled plugins kept in memory (0 means the default, 512).
    pub cache_capacity: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_to_whole_ticks() {
        let limits = Limits::default();
        assert_eq!(limits.ticks(Duration::from_millis(20)), 20);
        assert_eq!(limits.ticks(Duration::from_micros(20_100)), 21);
        assert_eq!(limits.ticks(Duration::ZERO), 1);
    }

    #[test]
    fn the_wall_clock_is_a_backstop_unless_it_is_the_only_bound() {
        let limits = Limits::default();
        assert_eq!(limits.backstop(), Duration::from_millis(200));
        let decision = limits.decision(PluginKind::Scheduler, Output::Choice);
        assert_eq!(decision.fuel, Some(limits.fuel.scheduler));
        assert_eq!(decision.epoch_ticks, Some(200));
        // A handler's timeout is wall time by nature: enforced as given.
        let handler = limits.handler(Duration::from_millis(1500));
        assert_eq!(handler.fuel, Some(limits.fuel.handler));
        assert_eq!(handler.epoch_ticks, Some(1500));

        let epoch = Limits {
            interruption: Interruption::Epoch,
            ..Limits::default()
        };
        assert_eq!(epoch.backstop(), epoch.deadline);
        assert_eq!(epoch.decision(PluginKind::Scheduler, Output::Choice).fuel, None);
        let fuel = Limits {
            interruption: Interruption::Fuel,
            ..Limits::default()
        };
        assert_eq!(fuel.decision(PluginKind::Handler, Output::Choice).epoch_ticks, None);
    }

    #[test]
    fn no_valid_answer_is_over_its_transfer_limit() {
        let schedule = Output::Schedule {
            state: 1 << 20,
            slots: 10,
        };
        assert_eq!(schedule.bytes(), (1 << 20) + 40 + MAX_MESSAGE_BYTES);
        assert_eq!(Output::Decisions { asked: 1000 }.bytes(), 1000 + MAX_MESSAGE_BYTES);
        assert_eq!(Output::Choice.bytes(), MAX_MESSAGE_BYTES);
        assert!(
            Output::Handler { bytes: 1 << 20 }
                .describe()
                .contains("max_output_bytes")
        );
    }
}
