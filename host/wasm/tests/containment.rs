//! Hostile plugins are contained: each failure comes back as the right
//! `PluginFailure` (or `PluginError` at upload), the host does not panic,
//! and the engine keeps serving normal plugins.
//!
//! Nothing here depends on how busy the machine is: a runaway plugin is
//! stopped by its instruction budget (a count, not a time), and the
//! wall-clock backstop of these runtimes is far out of reach of any healthy
//! call, so no test asserts a timing margin.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Backlog, Rng, runtime_with, scheduler};
use pop_builtin_plugins::{builtin, fixtures};
use pop_wasm::{
    CompiledPlugin, Fuel, InstanceFor, Interruption, Limits, MAX_MESSAGE_BYTES, PluginError, PluginFailure, PluginKind,
    Runtime, types,
};

/// The default limits with the wall-clock backstop moved out of reach
/// (20 ms × 1,000 = 20 s): whatever stops a plugin here is its budget.
fn limits() -> Limits {
    Limits {
        backstop_factor: 1_000,
        ..Limits::default()
    }
}

fn runtime() -> Runtime {
    runtime_with(limits())
}

fn out_of_fuel() -> Result<(), PluginFailure> {
    Err(PluginFailure::OutOfFuel {
        budget: Fuel::default().scheduler,
    })
}

#[test]
fn the_default_limits_are_the_documented_ones() {
    let limits = Limits::default();
    assert_eq!(limits.interruption, Interruption::FuelAndEpoch);
    assert_eq!(limits.deadline, Duration::from_millis(20));
    assert_eq!(limits.backstop(), Duration::from_millis(200));
    assert_eq!(limits.epoch_tick, Duration::from_millis(1));
    assert_eq!(
        limits.fuel,
        Fuel {
            scheduler: 200_000_000,
            insight_matcher: 100_000_000,
            visibility_policy: 200_000_000,
            handler: 1_000_000_000_000,
        }
    );
    assert_eq!(limits.memory_bytes, 64 << 20);
    assert_eq!(limits.max_state_bytes, 1 << 20);
    assert_eq!(limits.max_output_bytes, 1 << 20);
}

/// A normal plugin and a small backlog to call it with.
struct Healthy {
    plugin: Arc<CompiledPlugin>,
    backlog: Backlog,
}

impl Healthy {
    fn new(runtime: &Runtime) -> Self {
        let healthy = Self {
            plugin: scheduler(runtime, builtin("RoundRobin").unwrap().wasm),
            backlog: Backlog::random(&mut Rng::new(1), 10, 50),
        };
        healthy.still_fine(runtime, "nothing");
        healthy
    }

    fn call(&self, runtime: &Runtime) -> Result<(), PluginFailure> {
        let input = self.backlog.input(5, "{}", &[]);
        let output = runtime.schedule(&self.plugin, InstanceFor::Tenant("acme"), &input)?;
        assert_eq!(output, pop_core::scheduling::round_robin(&input).unwrap());
        Ok(())
    }

    /// After a hostile call the engine answers as before, on a fresh
    /// instance as on the tenant's warm one.
    fn still_fine(&self, runtime: &Runtime, after: &str) {
        for _ in 0..3 {
            self.call(runtime)
                .unwrap_or_else(|e| panic!("after {after}: a normal plugin fails: {e}"));
        }
        let input = self.backlog.input(5, "{}", &[]);
        runtime
            .schedule(&self.plugin, InstanceFor::Fresh, &input)
            .unwrap_or_else(|e| panic!("after {after}: a fresh instance fails: {e}"));
    }
}

fn call_fixture(runtime: &Runtime, wasm: &[u8]) -> (Result<(), PluginFailure>, Duration) {
    call_fixture_with(runtime, wasm, "{}")
}

fn call_fixture_with(runtime: &Runtime, wasm: &[u8], config: &str) -> (Result<(), PluginFailure>, Duration) {
    let plugin = scheduler(runtime, wasm);
    let backlog = Backlog::random(&mut Rng::new(2), 3, 10);
    let start = Instant::now();
    let result = runtime
        .schedule(&plugin, InstanceFor::Tenant("acme"), &backlog.input(3, config, &[]))
        .map(drop);
    (result, start.elapsed())
}

