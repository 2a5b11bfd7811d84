//! Warm instances: reused for the same plugin version and tenant only,
//! dropped after any failure, and held to the same per-call limits as a
//! fresh instance.
//!
//! The `call-counter` fixture counts its calls in a static and returns the
//! count as its state, so the state says whether a call ran on an instance
//! that had served earlier calls ("2", "3", ...) or on a fresh one ("1").

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Backlog, Rng, runtime, runtime_with, scheduler};
use pop_builtin_plugins::fixtures;
use pop_wasm::{CompiledPlugin, InstanceFor, Limits, PluginFailure, Runtime};

/// Call the counter for `on` with `config`; the count it returns.
fn count(runtime: &Runtime, plugin: &CompiledPlugin, on: InstanceFor<'_>, config: &str) -> Result<u32, PluginFailure> {
    let backlog = Backlog::random(&mut Rng::new(7), 3, 20);
    let output = runtime.schedule(plugin, on, &backlog.input(2, config, &[]))?;
    assert!(output.release.is_empty());
    let text = String::from_utf8(output.state).expect("decimal state");
    Ok(text.parse().expect("a count"))
}

fn acme() -> InstanceFor<'static> {
    InstanceFor::Tenant("acme")
}

fn counter(runtime: &Runtime) -> Arc<CompiledPlugin> {
    scheduler(runtime, fixtures::CALL_COUNTER)
}

#[test]
fn a_tenants_calls_reuse_one_instance() {
    let runtime = runtime();
    let plugin = counter(&runtime);
    for expected in 1..=5 {
        assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(expected));
    }
    assert_eq!(runtime.warm_instances(), 1);
}

#[test]
fn fresh_calls_never_reuse_or_keep_an_instance() {
    let runtime = runtime();
    let plugin = counter(&runtime);
    for _ in 0..3 {
        assert_eq!(count(&runtime, &plugin, InstanceFor::Fresh, "{}"), Ok(1));
    }
    assert_eq!(runtime.warm_instances(), 0);
    // A fresh call does not take the tenant's warm instance either.
    assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(1));
    assert_eq!(count(&runtime, &plugin, InstanceFor::Fresh, "{}"), Ok(1));
    assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(2));
}

#[test]
fn tenants_of_a_global_plugin_never_share_an_instance() {
    let runtime = runtime();
    let plugin = counter(&runtime);
    let globex = InstanceFor::Tenant("globex");
    assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(1));
    assert_eq!(count(&runtime, &plugin, globex, "{}"), Ok(1));
    assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(2));
    assert_eq!(count(&runtime, &plugin, globex, "{}"), Ok(2));
    assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(3));
    // A tenant whose name extends another's is another tenant.
    assert_eq!(count(&runtime, &plugin, InstanceFor::Tenant("acme2"), "{}"), Ok(1));
    assert_eq!(runtime.warm_instances(), 3);
}

#[test]
fn a_new_version_gets_its_own_instance() {
    let runtime = runtime();
    let v1 = counter(&runtime);
    let v2 = scheduler(&runtime, &with_custom_section(fixtures::CALL_COUNTER));
    assert_ne!(v1.sha256(), v2.sha256());
    assert_eq!(count(&runtime, &v1, acme(), "{}"), Ok(1));
    assert_eq!(count(&runtime, &v1, acme(), "{}"), Ok(2));
    assert_eq!(count(&runtime, &v2, acme(), "{}"), Ok(1));
    assert_eq!(count(&runtime, &v1, acme(), "{}"), Ok(3));
}

#[test]
fn a_trap_drops_the_instance_and_the_next_call_runs_fresh() {
    let runtime = runtime();
    let plugin = counter(&runtime);
    assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(1));
    assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(2));
    assert!(matches!(
        count(&runtime, &plugin, acme(), "trap"),
        Err(PluginFailure::Trap(_))
    ));
    assert_eq!(runtime.warm_instances(), 0);
    assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(1));
}

#[test]
fn an_answer_that_breaks_the_contract_drops_the_instance() {
    // States up to one byte are kept: calls 1–9 pass, call 10 ("10") does not.
    let runtime = runtime_with(Limits {
        deadline: Duration::from_secs(2),
        max_state_bytes: 1,
        ..Limits::default()
    });
    let plugin = counter(&runtime);
    for expected in 1..=9 {
        assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(expected));
    }
    assert!(matches!(
        count(&runtime, &plugin, acme(), "{}"),
        Err(PluginFailure::BadOutput(_))
    ));
    assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(1));
}

