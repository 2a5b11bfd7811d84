//! The built-in `RoundRobin` scheduler: one agenda per customer in turn; the turn order is its state.
//!
//! One source of truth: this is [`pop_core::scheduling::round_robin`], the function the host's native
//! path and benchmarks call, compiled into a component.

use pop_plugin_sdk::pop_core::scheduling::round_robin;
use pop_plugin_sdk::scheduler::{ScheduleInput, ScheduleOutput, Scheduler};

struct RoundRobin;

impl Scheduler for RoundRobin {
    fn schedule(input: &ScheduleInput<'_>) -> Result<ScheduleOutput, String> {
        round_robin(input).map_err(|e| e.to_string())
    }
}

pop_plugin_sdk::export_scheduler!(RoundRobin);
