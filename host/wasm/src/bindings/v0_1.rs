//! Bindings of `pop:plugin@0.1.0` (`wit/0.1.0/plugin.wit`, frozen): one
//! `bindgen!` per world.
//!
//! These are also the Rust types every call uses: 0.2.0 changed only the
//! scheduler's input, which the host lowers itself (see [`crate::abi`]), so a
//! matcher, visibility policy or handler of either version type-checks
//! against these records and is called through them.
//!
//! Every world `use`s the same `types` interface. It is generated once (in
//! [`scheduler`]) and the other worlds point at it with `with`, so the host
//! has exactly one Rust type per WIT record and a value built for one world
//! can be passed to another without conversion.

/// `world scheduler`: `schedule(input) -> result<schedule-output, string>`.
pub mod scheduler {
    wasmtime::component::bindgen!({
        world: "scheduler",
        path: "../../wit/0.1.0",
        additional_derives: [PartialEq, Eq],
    });
}

/// `world insight-matcher`: `select(agenda, candidates) -> result<option<u32>, string>`.
pub mod insight_matcher {
    wasmtime::component::bindgen!({
        world: "insight-matcher",
        path: "../../wit/0.1.0",
        with: { "pop:plugin/types": super::scheduler::pop::plugin::types },
    });
}

/// `world visibility-policy`: `decide(caller, objects) -> result<list<bool>, string>`.
pub mod visibility_policy {
    wasmtime::component::bindgen!({
        world: "visibility-policy",
        path: "../../wit/0.1.0",
        with: { "pop:plugin/types": super::scheduler::pop::plugin::types },
    });
}

/// `world handler`: `run(payload, context) -> result<string, string>`, with
/// the `progress` import.
pub mod handler {
    wasmtime::component::bindgen!({
        world: "handler",
        path: "../../wit/0.1.0",
        with: { "pop:plugin/types": super::scheduler::pop::plugin::types },
        // A sleep that reaches the deadline ends the call from the host.
        imports: { "pop:plugin/timer.sleep": trappable },
    });
}

/// The records of `pop:plugin/types@0.1.0`, shared by all four worlds.
pub use scheduler::pop::plugin::types;

/// The `pop:plugin/progress@0.1.0` import of the handler world.
pub use handler::pop::plugin::progress;

/// The `pop:plugin/timer@0.1.0` import of the handler world.
pub use handler::pop::plugin::timer;