#[test]
fn a_spinning_plugin_is_stopped_by_its_instruction_budget() {
    let runtime = runtime();
    let healthy = Healthy::new(&runtime);
    for _ in 0..3 {
        let (result, took) = call_fixture(&runtime, fixtures::SPIN);
        // Not a timeout: the budget ran out, after the same work each time.
        assert_eq!(result, out_of_fuel());
        println!("spin stopped by its budget after {took:?}");
    }
    let message = out_of_fuel().unwrap_err().to_string();
    assert!(
        message.contains("deadline") && message.contains("200000000 instructions"),
        "{message}"
    );
    healthy.still_fine(&runtime, "spin");
}

#[test]
fn a_spinning_plugin_does_not_hold_up_other_calls() {
    let runtime = Arc::new(runtime());
    let healthy = Healthy::new(&runtime);
    let spin = scheduler(&runtime, fixtures::SPIN);
    let stop = Arc::new(AtomicBool::new(false));
    let (spun, has_spun) = mpsc::channel();
    let (started, has_started) = mpsc::channel();
    let spinner = {
        let (runtime, stop) = (Arc::clone(&runtime), Arc::clone(&stop));
        thread::spawn(move || {
            let backlog = Backlog::random(&mut Rng::new(4), 2, 4);
            let mut spins = 0;
            started.send(()).unwrap();
            while !stop.load(Ordering::SeqCst) {
                assert_eq!(
                    runtime
                        .schedule(&spin, InstanceFor::Tenant("acme"), &backlog.input(1, "{}", &[]))
                        .map(drop),
                    out_of_fuel()
                );
                spins += 1;
                let _ = spun.send(());
            }
            spins
        })
    };
    has_started.recv().unwrap();
    // Meanwhile, on this thread, normal calls of the same tenant go on and
    // every one of them answers, however the two threads get the cores.
    for _ in 0..50 {
        healthy.call(&runtime).expect("normal call during a spin");
    }
    // On a loaded machine the 50 calls can all end before the first spin
    // has used up its budget: it is not stopped before it has.
    has_spun.recv().expect("the spinner ends its first call");
    stop.store(true, Ordering::SeqCst);
    let spins = spinner.join().expect("the spinning thread ends");
    assert!(spins >= 1, "the spinner ran");
    println!("50 normal calls while {spins} spinning calls ran out of fuel");
    healthy.still_fine(&runtime, "spin in parallel");
}

#[test]
fn the_wall_clock_backstop_stops_what_the_budget_would_let_run() {
    // A budget no call reaches and a short backstop: the wall clock ends
    // the spin, as it would end anything fuel does not count.
    let runtime = runtime_with(Limits {
        deadline: Duration::from_millis(5),
        backstop_factor: 2,
        fuel: Fuel {
            scheduler: u64::MAX / 2,
            ..Fuel::default()
        },
        ..Limits::default()
    });
    let (result, took) = call_fixture(&runtime, fixtures::SPIN);
    assert_eq!(result, Err(PluginFailure::Timeout));
    println!("spin stopped by the backstop after {took:?}");
    assert!(PluginFailure::Timeout.to_string().contains("deadline"));
}

#[test]
fn each_interruption_mode_stops_a_spin_its_own_way() {
    let epoch = runtime_with(Limits {
        interruption: Interruption::Epoch,
        deadline: Duration::from_millis(5),
        ..Limits::default()
    });
    assert_eq!(call_fixture(&epoch, fixtures::SPIN).0, Err(PluginFailure::Timeout));
    assert_eq!(epoch.instructions_executed(), 0, "no fuel without fuel");
    let fuel = runtime_with(Limits {
        interruption: Interruption::Fuel,
        ..Limits::default()
    });
    assert_eq!(call_fixture(&fuel, fixtures::SPIN).0, out_of_fuel());
    // (No healthy call on the 5 ms epoch runtime: under load it could time
    // out, which is the defect fuel fixes.)
    Healthy::new(&fuel).still_fine(&fuel, "spin");
}

#[test]
fn a_memory_bomb_runs_out_of_memory() {
    // The bomb touches one byte per wasm page: far from its instruction
    // budget when it reaches the 64 MiB cap, so the cap is what stops it.
    let runtime = runtime();
    let healthy = Healthy::new(&runtime);
    for _ in 0..2 {
        let (result, took) = call_fixture(&runtime, fixtures::MEMORY_BOMB);
        assert_eq!(result, Err(PluginFailure::OutOfMemory));
        println!("memory bomb stopped after {took:?}");
    }
    healthy.still_fine(&runtime, "memory bomb");
}

