//! Example tenant scheduler: releases the newest pending agendas first (LIFO).
//!
//! The backlog arrives oldest first, so the newest agendas are at the end. The plugin keeps no
//! state and reads no configuration.

use pop_plugin_sdk::scheduler::{ScheduleInput, ScheduleOutput, Scheduler};

struct NewestFirst;

impl Scheduler for NewestFirst {
    fn schedule(input: &ScheduleInput<'_>) -> Result<ScheduleOutput, String> {
        let newest_first = (0..input.pending.len() as u32).rev();
        let release = newest_first.take(input.free_slots as usize).collect();
        Ok(ScheduleOutput {
            release,
            state: Vec::new(),
        })
    }
}

pop_plugin_sdk::export_scheduler!(NewestFirst);
