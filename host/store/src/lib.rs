//! The embedded adapters of POP's storage ports.
//!
//! * [`SqliteStore`]: the `Store` port on one SQLite file in WAL mode.
//! * [`StoreQueue`]: the `Queue` port on a `Store`'s `QueuedAgenda` table
//!   (on the embedded default, the same SQLite file), with in-process
//!   wake-ups for long-polling claims.
//! * [`CachedStore`]: a read-through cache in front of any `Store`, for the
//!   rarely changing kinds read on every submission.
//! * [`DirBlobStore`]: the `BlobStore` port on a directory.
//!
//! The ports themselves (traits, records, errors, conformance suites) are
//! `pop-ports`; they are re-exported here for the adapters' callers.

mod cache;
mod dir_blob;
mod sqlite;
mod store_queue;

pub use cache::{CacheOptions, CachedStore};
pub use dir_blob::DirBlobStore;
pub use pop_ports::*;
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store_queue::StoreQueue;
