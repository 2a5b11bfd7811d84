//! The instruction budget: what the built-ins use of it (deterministic, so
//! their margin is asserted exactly, not timed), and that a call's use of it
//! does not depend on the machine or on which instance it runs.

mod common;

use common::{Backlog, Rng, builtin, runtime};
use pop_builtin_plugins::fixtures;
use pop_core::scheduling::Algorithm;
use pop_core::visibility::ObjectPage;
use pop_wasm::convert::object_kind;
use pop_wasm::{CompiledPlugin, Fuel, InstanceFor, Limits, PluginKind, Runtime, types};

/// How many times over a built-in scheduler's decision over 10,000
/// pending agendas with 10 free slots must fit in the default budget.
const SCHEDULER_MARGIN: u64 = 100;
/// The same when it releases all 10,000 at once (the heaviest decision,
/// priority's sort).
const RELEASE_ALL_MARGIN: u64 = 10;
/// How many times the other built-ins' heavy calls (100 candidates, a page
/// of 10,000 objects) must fit in their worlds' budgets.
const MARGIN: u64 = 25;

/// Instructions one call of `f` executed.
fn used<T>(runtime: &Runtime, f: impl FnOnce() -> T) -> (T, u64) {
    let before = runtime.instructions_executed();
    let value = f();
    (value, runtime.instructions_executed() - before)
}

fn schedule_used(runtime: &Runtime, plugin: &CompiledPlugin, backlog: &Backlog, slots: u32, config: &str) -> u64 {
    // Steady state: the state a previous decision left (round-robin's
    // cursor, weighted-fair's virtual times).
    let first = runtime
        .schedule(plugin, InstanceFor::Tenant("acme"), &backlog.input(slots, config, &[]))
        .expect("decides");
    let (output, fuel) = used(runtime, || {
        runtime.schedule(
            plugin,
            InstanceFor::Tenant("acme"),
            &backlog.input(slots, config, &first.state),
        )
    });
    output.expect("decides");
    fuel
}

#[test]
fn builtin_schedulers_over_10000_pending_fit_their_budget_with_a_wide_margin() {
    let runtime = runtime();
    let budget = Fuel::default().scheduler;
    let backlog = Backlog::random(&mut Rng::new(10_000), 100, 10_000);
    let weights = r#"{"weights":{"customer-000":4,"customer-001":2,"customer-002":0.5},"defaultWeight":1}"#;
    let mut plugins: Vec<(String, std::sync::Arc<CompiledPlugin>, &str)> = Algorithm::ALL
        .iter()
        .map(|a| {
            let config = if *a == Algorithm::WeightedFair { weights } else { "{}" };
            (a.name().to_string(), builtin(&runtime, a.name()), config)
        })
        .collect();
    plugins.push((
        "legacy-round-robin (0.1.0)".into(),
        common::scheduler(&runtime, fixtures::LEGACY_ROUND_ROBIN),
        "{}",
    ));
    for (name, plugin, config) in &plugins {
        for slots in [10, 10_000] {
            let fuel = schedule_used(&runtime, plugin, &backlog, slots, config);
            println!("{name:<28} 10,000 pending, {slots:>6} free slots: {fuel:>10} instructions");
            let margin = if slots == 10 {
                SCHEDULER_MARGIN
            } else {
                RELEASE_ALL_MARGIN
            };
            assert!(
                fuel * margin <= budget,
                "{name} with {slots} free slots used {fuel} of its {budget} instructions"
            );
        }
    }
}

#[test]
fn the_builtin_matcher_policy_and_handler_fit_their_budgets_with_a_wide_margin() {
    let runtime = runtime();
    let budgets = Fuel::default();

    let mapper = builtin(&runtime, "pop-insight-mapper");
    let candidates: Vec<types::InsightSummary> = (0..100)
        .map(|i| types::InsightSummary {
            id: format!("insight-{i}"),
            title: format!("Queue {i}"),
            owner: "acme".into(),
            mappers: vec![types::Mapper {
                key: "operationType".into(),
                values: vec![format!("type-{i}"), format!("other-{i}")],
            }],
        })
        .collect();
    let agenda = types::AgendaSummary {
        customer_id: "acme".into(),
        params: vec![types::Param {
            key: "team".into(),
            value: "red".into(),
        }],
        operations: (0..50)
            .map(|i| types::OperationSummary {
                name: format!("op-{i}"),
                op_type: format!("type-{}", 99 - i % 3),
                params: Vec::new(),
            })
            .collect(),
    };
    let (choice, fuel) = used(&runtime, || {
        runtime.select_insight(&mapper, InstanceFor::Tenant("acme"), &agenda, &candidates)
    });
    assert!(choice.expect("selects").is_some());
    println!("pop-insight-mapper, 100 candidates x 50 operations: {fuel} instructions");
    assert!(fuel * MARGIN <= budgets.insight_matcher, "{fuel}");

    let policy = builtin(&runtime, "pop-visibility");
    let docs: Vec<serde_json::Map<String, serde_json::Value>> = (0..10_000)
        .map(|i| {
            let allowed: Vec<&str> = if i % 5 == 0 { vec!["globex"] } else { vec![] };
            let doc = serde_json::json!({"id": format!("agenda-{i:06}"), "customerId": "acme",
                "isGlobal": i % 7 == 0, "allowedCustomerIds": allowed});
            doc.as_object().unwrap().clone()
        })
        .collect();
    let caller = types::Caller {
        user_id: "u".into(),
        accounts: vec!["globex".into()],
        super_user: false,
    };
    let page = ObjectPage::from_documents(&docs);
    let kind = object_kind(pop_core::ObjectKind::Agenda).unwrap();
    let (decisions, fuel) = used(&runtime, || {
        runtime.decide_visibility_page(&policy, InstanceFor::Tenant("acme"), &caller, kind, &page)
    });
    assert_eq!(decisions.expect("decides").len(), 10_000);
    println!("pop-visibility, a page of 10,000 agendas: {fuel} instructions");
    assert!(fuel * MARGIN <= budgets.visibility_policy, "{fuel}");

    let sample = builtin(&runtime, "sample");
    let context = types::OperationContext {
        agenda_id: "a1".into(),
        operation_name: "op".into(),
        cid: "cid".into(),
        last_progress: None,
    };
    let payload = r#"{"actions": [{"action": "log", "paramsMap": {"logMessage": "hi"}}], "resultPayload": {"n": 1}}"#;
    let (result, fuel) = used(&runtime, || {
        runtime.run_handler(&sample, payload, &context, &mut |_, _| {})
    });
    result.expect("runs");
    println!("sample handler, one log action: {fuel} instructions");
    assert!(fuel * MARGIN <= budgets.handler, "{fuel}");
}

