//! The guest SDK for POP plugins: a tenant writes a scheduler, an insight matcher, a visibility
//! policy or an operation handler as one small Rust file, builds it with
//! `cargo build --release --target wasm32-wasip2`, and uploads the `.wasm` component.
//!
//! Each plugin kind is one module with one trait and one export macro:
//!
//! | kind | trait | export macro | WIT world |
//! |---|---|---|---|
//! | scheduler | [`scheduler::Scheduler`] | [`export_scheduler!`] | `pop:plugin/scheduler` |
//! | insight matcher | [`insight_matcher::InsightMatcher`] | [`export_insight_matcher!`] | `pop:plugin/insight-matcher` |
//! | visibility policy | [`visibility::VisibilityPolicy`] | [`export_visibility_policy!`] | `pop:plugin/visibility-policy` |
//! | handler | [`handler::Handler`] | [`export_handler!`] | `pop:plugin/handler` |
//!
//! The traits speak [`pop_core`]'s types where POP has them (a scheduler gets a
//! [`pop_core::scheduling::ScheduleInput`] and returns a [`pop_core::scheduling::ScheduleOutput`],
//! exactly what the host's native algorithms take), so the built-in plugins are one-line calls
//! into `pop-core` and a tenant's plugin can reuse any of POP's rules.
//!
//! ```ignore
//! use pop_plugin_sdk::scheduler::{ScheduleInput, ScheduleOutput, Scheduler};
//!
//! /// Releases the newest pending agendas first.
//! struct NewestFirst;
//!
//! impl Scheduler for NewestFirst {
//!     fn schedule(input: &ScheduleInput<'_>) -> Result<ScheduleOutput, String> {
//!         let newest = (0..input.pending.len() as u32).rev().take(input.free_slots as usize);
//!         Ok(ScheduleOutput { release: newest.collect(), state: Vec::new() })
//!     }
//! }
//!
//! pop_plugin_sdk::export_scheduler!(NewestFirst);
//! ```
//!
//! The plugin crate is a `cdylib` that depends on this crate only:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! pop-plugin-sdk = { path = "…/plugins/sdk" }
//! ```
//!
//! A plugin runs sandboxed: no filesystem, network, clock or environment, a memory cap and a
//! deadline per call. A panic or trap fails only that call; the host falls back to the last good
//! version of the plugin (or the built-in) and records the failure for the tenant to see.

#![warn(missing_docs)]

// The generated export macros name this crate by its public path, which must
// also resolve inside the crate itself.
extern crate self as pop_plugin_sdk;

pub mod bindings;
pub mod handler;
pub mod insight_matcher;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod mem;
pub mod scheduler;
pub mod visibility;

/// POP's pure domain crate: the model, the scheduling algorithms, insight selection and the
/// visibility rules the host itself uses.
pub use pop_core;
/// JSON, for configs, payloads and parameter values.
pub use serde_json;

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}
