//! The plugin components POP ships, as bytes: the built-in schedulers, insight mapper and
//! visibility policy ([`BUILTINS`]), the tenant examples ([`examples`]) and the hostile
//! fixtures of the runtime's containment tests ([`fixtures`]).
//!
//! `build.rs` compiles them from the guest workspace (`plugins/Cargo.toml`, which also holds
//! `schedulers/*`) with one nested `cargo build --release --target wasm32-wasip2`; each
//! `.wasm` is a WebAssembly component of one world of `wit/plugin.wit`. The built-ins are
//! compiled from the same `pop-core` functions as the host's native path.

macro_rules! component {
    ($stem:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $stem, ".wasm"))
    };
}

/// The `scheduler` world (`wit/plugin.wit`).
pub const SCHEDULER: &str = "scheduler";
/// The `insight-matcher` world.
pub const INSIGHT_MATCHER: &str = "insight-matcher";
/// The `visibility-policy` world.
pub const VISIBILITY_POLICY: &str = "visibility-policy";
/// The `handler` world.
pub const HANDLER: &str = "handler";

/// One shipped plugin component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// The name the plugin is registered and selected under (for schedulers, the insight's
    /// `schedulingAlgorithm`).
    pub name: &'static str,
    /// The WIT world it exports: [`SCHEDULER`], [`INSIGHT_MATCHER`], [`VISIBILITY_POLICY`] or
    /// [`HANDLER`].
    pub kind: &'static str,
    /// The component binary.
    pub wasm: &'static [u8],
}

/// The built-in plugins, registered as global plugins at start-up.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "FirstInFirstOut",
        kind: SCHEDULER,
        wasm: component!("pop_scheduler_fifo"),
    },
    Builtin {
        name: "RoundRobin",
        kind: SCHEDULER,
        wasm: component!("pop_scheduler_round_robin"),
    },
    Builtin {
        name: "Priority",
        kind: SCHEDULER,
        wasm: component!("pop_scheduler_priority"),
    },
    Builtin {
        name: "WeightedFair",
        kind: SCHEDULER,
        wasm: component!("pop_scheduler_weighted_fair"),
    },
    Builtin {
        name: "pop-insight-mapper",
        kind: INSIGHT_MATCHER,
        wasm: component!("pop_insight_mapper"),
    },
    Builtin {
        name: "pop-visibility",
        kind: VISIBILITY_POLICY,
        wasm: component!("pop_visibility"),
    },
    Builtin {
        name: "sample",
        kind: HANDLER,
        wasm: component!("pop_sample_handler_wasm"),
    },
];

/// The built-in plugin named `name` (exact).
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Example tenant plugins (`plugins/examples/`), one of each kind.
pub mod examples {
    use super::{Builtin, HANDLER, INSIGHT_MATCHER, SCHEDULER, VISIBILITY_POLICY};

    /// Scheduler: releases the newest pending agendas first (LIFO); no state, no config.
    pub const NEWEST_FIRST: &[u8] = component!("pop_example_newest_first");
    /// Insight matcher: the candidate whose title equals (case-insensitively) the agenda's
    /// `queue` parameter, none when no title does; POP's rule when the agenda has no `queue`.
    pub const BY_TITLE: &[u8] = component!("pop_example_by_title");
    /// Visibility policy: POP's rules, plus callers with an account that starts with
    /// `<owner>-partner`.
    pub const PARTNER_VISIBILITY: &[u8] = component!("pop_example_partner_visibility");
    /// Handler: returns its JSON payload with every string value upper-cased; reports progress
    /// 50 then 100. A payload that is not JSON is an error.
    pub const UPPERCASE: &[u8] = component!("pop_example_uppercase");

    /// Every example, named as its directory.
    pub const ALL: &[Builtin] = &[
        Builtin {
            name: "newest-first",
            kind: SCHEDULER,
            wasm: NEWEST_FIRST,
        },
        Builtin {
            name: "by-title",
            kind: INSIGHT_MATCHER,
            wasm: BY_TITLE,
        },
        Builtin {
            name: "partner-visibility",
            kind: VISIBILITY_POLICY,
            wasm: PARTNER_VISIBILITY,
        },
        Builtin {
            name: "uppercase",
            kind: HANDLER,
            wasm: UPPERCASE,
        },
    ];
}

