//! In-memory adapters of the `Store` and `Queue` ports. They keep the
//! ports' contracts exactly (each passes the same conformance suite as the
//! embedded adapters) and nothing survives the process: the application's
//! unit tests run on them, with a [`pop_ports::ManualClock`], and through
//! [`faults`] when a test needs an engine to fail.

pub mod faults;
mod queue;
mod store;

pub use faults::{Fault, FaultyQueue, FaultyStore};
pub use queue::MemoryQueue;
pub use store::MemoryStore;
