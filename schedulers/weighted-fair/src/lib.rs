//! The built-in `WeightedFair` scheduler: slots shared between customers by weight.
//!
//! One source of truth: this is [`pop_core::scheduling::weighted_fair`], the function the host's native
//! path and benchmarks call, compiled into a component.

use pop_plugin_sdk::pop_core::scheduling::weighted_fair;
use pop_plugin_sdk::scheduler::{ScheduleInput, ScheduleOutput, Scheduler};

struct WeightedFair;

impl Scheduler for WeightedFair {
    fn schedule(input: &ScheduleInput<'_>) -> Result<ScheduleOutput, String> {
        weighted_fair(input).map_err(|e| e.to_string())
    }
}

pop_plugin_sdk::export_scheduler!(WeightedFair);