/// Components for the runtime's containment and hot-swap tests (`plugins/fixtures/`). All are
/// scheduler-world components except [`WRONG_WORLD`](fixtures::WRONG_WORLD).
pub mod fixtures {
    use super::{Builtin, HANDLER, SCHEDULER, VISIBILITY_POLICY};

    /// Loops forever without allocating: only the epoch deadline (or fuel) stops it.
    pub const SPIN: &[u8] = component!("pop_fixture_spin");
    /// Allocates 16 MiB blocks forever (touching every wasm page): the memory cap must make it fail (it aborts,
    /// which is an `unreachable` trap).
    pub const MEMORY_BOMB: &[u8] = component!("pop_fixture_memory_bomb");
    /// Unbounded recursion that cannot be optimized into a loop: a wasm stack-overflow trap.
    pub const STACK_OVERFLOW: &[u8] = component!("pop_fixture_stack_overflow");
    /// Panics on every call (`panic = "abort"`): an `unreachable` trap.
    pub const TRAP: &[u8] = component!("pop_fixture_trap");
    /// Returns `release: [1_000_000, 0, 0]` (an index never offered, then a duplicate) and an
    /// empty state, whatever the input.
    pub const BAD_OUTPUT: &[u8] = component!("pop_fixture_bad_output");
    /// A valid component of the `handler` world (it echoes its payload and reports progress, so
    /// it imports `pop:plugin/progress`), to offer where a scheduler is expected.
    pub const WRONG_WORLD: &[u8] = component!("pop_fixture_wrong_world");
    /// Well-behaved: releases the first `free_slots` pending agendas and returns its input state
    /// with one byte (`b'+'`) appended, so after n persisted decisions the state is n bytes.
    pub const ECHO_STATE: &[u8] = component!("pop_fixture_echo_state");
    /// Hot-swap version A: releases index 0 (when something is pending and a slot is free) and
    /// returns the state `b"first-pending"`, whatever the config.
    pub const FIRST_PENDING: &[u8] = component!("pop_fixture_first_pending");
    /// Hot-swap version B: releases the last pending index (when a slot is free) and returns
    /// the state `b"last-pending"`, whatever the config.
    pub const LAST_PENDING: &[u8] = component!("pop_fixture_last_pending");
    /// Passes the host's smoke call (empty backlog) and panics as soon as work is pending: for
    /// the fallback taken at decision time and the failure report to the owner.
    pub const TRAP_WHEN_BUSY: &[u8] = component!("pop_fixture_trap_when_busy");
    /// Counts its calls in a static and returns the count as its state (decimal), releasing
    /// nothing: the count goes up only while the host reuses the instance. Config `"trap"`,
    /// `"spin"` or `"bomb"` makes it trap, loop forever or exhaust memory after counting;
    /// `"grow"` makes it use 24 MiB for a moment and answer normally.
    pub const CALL_COUNTER: &[u8] = component!("pop_fixture_call_counter");
    /// Round-robin built against the frozen `pop:plugin@0.1.0` (customer ids as
    /// `list<string>`) on plain `wit-bindgen`: the host must still serve it, and it decides
    /// exactly as `pop_core::scheduling::round_robin`.
    pub const LEGACY_ROUND_ROBIN: &[u8] = component!("pop_fixture_legacy_round_robin");
    /// POP's visibility rule built against the frozen `pop:plugin@0.1.0` (a list of object
    /// records) on plain `wit-bindgen`: the host must still serve it.
    pub const LEGACY_VISIBILITY: &[u8] = component!("pop_fixture_legacy_visibility");
    /// Handler: reports progress with 1 KiB messages in a tight loop, `{"reports": n}` times
    /// (then returns `{"reports": n}`) or, with `{"forever": true}`, until its deadline: the host
    /// must coalesce reports instead of queueing them.
    pub const PROGRESS_FLOOD: &[u8] = component!("pop_fixture_progress_flood");
    /// Passes the host's smoke call (empty backlog) and loops forever as soon as work is
    /// pending: a scheduler that runs into its deadline on every real call.
    pub const SPIN_WHEN_BUSY: &[u8] = component!("pop_fixture_spin_when_busy");
    /// A visibility policy that denies every object to every caller: its owner must still see
    /// its own objects, and other tenants' listings must not change.
    pub const DENY_ALL: &[u8] = component!("pop_fixture_deny_all");

