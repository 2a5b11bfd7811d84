//! Hostile plugins are contained: each failure comes back as the right
//! `PluginFailure` (or `PluginError` at upload), the host does not panic,
//! and the engine keeps serving normal plugins at normal speed.

mod common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Backlog, Rng, median_time, runtime_with, scheduler};
use pop_builtin_plugins::{builtin, fixtures};
use pop_wasm::{CompiledPlugin, InstanceFor, Limits, PluginError, PluginFailure, PluginKind, Runtime, types};

/// Deadlines are wall-clock time and CI shares two cores between test
/// threads: 50 ms keeps a descheduled normal call from timing out while
/// still catching the hostile ones quickly.
const DEADLINE: Duration = Duration::from_millis(50);

fn runtime() -> Runtime {
    runtime_with(Limits {
        deadline: DEADLINE,
        ..Limits::default()
    })
}

#[test]
fn the_default_limits_are_the_documented_ones() {
    let limits = Limits::default();
    assert_eq!(limits.deadline, Duration::from_millis(20));
    assert_eq!(limits.epoch_tick, Duration::from_millis(1));
    assert_eq!(limits.memory_bytes, 64 << 20);
}

/// A normal plugin and a small backlog to call it with.
struct Healthy {
    plugin: Arc<CompiledPlugin>,
    backlog: Backlog,
    baseline: Duration,
}

impl Healthy {
    fn new(runtime: &Runtime) -> Self {
        let plugin = scheduler(runtime, builtin("RoundRobin").unwrap().wasm);
        let backlog = Backlog::random(&mut Rng::new(1), 10, 50);
        let mut healthy = Self {
            plugin,
            backlog,
            baseline: Duration::ZERO,
        };
        healthy.baseline = healthy.latency(runtime);
        healthy
    }

    fn call(&self, runtime: &Runtime) -> Result<(), PluginFailure> {
        runtime
            .schedule(
                &self.plugin,
                InstanceFor::Tenant("acme"),
                &self.backlog.input(5, "{}", &[]),
            )
            .map(|out| assert_eq!(out.release.len(), 5))
    }

    fn latency(&self, runtime: &Runtime) -> Duration {
        median_time(15, || self.call(runtime).expect("a normal plugin still works"))
    }

    /// After a hostile call the engine answers as before: same result and,
    /// allowing for a loaded CI machine, the same order of latency.
    fn still_fine(&self, runtime: &Runtime, after: &str) {
        let latency = self.latency(runtime);
        assert!(
            latency <= self.baseline * 5 + Duration::from_millis(2),
            "after {after}: normal call takes {latency:?} (was {:?})",
            self.baseline
        );
    }
}

fn call_fixture(runtime: &Runtime, wasm: &[u8]) -> (Result<(), PluginFailure>, Duration) {
    let plugin = scheduler(runtime, wasm);
    let backlog = Backlog::random(&mut Rng::new(2), 3, 10);
    let start = Instant::now();
    let result = runtime
        .schedule(&plugin, InstanceFor::Tenant("acme"), &backlog.input(3, "{}", &[]))
        .map(drop);
    (result, start.elapsed())
}

#[test]
fn a_spinning_plugin_times_out_at_its_deadline() {
    let runtime = runtime();
    let healthy = Healthy::new(&runtime);
    let deadline = runtime.limits().deadline;
    for _ in 0..3 {
        let (result, took) = call_fixture(&runtime, fixtures::SPIN);
        assert_eq!(result, Err(PluginFailure::Timeout));
        // One epoch tick of slack below, scheduling noise above.
        assert!(
            took >= deadline - runtime.limits().epoch_tick,
            "stopped early, after {took:?}"
        );
        assert!(
            took < deadline + Duration::from_millis(80),
            "stopped late, after {took:?}"
        );
        println!("spin stopped after {took:?} (deadline {deadline:?})");
    }
    healthy.still_fine(&runtime, "spin");
}

#[test]
fn a_spinning_plugin_does_not_hold_up_other_calls() {
    let runtime = Arc::new(runtime());
    let healthy = Healthy::new(&runtime);
    let spin = scheduler(&runtime, fixtures::SPIN);
    let spinner = {
        let runtime = Arc::clone(&runtime);
        thread::spawn(move || {
            let backlog = Backlog::random(&mut Rng::new(4), 2, 4);
            for _ in 0..10 {
                assert_eq!(
                    runtime.schedule(&spin, InstanceFor::Tenant("acme"), &backlog.input(1, "{}", &[])),
                    Err(PluginFailure::Timeout)
                );
            }
        })
    };
    // Meanwhile, on this thread, normal calls go on.
    let mut calls = 0;
    while !spinner.is_finished() {
        healthy.call(&runtime).expect("normal call during a spin");
        calls += 1;
    }
    spinner.join().expect("the spinning thread ends");
    assert!(
        calls > 10,
        "only {calls} normal calls while a plugin spun for 10 deadlines"
    );
    healthy.still_fine(&runtime, "spin in parallel");
}

