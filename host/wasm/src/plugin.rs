//! A compiled, type-checked plugin ready to be instantiated per call.

use std::fmt;

use wasmtime::component::{Component, ComponentExportIndex, InstancePre};

use crate::bindings::v0_1::{handler, insight_matcher, visibility_policy};
use crate::state::CallState;

/// The world a plugin implements (one type for the model, the API and the runtime).
pub use pop_core::PluginKind;

/// Where a plugin's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled from the wasm bytes by Cranelift.
    Compiled,
    /// Loaded from the runtime's `cache_dir` without compiling.
    DiskCache,
}

/// The per-world pre-instantiated form of a component: imports resolved
/// against the world's linker and export indices looked up once, so a call
/// only has to instantiate. One variant per world and contract version.
pub(crate) enum Bound {
    /// With the index of the `schedule` export, which the hot path calls
    /// through its own borrowed input type of the plugin's contract version
    /// (see [`crate::abi`]).
    Scheduler(InstancePre<CallState>, ComponentExportIndex, Contract),
    InsightMatcher(insight_matcher::InsightMatcherPre<CallState>),
    /// A `pop:plugin@0.1.0` visibility policy: a list of object records.
    VisibilityPolicy(visibility_policy::VisibilityPolicyPre<CallState>),
    /// A `pop:plugin@0.2.0` visibility policy, with the index of its
    /// `decide` export: a page of columns (see [`crate::abi::ObjectPage`]).
    VisibilityPage(InstancePre<CallState>, ComponentExportIndex),
    Handler(handler::HandlerPre<CallState>),
}

/// The contract version a plugin was built against, where versions differ
/// in what the host passes (the scheduler's input and the visibility page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `pop:plugin@0.1.0`: customer ids as `list<string>`.
    V0_1,
    /// `pop:plugin@0.2.0`: customer ids as one string and their ends; a
    /// visibility page as columns over one string table.
    V0_2,
}

impl Contract {
    /// The package version, as in `pop:plugin@0.2.0`.
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
        }
    }
}

/// A compiled plugin of one kind. Cheap to share (`Arc`); calls never
/// mutate it, so any number of threads can run it at once.
pub struct CompiledPlugin {
    /// Unique in the process: the plugin half of a warm instance's key, so
    /// a recompiled or new version never runs on another's instance.
    pub(crate) id: u64,
    pub(crate) sha256: String,
    pub(crate) kind: PluginKind,
    pub(crate) origin: Origin,
    pub(crate) contract: Contract,
    pub(crate) component: Component,
    pub(crate) bound: Bound,
}

impl CompiledPlugin {
    /// Hex sha256 of the wasm bytes: the plugin's content address.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The `pop:plugin` version the plugin was built against (for a
    /// scheduler: the one its `schedule` export type-checked against, which
    /// decides how its input is passed).
    pub fn contract(&self) -> Contract {
        self.contract
    }

    /// The compiled component (for inspecting its imports and exports).
    pub fn component(&self) -> &Component {
        &self.component
    }
}

impl fmt::Debug for CompiledPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledPlugin")
            .field("sha256", &self.sha256)
            .field("kind", &self.kind)
            .field("origin", &self.origin)
            .field("contract", &self.contract)
            .finish_non_exhaustive()
    }
}