#[test]
fn the_budget_holds_on_a_reused_instance() {
    let runtime = runtime();
    let plugin = counter(&runtime);
    // Calls that each use some of the budget: each call gets all of it
    // again, so they never add up to an exhausted one.
    for expected in 1..=20 {
        assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(expected));
    }
    let budget = runtime.limits().fuel.scheduler;
    assert_eq!(
        count(&runtime, &plugin, acme(), "spin"),
        Err(PluginFailure::OutOfFuel { budget })
    );
    assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(1));
}

#[test]
fn the_memory_cap_holds_on_a_reused_instance() {
    let runtime = runtime_with(Limits {
        deadline: Duration::from_secs(2),
        memory_bytes: 16 << 20,
        ..Limits::default()
    });
    let plugin = counter(&runtime);
    for expected in 1..=3 {
        assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(expected));
    }
    assert_eq!(
        count(&runtime, &plugin, acme(), "bomb"),
        Err(PluginFailure::OutOfMemory)
    );
    assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(1));
}

#[test]
fn an_instance_that_grew_big_is_not_kept_idle() {
    let runtime = runtime();
    let plugin = counter(&runtime);
    assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(1));
    assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(2));
    // 24 MiB is within the 64 MiB cap, so the call answers, but more than
    // an idle instance may hold.
    assert_eq!(count(&runtime, &plugin, acme(), "grow"), Ok(3));
    assert_eq!(runtime.warm_instances(), 0);
    assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(1));
}

#[test]
fn the_pool_is_bounded_and_drops_the_least_recently_used() {
    let runtime = runtime_with(Limits {
        deadline: Duration::from_secs(2),
        warm_instances: 2,
        ..Limits::default()
    });
    let plugin = counter(&runtime);
    let tenant = InstanceFor::Tenant;
    assert_eq!(count(&runtime, &plugin, tenant("a"), "{}"), Ok(1));
    assert_eq!(count(&runtime, &plugin, tenant("b"), "{}"), Ok(1));
    assert_eq!(count(&runtime, &plugin, tenant("a"), "{}"), Ok(2));
    // c makes room by dropping b, the least recently used.
    assert_eq!(count(&runtime, &plugin, tenant("c"), "{}"), Ok(1));
    assert_eq!(runtime.warm_instances(), 2);
    assert_eq!(count(&runtime, &plugin, tenant("a"), "{}"), Ok(3));
    assert_eq!(count(&runtime, &plugin, tenant("b"), "{}"), Ok(1));
}

#[test]
fn no_warm_instances_when_the_pool_is_off() {
    let runtime = runtime_with(Limits {
        deadline: Duration::from_secs(2),
        warm_instances: 0,
        ..Limits::default()
    });
    let plugin = counter(&runtime);
    for _ in 0..3 {
        assert_eq!(count(&runtime, &plugin, acme(), "{}"), Ok(1));
    }
    assert_eq!(runtime.warm_instances(), 0);
}

#[test]
fn concurrent_calls_of_one_tenant_each_get_an_instance() {
    let runtime = Arc::new(runtime());
    let plugin = counter(&runtime);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (runtime, plugin) = (Arc::clone(&runtime), Arc::clone(&plugin));
            std::thread::spawn(move || {
                (0..50)
                    .map(|_| count(&runtime, &plugin, acme(), "{}"))
                    .collect::<Result<Vec<u32>, _>>()
            })
        })
        .collect();
    let mut total = 0;
    for thread in threads {
        let counts = thread.join().expect("no panic").expect("every call answers");
        total += counts.len();
    }
    assert_eq!(total, 200);
    // At most one instance per key is kept, however many were in flight.
    assert_eq!(runtime.warm_instances(), 1);
}

/// The same component with another sha256: a custom section appended.
fn with_custom_section(wasm: &[u8]) -> Vec<u8> {
    let name = b"pop-test";
    let mut bytes = wasm.to_vec();
    bytes.extend_from_slice(&[0, (1 + name.len() + 1) as u8, name.len() as u8]);
    bytes.extend_from_slice(name);
    bytes.push(1);
    bytes
}
