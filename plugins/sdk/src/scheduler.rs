//! Scheduler plugins: pick which pending agendas of one insight to release.
//!
//! Implement [`Scheduler`] and export it with [`export_scheduler!`](crate::export_scheduler).
//! The input and output are [`pop_core::scheduling`]'s types, the ones the host's built-in
//! algorithms take, so `pop_core::scheduling::round_robin(input)` is a complete scheduler body.
//!
//! The host checks every decision (indices in range, no duplicates, at most `free_slots`) and
//! persists `state` for the next call. The host may run several calls of the same tenant on one
//! instance (statics survive between them) or start a fresh one at any time, so a scheduler
//! keeps what it needs in `state`, never in memory.

use std::marker::PhantomData;

pub use pop_core::scheduling::{CustomerIds, PendingAgenda, ScheduleError, ScheduleInput, ScheduleOutput};

use crate::bindings::scheduler as wit;

/// A scheduling algorithm for one insight's backlog.
pub trait Scheduler {
    /// Decide which agendas of `input.pending` to release now: indices into `input.pending`, in
    /// release order, at most `input.free_slots` of them, none twice; plus the state to receive
    /// as `input.state` next time. An `Err` fails this decision (the host falls back and records
    /// the message).
    fn schedule(input: &ScheduleInput<'_>) -> Result<ScheduleOutput, String>;
}

/// Adapts a [`Scheduler`] to the `scheduler` world's generated `Guest` trait.
/// Used by [`export_scheduler!`](crate::export_scheduler); not meant to be named by plugins.
#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

impl<T: Scheduler> wit::Guest for Export<T> {
    fn schedule(input: wit::ScheduleInput) -> Result<ScheduleOutput, String> {
        let customers = CustomerIds::new(&input.customer_ids, &input.customer_id_ends).map_err(|e| e.to_string())?;
        T::schedule(&ScheduleInput {
            now_ms: input.now_ms,
            free_slots: input.free_slots,
            customers,
            pending: &input.pending,
            running: &input.running,
            config: &input.config,
            state: &input.state,
        })
    }
}

/// Exports a [`Scheduler`](crate::scheduler::Scheduler) implementation as this component's
/// `scheduler` world. Invoke it once, at the crate root of a `cdylib`:
///
/// ```ignore
/// pop_plugin_sdk::export_scheduler!(MyScheduler);
/// ```
#[macro_export]
macro_rules! export_scheduler {
    ($scheduler:ty) => {
        const _: () = {
            type __PopSchedulerExport = $crate::scheduler::Export<$scheduler>;
            $crate::bindings::scheduler::__export_scheduler_raw!(
                __PopSchedulerExport with_types_in $crate::bindings::scheduler
            );
        };
    };
}
