//! Bindings of `pop:plugin@0.2.0` (`wit/plugin.wit`): one `bindgen!` per
//! world.
//!
//! The host uses them to link (the `types`, `progress` and `timer` imports
//! of 0.2.0 plugins) and to type-check a scheduler's `schedule` export. The
//! calls themselves go through the records of [`super::v0_1`], which 0.2.0
//! left unchanged, and the scheduler input the host lowers itself
//! ([`crate::abi`]).

/// `world scheduler`: `schedule(input) -> result<schedule-output, string>`.
pub mod scheduler {
    wasmtime::component::bindgen!({
        world: "scheduler",
        path: "../../wit",
    });
}

/// `world insight-matcher`.
pub mod insight_matcher {
    wasmtime::component::bindgen!({
        world: "insight-matcher",
        path: "../../wit",
        with: { "pop:plugin/types": super::scheduler::pop::plugin::types },
    });
}

/// `world visibility-policy`.
pub mod visibility_policy {
    wasmtime::component::bindgen!({
        world: "visibility-policy",
        path: "../../wit",
        with: { "pop:plugin/types": super::scheduler::pop::plugin::types },
    });
}

/// `world handler`, with the `progress` and `timer` imports.
pub mod handler {
    wasmtime::component::bindgen!({
        world: "handler",
        path: "../../wit",
        with: { "pop:plugin/types": super::scheduler::pop::plugin::types },
        imports: { "pop:plugin/timer.sleep": trappable },
    });
}

/// The `pop:plugin/types@0.2.0` interface (type-only: linked, never called).
pub use scheduler::pop::plugin::types;

/// The `pop:plugin/progress@0.2.0` import of the handler world.
pub use handler::pop::plugin::progress;

/// The `pop:plugin/timer@0.2.0` import of the handler world.
pub use handler::pop::plugin::timer;
