//! In-memory adapters of the `Store`, `Queue` and `BlobStore` ports. They keep the
//! ports' contracts exactly (each passes the same conformance suite as the
//! embedded adapters) and nothing survives the process: the application's
//! unit tests run on them, with a [`pop_ports::ManualClock`], and through
//! [`faults`] when a test needs an engine to fail.

mod blob;
pub mod faults;
mod queue;
mod store;

pub use blob::MemoryBlobStore;
pub use faults::{Fault, FaultyQueue, FaultyStore};
pub use queue::MemoryQueue;
pub use store::MemoryStore;
