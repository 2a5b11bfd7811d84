//! The ports of POP: the traits through which the application reaches
//! every engine, their records and errors, and (feature `conformance`) the
//! behaviour every adapter must show.
//!
//! * [`Store`]: data objects as JSON documents ([`store`]).
//! * [`Queue`]: the insight queues, with SQS's semantics ([`queue`]).
//! * [`BlobStore`]: content-addressed blobs, the plugin binaries ([`blob`]).
//! * [`Launcher`]: where an operation runs ([`launcher`]).
//! * [`Identity`]: who is calling ([`identity`]).
//! * [`Clock`]: all time the application reads or waits for ([`clock`]).
//!
//! Each port has one error enum that keeps the engine's error as its source
//! and says whether retrying may help (`is_transient`). Nothing here
//! depends on an engine's client crate; adapters do (`ARCHITECTURE.md`,
//! "Dependency rule").

pub mod blob;
pub mod clock;
pub mod identity;
pub mod launcher;
pub mod queue;
pub mod store;

#[cfg(feature = "conformance")]
pub use blob::blob_conformance;
pub use blob::{BlobError, BlobStore, is_blob_address, sha256_hex};
pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use identity::{Identity, IdentityError, bearer_token};
pub use launcher::{Durability, LaunchError, Launcher, OperationResult, OperationRun, Placement, ProgressSink};
pub use pop_core::ObjectKind;
pub use queue::{Queue, QueueDepth, QueueError};
pub use store::*;
