//! The executor's DAG plan (spec §2.3-2.4, §5.3.2-5.3.5, §5.3.7) as a pure
//! state machine.
//!
//! The async executor in the server owns the I/O (launching handlers, waiting,
//! reporting); this module owns every decision: which operations are done
//! from the prior progress, which become ready and with what resolved payload,
//! fail-fast, deadlock detection, generator expansion and the percent roll-up.
//! Keeping those rules here means they are table-tested without a runtime and
//! the same code can run inside a wasm plugin.
//!
//! Driver loop: `ready()` → launch each → on each result `complete()` / `fail()`
//! → repeat until `outcome()` is not `Running`.

mod context;
mod generator;
mod messages;
mod node;
mod plan;
mod progress;

#[cfg(test)]
mod tests;

pub use generator::{GeneratorConfig, generator_config};
pub use messages::{DEADLOCK_PREFIX, PENDING_REFERENCES, invalid_references_message};
pub use plan::{ExecutionPlan, Outcome, ReadyOperation};

/// Why the plan could not be built or an event could not be applied. These are
/// driver or input errors; an operation failing is not one (see [`Outcome`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutionError {
    #[error("No operations in Agenda. Nothing to do.")]
    NoOperations,
    #[error("Operation at index {0} has no name.")]
    UnnamedOperation(usize),
    #[error("Operation name [{0}] is duplicated.")]
    DuplicateOperation(String),
    #[error("Unknown operation: {0}")]
    UnknownOperation(String),
    #[error("Operation {0} is not running.")]
    NotRunning(String),
}