#[test]
fn a_smaller_memory_cap_is_enforced() {
    let runtime = runtime_with(Limits {
        memory_bytes: 8 << 20,
        ..limits()
    });
    let healthy = Healthy::new(&runtime);
    let (result, took) = call_fixture(&runtime, fixtures::MEMORY_BOMB);
    assert_eq!(result, Err(PluginFailure::OutOfMemory), "after {took:?}");
    healthy.still_fine(&runtime, "memory bomb at 8 MiB");
}

/// What a `BadOutput` says, or a panic with what came instead.
fn bad_output(result: Result<(), PluginFailure>) -> String {
    match result {
        Err(PluginFailure::BadOutput(message)) => message,
        other => panic!("expected a bad output, got {other:?}"),
    }
}

#[test]
fn an_oversized_state_is_refused_before_it_is_copied() {
    let runtime = runtime();
    let healthy = Healthy::new(&runtime);
    let max = runtime.limits().max_state_bytes;
    // 48 MiB of state (the reported case was 64 MiB: all of the memory
    // cap), made within the budget (zeroing it costs 48 million of 200
    // million), then refused from its length before the host copies (and
    // allocates) any of it.
    for size in [48 << 20, 8 << 20, 2 * max] {
        let (result, took) = call_fixture_with(&runtime, fixtures::HUGE_STATE, &format!("state:{size}"));
        let message = bad_output(result);
        println!("{size}-byte state refused after {took:?}: {message}");
        assert!(message.contains("refused before anything was copied"), "{message}");
        assert!(
            message.contains(&format!("at most {max} bytes (max_state_bytes)")),
            "{message}"
        );
    }
    // Up to the limit, a state is kept; one byte over it is refused by the
    // check after the (bounded) copy, naming the limit too.
    assert_eq!(
        call_fixture_with(&runtime, fixtures::HUGE_STATE, &format!("state:{max}")).0,
        Ok(())
    );
    let (result, _) = call_fixture_with(&runtime, fixtures::HUGE_STATE, &format!("state:{}", max + 1));
    let message = bad_output(result);
    assert!(
        message.contains(&format!("at most {max} (max_state_bytes)")),
        "{message}"
    );
    healthy.still_fine(&runtime, "huge states");
}

#[test]
fn a_bulk_fill_pays_for_every_byte() {
    // One `memory.fill` of 48 MiB is a single instruction, but costs one
    // unit of fuel per byte, charged before it writes anything: it cannot
    // outrun a budget of 20 million.
    let runtime = runtime_with(Limits {
        fuel: Fuel {
            scheduler: 20_000_000,
            ..Fuel::default()
        },
        ..limits()
    });
    let (result, _) = call_fixture_with(&runtime, fixtures::HUGE_STATE, &format!("fill:{}", 48 << 20));
    assert_eq!(result, Err(PluginFailure::OutOfFuel { budget: 20_000_000 }));
    // A small fill is an ordinary answer.
    let (result, _) = call_fixture_with(&runtime, fixtures::HUGE_STATE, "fill:64");
    assert_eq!(result, Ok(()));
}

#[test]
fn oversized_releases_and_refusals_are_refused_before_they_are_copied() {
    let runtime = runtime();
    let healthy = Healthy::new(&runtime);
    // 300,000 indices are 1.2 MB, over what 3 free slots and a state allow.
    let (result, _) = call_fixture_with(&runtime, fixtures::HUGE_STATE, "release:300000");
    let message = bad_output(result);
    assert!(message.contains("refused before anything was copied"), "{message}");
    assert!(message.contains("3 released indices"), "{message}");
    // A few too many is caught by the contract check.
    let (result, _) = call_fixture_with(&runtime, fixtures::HUGE_STATE, "release:4");
    assert!(bad_output(result).contains("only 3 slots were free"));

    let (result, _) = call_fixture_with(&runtime, fixtures::HUGE_STATE, &format!("refuse:{}", 10 << 20));
    assert!(bad_output(result).contains("refused before anything was copied"));
    // A long refusal that fits is cut to what is kept of a message.
    let (result, _) = call_fixture_with(&runtime, fixtures::HUGE_STATE, "refuse:10000");
    match result {
        Err(PluginFailure::Refused(message)) => assert_eq!(message.len(), MAX_MESSAGE_BYTES),
        other => panic!("expected a refusal, got {other:?}"),
    }
    healthy.still_fine(&runtime, "huge answers");
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
