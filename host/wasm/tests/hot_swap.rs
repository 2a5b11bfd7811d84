//! Live replacement and fallback: `PluginCell` swaps versions atomically
//! while calls run, and a failing version falls back to the last good one,
//! then to the built-in.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Backlog, Rng, runtime, runtime_with, scheduler};
use pop_builtin_plugins::{builtin, fixtures};
use pop_core::scheduling::{ScheduleOutput, fifo};
use pop_wasm::{AnsweredBy, CompiledPlugin, InstanceFor, Limits, PluginCell, PluginFailure, Runtime};

const FIRST: &[u8] = b"first-pending";
const LAST: &[u8] = b"last-pending";

#[test]
fn swapping_under_load_loses_no_call_and_takes_effect_at_once() {
    // Three callers and a Cranelift compile share two cores (and CI runs
    // other tests beside): a caller can wait for a core for a long time.
    // This test is about the swap, so the wall-clock backstop (here 20 s)
    // is far out of reach.
    let runtime = Arc::new(runtime_with(Limits {
        deadline: Duration::from_secs(2),
        ..Limits::default()
    }));
    let cell = Arc::new(PluginCell::new());
    cell.activate(scheduler(&runtime, fixtures::FIRST_PENDING));
    // Swaps: 0 (first-pending active), 1 (last-pending), 2 (rolled back to
    // first-pending). `completed` is bumped after an activation returns,
    // `begun` before it starts: a call may see a swap as soon as it began.
    let completed = Arc::new(AtomicUsize::new(0));
    let begun = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let backlog = Arc::new(Backlog::random(&mut Rng::new(9), 5, 40));

    let callers: Vec<_> = (0..3)
        .map(|_| {
            let (runtime, cell, completed, begun, stop, failures, backlog) = (
                Arc::clone(&runtime),
                Arc::clone(&cell),
                Arc::clone(&completed),
                Arc::clone(&begun),
                Arc::clone(&stop),
                Arc::clone(&failures),
                Arc::clone(&backlog),
            );
            thread::spawn(move || {
                let mut answered = [0usize; 3];
                while !stop.load(Ordering::SeqCst) {
                    let swapped = completed.load(Ordering::SeqCst);
                    let input = backlog.input(1, "{}", &[]);
                    let answer = cell.call(
                        |plugin| runtime.schedule(plugin, InstanceFor::Tenant("acme"), &input),
                        ScheduleOutput::default,
                        &mut |plugin, failure| {
                            eprintln!("{plugin:?} failed: {failure}");
                            failures.fetch_add(1, Ordering::SeqCst);
                        },
                    );
                    assert!(
                        matches!(answer.by, AnsweredBy::Active(_)),
                        "call {swapped} skipped to {:?}",
                        answer.by
                    );
                    // The answer comes from a version active at some point
                    // between the call's start and end: never from one
                    // replaced before it started.
                    let returned = begun.load(Ordering::SeqCst);
                    let version = |phase: usize| match phase {
                        1 => (LAST, backlog.pending.len() as u32 - 1),
                        _ => (FIRST, 0),
                    };
                    let got = (answer.value.state.as_slice(), answer.value.release[0]);
                    assert!(
                        (swapped..=returned).any(|phase| version(phase) == got),
                        "a call started after swap {swapped} (returned after {returned}) was answered by {:?}",
                        String::from_utf8_lossy(got.0)
                    );
                    answered[swapped] += 1;
                }
                answered
            })
        })
        .collect();

    thread::sleep(Duration::from_millis(150));
    // Upload while serving: compile the new bytes, then swap.
    let upload = Instant::now();
    let last = scheduler(&runtime, fixtures::LAST_PENDING);
    let compiled = upload.elapsed();
    begun.store(1, Ordering::SeqCst);
    let first = cell.activate(last).expect("first-pending was active");
    completed.store(1, Ordering::SeqCst);
    let activated = upload.elapsed();
    thread::sleep(Duration::from_millis(150));
    // Roll back to the version we kept.
    begun.store(2, Ordering::SeqCst);
    cell.activate(first);
    completed.store(2, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(150));
    stop.store(true, Ordering::SeqCst);

    let mut totals = [0usize; 3];
    for caller in callers {
        let answered = caller.join().expect("no caller saw a wrong or skipped answer");
        (0..3).for_each(|i| totals[i] += answered[i]);
    }
    println!("calls per phase {totals:?}; upload compiled in {compiled:?}, active after {activated:?}");
    assert_eq!(failures.load(Ordering::SeqCst), 0, "no call failed");
    assert!(totals.iter().all(|&n| n > 0), "every phase served calls: {totals:?}");
}

/// Failures the sink saw, as (sha256 of the failing version, failure).
type Seen = Arc<Mutex<Vec<(String, PluginFailure)>>>;

fn sink(seen: &Seen) -> impl FnMut(&CompiledPlugin, &PluginFailure) + '_ {
    |plugin, failure| {
        seen.lock()
            .unwrap()
            .push((plugin.sha256().to_string(), failure.clone()))
    }
}