#[test]
fn a_call_uses_the_same_instructions_every_time_on_a_fresh_instance() {
    let runtime = runtime();
    let plugin = builtin(&runtime, "RoundRobin");
    let backlog = Backlog::random(&mut Rng::new(3), 20, 500);
    let input = backlog.input(7, "{}", &[]);
    let runs: Vec<u64> = (0..3)
        .map(|_| {
            used(&runtime, || {
                runtime.schedule(&plugin, InstanceFor::Fresh, &input).unwrap()
            })
            .1
        })
        .collect();
    assert!(runs[0] > 0, "fuel is counted");
    assert!(runs.iter().all(|&n| n == runs[0]), "{runs:?}");
}

#[test]
fn the_budget_bounds_a_call_the_same_way_on_any_instance() {
    // Measure one decision, then give runtimes that budget and half of it:
    // the first answers on a fresh instance and on a warm one call after
    // call (the budget is re-armed in full for each), the second runs out
    // every time. Fuel is a count, not a time: this holds at any load. (Not
    // to the instruction: wasmtime checks the count at function entries and
    // loop back-edges, so a call may finish a straight stretch past it.)
    let measure = runtime();
    let plugin = builtin(&measure, "WeightedFair");
    let backlog = Backlog::random(&mut Rng::new(4), 20, 2_000);
    let input = backlog.input(5, "{}", &[]);
    let (_, needed) = used(&measure, || {
        measure.schedule(&plugin, InstanceFor::Fresh, &input).unwrap()
    });
    let with_budget = |scheduler: u64| {
        let runtime = common::runtime_with(Limits {
            fuel: Fuel {
                scheduler,
                ..Fuel::default()
            },
            ..Limits::default()
        });
        let plugin = runtime
            .compile(PluginKind::Scheduler, plugin_wasm("WeightedFair"))
            .unwrap();
        (runtime, plugin)
    };
    let (enough, plugin) = with_budget(needed);
    for on in [
        InstanceFor::Fresh,
        InstanceFor::Tenant("acme"),
        InstanceFor::Tenant("acme"),
    ] {
        assert!(enough.schedule(&plugin, on, &input).is_ok(), "{on:?}");
    }
    let (short, plugin) = with_budget(needed / 2);
    for on in [
        InstanceFor::Fresh,
        InstanceFor::Tenant("acme"),
        InstanceFor::Tenant("acme"),
    ] {
        assert_eq!(
            short.schedule(&plugin, on, &input),
            Err(pop_wasm::PluginFailure::OutOfFuel { budget: needed / 2 }),
            "{on:?}"
        );
    }
}

fn plugin_wasm(name: &str) -> &'static [u8] {
    pop_builtin_plugins::builtin(name).unwrap().wasm
}

#[test]
fn a_decision_of_several_pages_is_counted_once() {
    // A 0.2.0 policy decides a list of two kinds in two calls within one
    // budget: what is counted is what those two calls executed, no more.
    let runtime = runtime();
    let policy = builtin(&runtime, "pop-visibility");
    let caller = types::Caller {
        user_id: "u".into(),
        accounts: vec!["globex".into()],
        super_user: false,
    };
    let objects = |kind: types::ObjectKind| -> Vec<types::ObjectSummary> {
        (0..200)
            .map(|i| types::ObjectSummary {
                kind,
                id: format!("object-{i}"),
                customer_id: "acme".into(),
                is_global: i % 3 == 0,
                allowed_customer_ids: vec!["globex".into()],
            })
            .collect()
    };
    let (agendas, insights) = (objects(types::ObjectKind::Agenda), objects(types::ObjectKind::Insight));
    let mixed: Vec<types::ObjectSummary> = agendas.iter().chain(&insights).cloned().collect();
    let decide = |objects: &[types::ObjectSummary]| {
        used(&runtime, || {
            runtime
                .decide_visibility(&policy, InstanceFor::Fresh, &caller, objects)
                .unwrap()
        })
        .1
    };
    let (a, b, both) = (decide(&agendas), decide(&insights), decide(&mixed));
    assert!(a > 0 && b > 0);
    assert!(both <= a + b, "two pages counted as {both}, one each as {a} and {b}");
}
