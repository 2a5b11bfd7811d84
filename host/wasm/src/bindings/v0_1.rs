//! Bindings of `pop:plugin@0.1.0`: one `bindgen!` per world.
//!
//! Every world `use`s the same `types` interface. It is generated once (in
//! [`scheduler`]) and the other worlds point at it with `with`, so the host
//! has exactly one Rust type per WIT record and a value built for one world
//! can be passed to another without conversion.

/// `world scheduler`: `schedule(input) -> result<schedule-output, string>`.
pub mod scheduler {
    wasmtime::component::bindgen!({
        world: "scheduler",
        path: "../../wit",
        additional_derives: [PartialEq, Eq],
    });
}

/// `world insight-matcher`: `select(agenda, candidates) -> result<option<u32>, string>`.
pub mod insight_matcher {
    wasmtime::component::bindgen!({
        world: "insight-matcher",
        path: "../../wit",
        with: { "pop:plugin/types": super::scheduler::pop::plugin::types },
    });
}

/// `world visibility-policy`: `decide(caller, objects) -> result<list<bool>, string>`.
pub mod visibility_policy {
    wasmtime::component::bindgen!({
        world: "visibility-policy",
        path: "../../wit",
        with: { "pop:plugin/types": super::scheduler::pop::plugin::types },
    });
}

/// `world handler`: `run(payload, context) -> result<string, string>`, with
/// the `progress` import.
pub mod handler {
    wasmtime::component::bindgen!({
        world: "handler",
        path: "../../wit",
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
