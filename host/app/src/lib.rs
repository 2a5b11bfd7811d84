//! The POP application: what the system does, on the ports only.
//!
//! Modules depend downwards in this order, never back up (checked by
//! `tests/dependency_rule.rs`): [`error`] ← [`domain`] (data-object rules) ←
//! [`plugins`] (the plugin host) ← [`services`] (submission, run/rerun,
//! resource-pool services) ← [`scheduler`], [`runner`], [`jobs`] (the background
//! jobs) ← [`app`] (the state
//! the entry points share). No HTTP, no SQL, no cloud SDK: the `pop` binary
//! or a Lambda wires adapters in through the `pop-ports` traits.

pub mod app;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod plugins;
pub mod runner;
pub mod scheduler;
pub mod services;

pub use app::{AppState, Engines};
pub use error::{AppError, AppResult};