#[test]
fn a_memory_bomb_runs_out_of_memory() {
    // The bomb touches every page it allocates; with a deadline of a few
    // tens of ms it can run out of time before it reaches 64 MiB (either way
    // it is stopped). A longer deadline shows the memory cap itself.
    let limits = Limits {
        deadline: Duration::from_secs(2),
        ..Limits::default()
    };
    let bomb_runtime = runtime_with(limits);
    let healthy = Healthy::new(&bomb_runtime);
    for _ in 0..2 {
        let (result, took) = call_fixture(&bomb_runtime, fixtures::MEMORY_BOMB);
        assert_eq!(result, Err(PluginFailure::OutOfMemory), "after {took:?}");
        println!("memory bomb stopped after {took:?}");
    }
    healthy.still_fine(&bomb_runtime, "memory bomb");

    // With a short deadline it is stopped one way or the other.
    let runtime = runtime();
    let (result, took) = call_fixture(&runtime, fixtures::MEMORY_BOMB);
    println!("memory bomb with a {DEADLINE:?} deadline: {result:?} after {took:?}");
    assert!(
        matches!(result, Err(PluginFailure::OutOfMemory | PluginFailure::Timeout)),
        "{result:?}"
    );
}

#[test]
fn a_smaller_memory_cap_is_enforced() {
    let runtime = runtime_with(Limits {
        memory_bytes: 8 << 20,
        ..Limits::default()
    });
    let healthy = Healthy::new(&runtime);
    let (result, took) = call_fixture(&runtime, fixtures::MEMORY_BOMB);
    assert_eq!(result, Err(PluginFailure::OutOfMemory), "after {took:?}");
    healthy.still_fine(&runtime, "memory bomb at 8 MiB");
}

#[test]
fn unbounded_recursion_overflows_the_stack() {
    let runtime = runtime();
    let healthy = Healthy::new(&runtime);
    for _ in 0..3 {
        let (result, _) = call_fixture(&runtime, fixtures::STACK_OVERFLOW);
        assert_eq!(result, Err(PluginFailure::StackOverflow));
    }
    healthy.still_fine(&runtime, "stack overflow");
}

#[test]
fn a_panicking_plugin_traps() {
    let runtime = runtime();
    let healthy = Healthy::new(&runtime);
    let (result, _) = call_fixture(&runtime, fixtures::TRAP);
    match result {
        Err(PluginFailure::Trap(message)) => {
            assert!(message.contains("unreachable"), "{message}");
            assert!(
                message.contains("wasm backtrace"),
                "the owner gets a backtrace: {message}"
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    healthy.still_fine(&runtime, "trap");
}

#[test]
fn an_invalid_decision_is_bad_output() {
    let runtime = runtime();
    let healthy = Healthy::new(&runtime);
    let (result, _) = call_fixture(&runtime, fixtures::BAD_OUTPUT);
    match result {
        Err(PluginFailure::BadOutput(message)) => assert!(message.contains("not offered"), "{message}"),
        other => panic!("expected bad output, got {other:?}"),
    }
    healthy.still_fine(&runtime, "bad output");
}

#[test]
fn uploads_that_are_not_plugins_of_the_kind_are_rejected() {
    let runtime = runtime();
    let healthy = Healthy::new(&runtime);

    let wrong = runtime
        .compile(PluginKind::Scheduler, fixtures::WRONG_WORLD)
        .unwrap_err();
    assert!(
        matches!(
            wrong,
            PluginError::WrongWorld {
                expected: "scheduler",
                ..
            }
        ),
        "{wrong}"
    );
    // ... and the same bytes are fine as what they are.
    runtime
        .compile(PluginKind::Handler, fixtures::WRONG_WORLD)
        .expect("a handler");
    // A scheduler is not a handler, matcher or policy.
    let round_robin = builtin("RoundRobin").unwrap().wasm;
    for kind in [
        PluginKind::Handler,
        PluginKind::InsightMatcher,
        PluginKind::VisibilityPolicy,
    ] {
        let error = runtime.compile(kind, round_robin).unwrap_err();
        assert!(
            matches!(error, PluginError::WrongWorld { expected, .. } if expected == kind.world()),
            "{error}"
        );
    }

    for garbage in [&b"garbage bytes"[..], b"", b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0"] {
        let error = runtime.compile(PluginKind::Scheduler, garbage).unwrap_err();
        assert!(matches!(error, PluginError::NotAComponent { .. }), "{error}");
    }
    // A component cut short: the header is right, the rest is not.
    let truncated = &round_robin[..round_robin.len() / 2];
    let error = runtime.compile(PluginKind::Scheduler, truncated).unwrap_err();
    assert!(matches!(error, PluginError::Compile(_)), "{error}");

    healthy.still_fine(&runtime, "rejected uploads");
}

#[test]
fn calling_a_plugin_through_the_wrong_entry_point_fails_cleanly() {
    let runtime = runtime();
    let round_robin = scheduler(&runtime, builtin("RoundRobin").unwrap().wasm);
    let caller = types::Caller {
        user_id: "u".into(),
        accounts: vec![],
        super_user: false,
    };
    assert_eq!(
        runtime.decide_visibility(&round_robin, InstanceFor::Tenant("acme"), &caller, &[]),
        Err(PluginFailure::WrongKind {
            expected: PluginKind::VisibilityPolicy,
            actual: PluginKind::Scheduler
        })
    );
    // A plugin compiled by another runtime (another engine) is refused,
    // not run (wasmtime would panic).
    let other = common::runtime();
    let backlog = Backlog::random(&mut Rng::new(5), 2, 3);
    assert!(matches!(
        other.schedule(&round_robin, InstanceFor::Tenant("acme"), &backlog.input(1, "{}", &[])),
        Err(PluginFailure::Instantiate(_))
    ));
}
