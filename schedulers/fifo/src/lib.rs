//! The built-in `FirstInFirstOut` scheduler: the oldest pending agendas first.
//!
//! One source of truth: this is [`pop_core::scheduling::fifo`], the function the host's native
//! path and benchmarks call, compiled into a component.

use pop_plugin_sdk::pop_core::scheduling::fifo;
use pop_plugin_sdk::scheduler::{ScheduleInput, ScheduleOutput, Scheduler};

struct FirstInFirstOut;

impl Scheduler for FirstInFirstOut {
    fn schedule(input: &ScheduleInput<'_>) -> Result<ScheduleOutput, String> {
        fifo(input).map_err(|e| e.to_string())
    }
}

pop_plugin_sdk::export_scheduler!(FirstInFirstOut);