    /// Answers as big as its config says (`state:<bytes>`, `fill:<bytes>`, `release:<count>`,
    /// `refuse:<bytes>`; anything else is FIFO): the host must refuse an answer over its limits
    /// before copying it out of the guest.
    pub const HUGE_STATE: &[u8] = component!("pop_fixture_huge_state");

    /// Every fixture, named as its directory, with the world it exports.
    pub const ALL: &[Builtin] = &[
        Builtin {
            name: "spin",
            kind: SCHEDULER,
            wasm: SPIN,
        },
        Builtin {
            name: "memory-bomb",
            kind: SCHEDULER,
            wasm: MEMORY_BOMB,
        },
        Builtin {
            name: "stack-overflow",
            kind: SCHEDULER,
            wasm: STACK_OVERFLOW,
        },
        Builtin {
            name: "trap",
            kind: SCHEDULER,
            wasm: TRAP,
        },
        Builtin {
            name: "bad-output",
            kind: SCHEDULER,
            wasm: BAD_OUTPUT,
        },
        Builtin {
            name: "wrong-world",
            kind: HANDLER,
            wasm: WRONG_WORLD,
        },
        Builtin {
            name: "echo-state",
            kind: SCHEDULER,
            wasm: ECHO_STATE,
        },
        Builtin {
            name: "first-pending",
            kind: SCHEDULER,
            wasm: FIRST_PENDING,
        },
        Builtin {
            name: "last-pending",
            kind: SCHEDULER,
            wasm: LAST_PENDING,
        },
        Builtin {
            name: "trap-when-busy",
            kind: SCHEDULER,
            wasm: TRAP_WHEN_BUSY,
        },
        Builtin {
            name: "call-counter",
            kind: SCHEDULER,
            wasm: CALL_COUNTER,
        },
        Builtin {
            name: "legacy-round-robin",
            kind: SCHEDULER,
            wasm: LEGACY_ROUND_ROBIN,
        },
        Builtin {
            name: "legacy-visibility",
            kind: VISIBILITY_POLICY,
            wasm: LEGACY_VISIBILITY,
        },
        Builtin {
            name: "progress-flood",
            kind: HANDLER,
            wasm: PROGRESS_FLOOD,
        },
        Builtin {
            name: "spin-when-busy",
            kind: SCHEDULER,
            wasm: SPIN_WHEN_BUSY,
        },
        Builtin {
            name: "deny-all",
            kind: VISIBILITY_POLICY,
            wasm: DENY_ALL,
        },
        Builtin {
            name: "huge-state",
            kind: SCHEDULER,
            wasm: HUGE_STATE,
        },
    ];
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use wasmparser::{ComponentExternalKind, ComponentTypeRef, Parser, Payload};

    use super::*;

    /// `\0asm`, then version 0x0d and layer 1: a component, not a core module (version 1, layer 0).
    const COMPONENT_PREAMBLE: [u8; 8] = *b"\0asm\x0d\x00\x01\x00";

