//! POP's handler registry and local launchers.
//!
//! * [`Registry`] reads `registry.json` (operation type → Kubernetes pod, local process or WASM
//!   component), applies the layering of spec §5.4 as a **deep** merge, and resolves an operation
//!   type to a [`HandlerSpec`].
//! * [`run_process`] launches a [`ProcessSpec`] under the handler launch contract (§5.2, local
//!   variant documented in `handlers-registry/README.md`) and maps what it did into success or
//!   failure.
//! * [`report`] is the local stand-in for the pod annotations: the JSON-lines report file shared
//!   by the launcher and handlers such as `pop-sample-handler` (its format is `pop-handler`'s,
//!   re-exported; the reader and `settled` are the launcher's side).
//! * `pop-sample-handler` (spec §5.6) is written on `pop-handler`; feature `kubernetes` lets it
//!   report onto its pod's annotations.
//!
//! The server reaches processes through the `pop-process-launcher` adapter of the `Launcher`
//! port, which is built on this library.

mod error;
pub mod launch;
mod merge;
mod registry;
pub mod report;
pub mod sample;
mod spec;

pub use error::{LaunchError, RegistryError};
pub use launch::{LaunchInput, LaunchOutput, Outcome, kill_orphans, run_process, run_process_with_clock};
pub use merge::deep_merge;
pub use registry::{DEFAULT_REGISTRY_JSON, Registry};
pub use spec::{
    AliveCheckDetails, ConfigMapSettings, HandlerSpec, KeyPath, NfsSettings, PodConfig, PodSpec, ProcessSpec,
    WasmSource, WasmSpec,
};
