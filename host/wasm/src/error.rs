//! What can go wrong: loading a plugin ([`PluginError`]) and calling one
//! ([`PluginFailure`]), and how wasmtime's errors map onto them.

use wasmtime::{Trap, WasmBacktrace};

use crate::limits::Budget;
use crate::plugin::PluginKind;

/// Why uploaded bytes cannot become a plugin. Shown to the plugin's owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// Not a WebAssembly component: `found` says what it is instead.
    #[error("not a WebAssembly component: {found} (build for wasm32-wasip2, which produces a component)")]
    NotAComponent { found: &'static str },
    /// A component that Cranelift could not validate or compile.
    #[error("the component does not compile: {0}")]
    Compile(String),
    /// A valid component whose imports or exports are not those of the world.
    #[error("the component is not a `{expected}` plugin: {detail}")]
    WrongWorld { expected: &'static str, detail: String },
    /// The runtime itself could not be set up (engine, linker, ticker).
    #[error("the plugin runtime could not start: {0}")]
    Setup(String),
}

/// Why one call of a plugin produced no usable answer. The host falls back
/// and records it where the tenant sees it; it never takes the host down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFailure {
    /// The call executed its whole instruction budget
    /// ([`crate::Limits::fuel`]): the same plugin on the same input stops at
    /// the same point however busy the machine is.
    #[error("the plugin ran past its deadline: it used up its budget of {budget} instructions")]
    OutOfFuel { budget: u64 },
    /// The wall-clock backstop ([`crate::Limits::backstop`]) or a handler's
    /// timeout passed.
    #[error("the plugin ran past its wall-clock deadline")]
    Timeout,
    #[error("the plugin ran out of memory")]
    OutOfMemory,
    #[error("the plugin overflowed its stack")]
    StackOverflow,
    #[error("the plugin trapped: {0}")]
    Trap(String),
    /// The answer broke the contract (index out of range, wrong length, ...)
    /// or was larger than the call may hand back (refused before the host
    /// copied it).
    #[error("the plugin's answer is invalid: {0}")]
    BadOutput(String),
    /// The plugin returned `err(message)`.
    #[error("the plugin refused: {0}")]
    Refused(String),
    #[error("the plugin could not be instantiated: {0}")]
    Instantiate(String),
    /// The host called a plugin through the wrong entry point (a bug in the
    /// caller, not in the plugin).
    #[error("a {actual} plugin was called as a {expected}")]
    WrongKind { expected: PluginKind, actual: PluginKind },
}

/// Classify an error from instantiating or calling a guest armed with
/// `budget`.
///
/// `memory_denied` is whether the store's limiter refused a memory or table
/// growth during the call: the guest's reaction to that (usually `abort`,
/// i.e. an `unreachable` trap) is reported as the cause, `OutOfMemory`.
pub(crate) fn classify(
    error: &wasmtime::Error,
    memory_denied: bool,
    instantiating: bool,
    budget: &Budget,
) -> PluginFailure {
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PluginFailure::OutOfFuel {
            budget: budget.fuel.unwrap_or_default(),
        },
        Some(Trap::Interrupt) => PluginFailure::Timeout,
        Some(Trap::StackOverflow) => PluginFailure::StackOverflow,
        _ if memory_denied => PluginFailure::OutOfMemory,
        Some(_) => PluginFailure::Trap(describe(error)),
        None if is_transfer_limit(error) => PluginFailure::BadOutput(format!(
            "the plugin tried to hand the host more than {} bytes at once, the most this call may return \
             ({}); refused before anything was copied",
            budget.output.bytes(),
            budget.output.describe()
        )),
        None => {
            if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
                PluginFailure::Trap(format!("the plugin called exit({})", exit.0))
            } else if instantiating {
                PluginFailure::Instantiate(describe(error))
            } else {
                PluginFailure::Trap(describe(error))
            }
        }
    }
}

/// Whether wasmtime refused to copy data out of the guest because it was
/// over the store's hostcall fuel (the transfer limit the runtime sets per
/// call, see [`crate::limits::Output`]). wasmtime's error type for it is
/// private; its message is matched instead, which the pinned wasmtime
/// version keeps stable and `tests/containment.rs` checks.
fn is_transfer_limit(error: &wasmtime::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .to_string()
            .starts_with("too much data is being copied between the host and the guest")
    })
}

/// What went wrong first, then where in the guest (the wasm backtrace,
/// when wasmtime recorded one), for the plugin's owner to debug with.
fn describe(error: &wasmtime::Error) -> String {
    let cause = error.root_cause().to_string();
    match error.downcast_ref::<WasmBacktrace>() {
        Some(backtrace) => format!("{cause}\n{backtrace}"),
        None => cause,
    }
}
