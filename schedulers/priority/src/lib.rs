//! The built-in `Priority` scheduler: the highest `params.priority` first, with aging so low priorities never starve.
//!
//! One source of truth: this is [`pop_core::scheduling::priority`], the function the host's native
//! path and benchmarks call, compiled into a component.

use pop_plugin_sdk::pop_core::scheduling::priority;
use pop_plugin_sdk::scheduler::{ScheduleInput, ScheduleOutput, Scheduler};

struct Priority;

impl Scheduler for Priority {
    fn schedule(input: &ScheduleInput<'_>) -> Result<ScheduleOutput, String> {
        priority(input).map_err(|e| e.to_string())
    }
}

pop_plugin_sdk::export_scheduler!(Priority);
