//! POP's WebAssembly plugin runtime.
//!
//! Tenants upload components implementing one world of `wit/plugin.wit`
//! (`scheduler`, `insight-matcher`, `visibility-policy`, `handler`). This
//! crate compiles them once ([`Runtime::compile`], cached in memory by
//! content hash and on disk as native artifacts), runs every call under an
//! instruction budget per world ([`Fuel`], the primary bound, independent
//! of how busy the machine is), a wall-clock backstop, a memory cap and a
//! limit on what it may hand back ([`Limits`]) on a fresh instance or on a
//! warm one kept for the same tenant ([`InstanceFor`]), checks the answers
//! against the contract, and swaps versions live with fallback
//! ([`PluginCell`]).
//!
//! Invariant: nothing a plugin does (loop, allocate, recurse, trap, return
//! garbage or too much of it, sleep) panics the host, keeps a thread past
//! the call's bound, or leaks into another call; it comes back as a
//! [`PluginFailure`].

mod abi;
pub mod bindings;
mod cache;
mod calls;
mod cell;
pub mod convert;
mod engine;
mod error;
mod format;
mod limits;
mod linker;
mod plugin;
mod runtime;
mod state;
mod warm;

pub use cache::{WASMTIME_VERSION, sha256_hex};
pub use cell::{Answer, AnsweredBy, PluginCell};
pub use engine::{Allocator, MAX_WASM_STACK};
pub use error::{PluginError, PluginFailure};
pub use limits::{Fuel, Interruption, Limits, MAX_MESSAGE_BYTES, RuntimeConfig};
pub use plugin::{CompiledPlugin, Contract, Origin, PluginKind};
pub use runtime::Runtime;
pub use warm::InstanceFor;

/// The contract's records, as the host builds and reads them: 0.1.0's,
/// which 0.2.0 kept for every call but the scheduler's input (lowered by
/// the host from [`pop_core::scheduling::ScheduleInput`]).
pub use bindings::v0_1::types;