fn by(answer: &AnsweredBy) -> Option<&str> {
    answer.sha256()
}

#[test]
fn failures_fall_back_to_the_last_good_version_then_to_the_builtin() {
    // The spin is stopped by its instruction budget; the wall-clock
    // backstop (2 s) is out of reach of a descheduled normal call.
    let runtime = runtime_with(Limits {
        deadline: Duration::from_millis(200),
        ..Limits::default()
    });
    let backlog = Backlog::random(&mut Rng::new(11), 4, 30);
    let native = |config: &str| fifo(&backlog.input(2, config, &[])).unwrap();
    let call = |cell: &PluginCell, config: &str, seen: &Seen| {
        let input = backlog.input(2, config, &[]);
        cell.call(
            |plugin| runtime.schedule(plugin, InstanceFor::Tenant("acme"), &input),
            || native(config),
            &mut sink(seen),
        )
    };
    let seen: Seen = Arc::default();
    let cell = PluginCell::new();

    // Nothing active: the built-in answers and nothing failed.
    let answer = call(&cell, "{}", &seen);
    assert!(matches!(answer.by, AnsweredBy::Builtin));
    assert_eq!(answer.value, native("{}"));

    // A working version answers and becomes the last good one.
    let weighted = scheduler(&runtime, builtin("WeightedFair").unwrap().wasm);
    cell.activate(Arc::clone(&weighted));
    let answer = call(&cell, "{}", &seen);
    assert!(matches!(answer.by, AnsweredBy::Active(_)));
    assert_eq!(by(&answer.by), Some(weighted.sha256()));
    assert_eq!(
        cell.last_good().map(|p| p.sha256().to_string()).as_deref(),
        Some(weighted.sha256())
    );

    // A broken upload: the last good version answers, the failure is seen.
    let trap = scheduler(&runtime, fixtures::TRAP);
    cell.activate(Arc::clone(&trap));
    let answer = call(&cell, "{}", &seen);
    assert!(matches!(answer.by, AnsweredBy::LastGood(_)));
    assert_eq!(by(&answer.by), Some(weighted.sha256()));
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, trap.sha256());
        assert!(matches!(seen[0].1, PluginFailure::Trap(_)));
    }

    // Both fail (the last good one refuses this config): the built-in
    // answers, and both failures are reported, active first.
    seen.lock().unwrap().clear();
    let bad_config = r#"{"weights":{"customer-000":-1}}"#;
    let answer = call(&cell, bad_config, &seen);
    assert!(matches!(answer.by, AnsweredBy::Builtin));
    assert_eq!(answer.value, native(bad_config));
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].0, trap.sha256());
        assert_eq!(seen[1].0, weighted.sha256());
        assert!(matches!(&seen[1].1, PluginFailure::Refused(m) if m.contains("weights must be positive")));
    }

    // A version that never succeeded and no last good: straight to the
    // built-in, one failure.
    seen.lock().unwrap().clear();
    let fresh = PluginCell::new();
    fresh.activate(scheduler(&runtime, fixtures::SPIN));
    let answer = call(&fresh, "{}", &seen);
    assert!(matches!(answer.by, AnsweredBy::Builtin));
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(
        seen.lock().unwrap()[0].1,
        PluginFailure::OutOfFuel {
            budget: runtime.limits().fuel.scheduler
        }
    );

    // The active version is the last good one and fails on this input: it
    // is not tried twice.
    seen.lock().unwrap().clear();
    cell.activate(Arc::clone(&weighted));
    let answer = call(&cell, bad_config, &seen);
    assert!(matches!(answer.by, AnsweredBy::Builtin));
    assert_eq!(seen.lock().unwrap().len(), 1);

    // Deactivating forgets the plugin entirely.
    cell.deactivate();
    assert!(cell.active().is_none() && cell.last_good().is_none());
    assert!(matches!(call(&cell, "{}", &seen).by, AnsweredBy::Builtin));
}

#[test]
fn a_swap_does_not_disturb_calls_in_flight() {
    // A call holds the version it started with even if the cell moves on.
    let runtime: Runtime = runtime();
    let cell = PluginCell::new();
    let first = scheduler(&runtime, fixtures::FIRST_PENDING);
    cell.activate(Arc::clone(&first));
    let backlog = Backlog::random(&mut Rng::new(12), 3, 9);
    let input = backlog.input(1, "{}", &[]);
    let answer = cell.call(
        |plugin| {
            // The swap lands while this version is running.
            cell.activate(scheduler(&runtime, fixtures::LAST_PENDING));
            runtime.schedule(plugin, InstanceFor::Tenant("acme"), &input)
        },
        ScheduleOutput::default,
        &mut |_, failure| panic!("{failure}"),
    );
    assert_eq!(answer.value.state, FIRST);
    assert_eq!(by(&answer.by), Some(first.sha256()));
    let next = cell.call(
        |plugin| runtime.schedule(plugin, InstanceFor::Tenant("acme"), &input),
        ScheduleOutput::default,
        &mut |_, f| panic!("{f}"),
    );
    assert_eq!(next.value.state, LAST);
}
