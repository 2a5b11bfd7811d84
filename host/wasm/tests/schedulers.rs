//! Each built-in scheduler gives, through WebAssembly, exactly the decision
//! (and the state) of the native pop-core function it is compiled from.

mod common;

use std::time::{Duration, Instant};

use common::{Backlog, Rng, runtime_with};

use pop_builtin_plugins::fixtures;
use pop_core::scheduling::{Algorithm, ScheduleInput};
use pop_wasm::{CompiledPlugin, Contract, InstanceFor, Limits, PluginFailure, PluginKind, Runtime};

/// These tests are about equal answers, not deadlines: a debug build on a
/// loaded two-core CI machine may take longer than 20 ms for 10,000
/// agendas, so the deadline is generous here (containment.rs tests it).
fn runtime() -> Runtime {
    runtime_with(Limits {
        deadline: Duration::from_secs(10),
        ..Limits::default()
    })
}

/// Configurations each algorithm is tried with, valid and invalid.
fn configs(algorithm: Algorithm) -> &'static [&'static str] {
    match algorithm {
        Algorithm::FirstInFirstOut | Algorithm::RoundRobin => &["{}", ""],
        Algorithm::Priority => &["{}", r#"{"agingMs":0}"#, r#"{"agingMs":1000}"#, r#"{"agingMs":"soon"}"#],
        Algorithm::WeightedFair => &[
            "{}",
            r#"{"weights":{"customer-000":4,"customer-001":0.5,"customer-007":2},"defaultWeight":1}"#,
            r#"{"weights":{"customer-000":-1}}"#,
        ],
    }
}

/// Run one decision natively and through the plugin; they must agree.
/// Returns the state both produced, for the next decision.
fn agree(runtime: &Runtime, plugin: &CompiledPlugin, algorithm: Algorithm, input: &ScheduleInput<'_>) -> Vec<u8> {
    let native = algorithm.schedule(input);
    let wasm = runtime.schedule(plugin, InstanceFor::Tenant("acme"), input);
    match (native, wasm) {
        (Ok(native), Ok(wasm)) => {
            assert_eq!(
                native,
                wasm,
                "{} disagrees on {} pending",
                algorithm.name(),
                input.pending.len()
            );
            native.state
        }
        (Err(native), Err(PluginFailure::Refused(message))) => {
            assert_eq!(native.to_string(), message, "{} refuses differently", algorithm.name());
            Vec::new()
        }
        (native, wasm) => panic!("{}: native {native:?}, wasm {wasm:?}", algorithm.name()),
    }
}

/// A few decisions in a row over the same backlog, each fed the previous
/// state, the way the host persists it.
fn chain(runtime: &Runtime, plugin: &CompiledPlugin, algorithm: Algorithm, backlog: &Backlog, slots: &[u32]) {
    for &config in configs(algorithm) {
        let mut state = Vec::new();
        for &free_slots in slots {
            state = agree(runtime, plugin, algorithm, &backlog.input(free_slots, config, &state));
        }
    }
}

#[test]
fn builtin_schedulers_match_pop_core_on_random_backlogs() {
    let runtime = runtime();
    let mut rng = Rng::new(7);
    for algorithm in Algorithm::ALL {
        let plugin = common::builtin(&runtime, algorithm.name());
        for _ in 0..40 {
            let customers = 1 + rng.below(30) as usize;
            let pending = rng.below(400) as usize;
            let backlog = Backlog::random(&mut rng, customers, pending);
            let slots: Vec<u32> = (0..3).map(|_| rng.below(25) as u32).collect();
            chain(&runtime, &plugin, algorithm, &backlog, &slots);
        }
        // Nobody waiting, and nobody at all.
        chain(&runtime, &plugin, algorithm, &Backlog::random(&mut rng, 5, 0), &[3]);
        chain(&runtime, &plugin, algorithm, &Backlog::random(&mut rng, 0, 0), &[3]);
    }
}

#[test]
fn builtin_schedulers_match_pop_core_on_10000_pending_from_100_customers() {
    let runtime = runtime();
    let mut rng = Rng::new(10_000);
    let backlog = Backlog::random(&mut rng, 100, 10_000);
    for algorithm in Algorithm::ALL {
        let plugin = common::builtin(&runtime, algorithm.name());
        let start = Instant::now();
        chain(&runtime, &plugin, algorithm, &backlog, &[10, 0, 1, 100, 10, 10_000]);
        let decisions = configs(algorithm).len() * 6;
        println!(
            "{}: {:?} per native + wasm decision",
            algorithm.name(),
            start.elapsed() / decisions as u32
        );
    }
}

#[test]
fn damaged_state_is_refused_like_the_native_path() {
    let runtime = runtime();
    let backlog = Backlog::random(&mut Rng::new(3), 4, 20);
    for algorithm in [Algorithm::RoundRobin, Algorithm::WeightedFair] {
        let plugin = common::builtin(&runtime, algorithm.name());
        let input = backlog.input(3, "{}", b"not json");
        assert!(algorithm.schedule(&input).is_err());
        agree(&runtime, &plugin, algorithm, &input);
    }
}

#[test]
fn a_scheduler_built_against_contract_0_1_is_still_served() {
    let runtime = runtime();
    let legacy = runtime
        .compile(PluginKind::Scheduler, fixtures::LEGACY_ROUND_ROBIN)
        .expect("a 0.1.0 scheduler compiles");
    assert_eq!(legacy.contract(), Contract::V0_1);
    for algorithm in Algorithm::ALL {
        assert_eq!(
            common::builtin(&runtime, algorithm.name()).contract(),
            Contract::V0_2,
            "{} is built against the current contract",
            algorithm.name()
        );
    }
    // Same decisions and state as the native round-robin, ids and all: the
    // host lowers its customer ids as 0.1.0's `list<string>` for this one.
    let mut rng = Rng::new(11);
    for (customers, pending) in [(1, 0), (3, 40), (30, 400), (100, 10_000)] {
        let backlog = Backlog::random(&mut rng, customers, pending);
        chain(&runtime, &legacy, Algorithm::RoundRobin, &backlog, &[10, 0, 1, 100]);
    }
}