    fn everything() -> impl Iterator<Item = &'static Builtin> {
        BUILTINS.iter().chain(examples::ALL).chain(fixtures::ALL)
    }

    /// The function a component of `kind` must export.
    fn export_of(kind: &str) -> &'static str {
        match kind {
            SCHEDULER => "schedule",
            INSIGHT_MATCHER => "select",
            VISIBILITY_POLICY => "decide",
            HANDLER => "run",
            other => panic!("unknown kind {other}"),
        }
    }

    /// The top-level instance and function imports, and the exported functions, of a component.
    /// (Type imports are left out: every plugin also imports, as `eq` type aliases, the types
    /// the SDK's four worlds `use`, which need nothing from the host.)
    fn top_level_imports_and_exports(wasm: &[u8]) -> (BTreeSet<String>, BTreeSet<String>) {
        let (mut imports, mut exports) = (BTreeSet::new(), BTreeSet::new());
        let mut depth = 0;
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.expect("component parses") {
                Payload::Version { .. } => depth += 1,
                Payload::End(_) => depth -= 1,
                Payload::ComponentImportSection(reader) if depth == 1 => {
                    for import in reader {
                        let import = import.expect("import");
                        if !matches!(import.ty, ComponentTypeRef::Type(_)) {
                            imports.insert(import.name.name.to_string());
                        }
                    }
                }
                Payload::ComponentExportSection(reader) if depth == 1 => {
                    for export in reader {
                        let export = export.expect("export");
                        if export.kind == ComponentExternalKind::Func {
                            exports.insert(export.name.name.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        (imports, exports)
    }

    #[test]
    fn every_binary_is_a_non_trivial_component() {
        for plugin in everything() {
            assert!(
                plugin.wasm.starts_with(&COMPONENT_PREAMBLE),
                "{} does not start with the component preamble: {:02x?}",
                plugin.name,
                &plugin.wasm[..plugin.wasm.len().min(8)]
            );
            // A component that links std is tens of KiB; an empty or truncated file is not.
            assert!(
                plugin.wasm.len() > 16 * 1024,
                "{} is only {} bytes",
                plugin.name,
                plugin.wasm.len()
            );
        }
    }

    #[test]
    fn every_component_exports_exactly_its_world() {
        for plugin in everything() {
            let (imports, exports) = top_level_imports_and_exports(plugin.wasm);
            let expected = BTreeSet::from([export_of(plugin.kind).to_string()]);
            assert_eq!(exports, expected, "{} ({}) exports", plugin.name, plugin.kind);
            // Everything is built against the current contract but the
            // fixture that stands for plugins of the old one.
            let version = match plugin.name {
                "legacy-round-robin" | "legacy-visibility" => "0.1.0",
                _ => "0.2.0",
            };
            let pop = |interface: &str| format!("pop:plugin/{interface}@{version}");
            for import in &imports {
                let allowed = import.starts_with("wasi:")
                    || *import == pop("types")
                    || (plugin.kind == HANDLER && [pop("progress"), pop("timer")].contains(import));
                assert!(allowed, "{} ({}) imports {import}", plugin.name, plugin.kind);
            }
            assert!(imports.contains(&pop("types")), "{} imports {imports:?}", plugin.name);
        }
        for handler in [examples::UPPERCASE, fixtures::WRONG_WORLD] {
            let (imports, _) = top_level_imports_and_exports(handler);
            assert!(imports.contains("pop:plugin/progress@0.2.0"), "{imports:?}");
        }
        let sample = builtin("sample").map(|b| b.wasm).unwrap_or_default();
        let (imports, _) = top_level_imports_and_exports(sample);
        assert!(imports.contains("pop:plugin/timer@0.2.0"), "{imports:?}");
    }

    #[test]
    fn names_are_unique_and_builtins_are_found_by_name() {
        let names: BTreeSet<_> = BUILTINS.iter().map(|b| b.name).collect();
        assert_eq!(names.len(), BUILTINS.len());
        for name in ["FirstInFirstOut", "RoundRobin", "Priority", "WeightedFair"] {
            assert_eq!(builtin(name).map(|b| b.kind), Some(SCHEDULER), "{name}");
        }
        assert_eq!(builtin("pop-insight-mapper").map(|b| b.kind), Some(INSIGHT_MATCHER));
        assert_eq!(builtin("pop-visibility").map(|b| b.kind), Some(VISIBILITY_POLICY));
        assert!(builtin("fifo").is_none());
        // The hot-swap twins must be different binaries.
        assert_ne!(fixtures::FIRST_PENDING, fixtures::LAST_PENDING);
    }
}
