//! What one plugin call may use, and how the runtime is configured.

use std::path::PathBuf;
use std::time::Duration;

/// Resource limits applied to every plugin call.
///
/// Limits hold per call whether the call runs on a fresh instance or on a
/// warm one of the same tenant: the deadline is re-armed for each call, and
/// the memory and table caps are absolute sizes, so what a warm instance
/// kept from earlier calls counts against them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of a scheduler, insight-matcher or visibility call,
    /// instantiation included. Enforced by epoch interruption, so the real
    /// cut-off is within one [`Limits::epoch_tick`] of this.
    pub deadline: Duration,
    /// Budget of one in-process handler run. Handlers do the work of an
    /// operation, so they get more time than the decisions on the hot path.
    pub handler_deadline: Duration,
    /// How often the background ticker advances the engine epoch: the
    /// granularity of every deadline.
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
    pub max_state_bytes: usize,
    /// Idle instances kept warm between calls, engine-wide, one per
    /// (plugin version, tenant); the least recently used goes first. 0
    /// instantiates afresh for every call. They hold pool slots on top of
    /// [`Limits::concurrent_calls`].
    pub warm_instances: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(20),
            handler_deadline: Duration::from_secs(1),
            epoch_tick: Duration::from_millis(1),
            memory_bytes: 64 << 20,
            table_elements: 20_000,
            instances: 32,
            tables: 32,
            memories: 8,
            concurrent_calls: 256,
            max_state_bytes: 1 << 20,
            warm_instances: 64,
        }
    }
}

impl Limits {
    /// The deadline in epoch ticks, at least one.
    pub(crate) fn ticks(&self, deadline: Duration) -> u64 {
        let tick = self.epoch_tick.as_nanos().max(1);
        deadline.as_nanos().div_ceil(tick).clamp(1, u64::MAX as u128) as u64
    }
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
}
