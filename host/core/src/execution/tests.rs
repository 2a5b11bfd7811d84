//! Table-driven tests of the plan, driven the way the executor will drive it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::model::{Agenda, DiagnosticEvent, Operation, OperationProgress, ProcessingState};

fn agenda(ops: Value) -> Agenda {
    Agenda {
        operations: Some(serde_json::from_value(ops).expect("operations")),
        ..Default::default()
    }
}

fn op(name: &str, payload: Value) -> Operation {
    Operation {
        name: Some(name.into()),
        payload: Some(payload),
        ..Default::default()
    }
}

fn event(message: &str) -> DiagnosticEvent {
    DiagnosticEvent {
        message: Some(message.into()),
        ..Default::default()
    }
}

fn progress(name: &str, state: ProcessingState, message: &str, result: Option<&str>) -> OperationProgress {
    OperationProgress {
        operation: Some(name.into()),
        processing_state: Some(state),
        processing_state_message: Some(message.into()),
        result_payload: result.map(String::from),
        ..Default::default()
    }
}

/// What a fake handler does: echo `{"from": name, "in": payload}`, or fail
/// the operations named in `failing`.
fn echo(failing: &'static [&'static str]) -> impl Fn(&ReadyOperation) -> Result<Value, String> {
    move |r| {
        if failing.contains(&r.name.as_str()) {
            Err(format!("{} failed", r.name))
        } else {
            Ok(json!({"from": r.name, "in": r.payload}))
        }
    }
}

struct Run {
    /// Names made ready by each `ready()` call, sorted.
    batches: Vec<Vec<String>>,
    payloads: BTreeMap<String, Value>,
    outcome: Outcome,
    plan: ExecutionPlan,
}

/// The executor's loop, synchronously: every ready operation runs to its end
/// before the next `ready()`.
fn drive(mut plan: ExecutionPlan, handler: impl Fn(&ReadyOperation) -> Result<Value, String>) -> Run {
    let mut batches = Vec::new();
    let mut payloads = BTreeMap::new();
    loop {
        let ready = plan.ready();
        if ready.is_empty() {
            break;
        }
        let mut names: Vec<String> = ready.iter().map(|r| r.name.clone()).collect();
        names.sort();
        batches.push(names);
        for r in ready {
            payloads.insert(r.name.clone(), r.payload.clone());
            match handler(&r) {
                Ok(out) => {
                    plan.complete(&r.name, out).expect("complete");
                }
                Err(msg) => plan.fail(&r.name, event(&msg)).expect("fail"),
            }
        }
    }
    Run {
        batches,
        payloads,
        outcome: plan.outcome(),
        plan,
    }
}

fn names(batches: &[&[&str]]) -> Vec<Vec<String>> {
    batches
        .iter()
        .map(|b| b.iter().map(|s| s.to_string()).collect())
        .collect()
}

fn messages(outcome: &Outcome) -> Vec<String> {
    match outcome {
        Outcome::Failed { diagnostics } => diagnostics.iter().filter_map(|d| d.message.clone()).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn dags_run_in_dependency_order_with_values_flowing() {
    // (case, operations, batches, expected resolved payloads)
    type Case = (&'static str, Value, &'static [&'static [&'static str]], Value);
    let cases: Vec<Case> = vec![
        (
            "fan-out / fan-in",
            json!([
                {"name": "d", "payload": {"joined": "@<b.out::/in/v>-@<c.out::/in/v>", "whole": "@<c.out::/in>"}},
                {"name": "a", "payload": {"x": 7, "me": "@<pop.operationName>", "agenda": "@<pop.agendaId>"}},
                {"name": "b", "payload": {"v": "@<a.out::/in/x>"}},
                {"name": "c", "payload": {"v": "c@<a.out::/in/me>", "n": "@<a.out::/missing?def>"}}
            ]),
            &[&["a"], &["b", "c"], &["d"]],
            json!({
                "a": {"x": 7, "me": "a", "agenda": "ag-1"},
                "b": {"v": 7},
                "c": {"v": "ca", "n": "def"},
                "d": {"joined": "7-ca", "whole": {"v": "ca", "n": "def"}}
            }),
        ),
        (
            "dependsOn without references, string and array forms",
            json!([
                {"name": "second", "payload": "p2", "params": {"dependsOn": "first"}},
                {"name": "third", "payload": "p3", "params": {"dependsOn": ["first", " second "]}},
                {"name": "first", "payload": "p1"}
            ]),
            &[&["first"], &["second"], &["third"]],
            json!({"first": "p1", "second": "p2", "third": "p3"}),
        ),
        (
            "no payload and independent operations",
            json!([{"name": "x"}, {"name": "y", "payload": {"k": [1, "@<pop.operationName>"]}}]),
            &[&["x", "y"]],
            json!({"x": null, "y": {"k": [1, "y"]}}),
        ),
    ];
    for (case, ops, batches, payloads) in cases {
        let plan = ExecutionPlan::new(&agenda(ops), &[], "ag-1").expect(case);
        let run = drive(plan, echo(&[]));
        assert_eq!(run.outcome, Outcome::Succeeded, "{case}");
        assert_eq!(run.batches, names(batches), "{case}");
        let expected: BTreeMap<String, Value> = serde_json::from_value(payloads).unwrap();
        assert_eq!(run.payloads, expected, "{case}");
        assert_eq!(run.plan.percent_complete(), 100.0, "{case}");
    }
}

#[test]
fn failures_stop_new_work_and_fail_the_agenda() {
    // (case, operations, failing handlers, batches, diagnostics, never ran)
    type Case = (
        &'static str,
        Value,
        &'static [&'static str],
        &'static [&'static [&'static str]],
        &'static [&'static str],
        &'static [&'static str],
    );
    let cases: Vec<Case> = vec![
        (
            "fail fast: the sibling finishes, dependants never start",
            json!([
                {"name": "a", "payload": 1},
                {"name": "b", "payload": 2},
                {"name": "c", "payload": "@<a.out>"},
                {"name": "d", "payload": "@<b.out>"}
            ]),
            &["a"],
            &[&["a", "b"]],
            &["a failed"],
            &["c", "d"],
        ),
        (
            "reference to an operation that failed",
            json!([{"name": "a"}, {"name": "b", "payload": "@<a.out::/x>"}]),
            &["a"],
            &[&["a"]],
            &["a failed"],
            &["b"],
        ),
        (
            "invalid reference",
            json!([{"name": "a"}, {"name": "b", "payload": {"v": "@<a.out::/nothere>", "w": "@<a.out::from>"}}]),
            &[],
            &[&["a"]],
            &["Operation b has invalid references: @<a.out::/nothere>"],
            &["b"],
        ),
        (
            "object inside a composite string is invalid",
            json!([{"name": "a"}, {"name": "b", "payload": "x@<a.out>"}]),
            &[],
            &[&["a"]],
            &["Operation b has invalid references: @<a.out>"],
            &["b"],
        ),
        (
            "dependency complete but the reference lacks .out",
            json!([{"name": "a"}, {"name": "b", "payload": "@<a::/from>"}]),
            &[],
            &[&["a"]],
            &[PENDING_REFERENCES],
            &["b"],
        ),
        (
            "an unresolved template token is a pending reference, not a deadlock",
            json!([{"name": "a", "payload": "@<pop.payload::/missing>"}]),
            &[],
            &[],
            &[PENDING_REFERENCES],
            &["a"],
        ),
        (
            "one bad candidate keeps its ready siblings from starting",
            json!([{"name": "a", "payload": "@<pop.agendaId::/x>"}, {"name": "b"}]),
            &[],
            &[],
            &["Operation a has invalid references: @<pop.agendaId::/x>"],
            &["a", "b"],
        ),
        (
            "deadlock: dependsOn an unknown operation",
            json!([{"name": "a"}, {"name": "b", "params": {"dependsOn": "ghost,a"}}, {"name": "c", "payload": "@<b.out>"}]),
            &[],
            &[&["a"]],
            &[
                "DEADLOCK: no operation is running or ready, but 2 operation(s) are pending: b waits for [ghost]; c waits for [b];",
            ],
            &["b", "c"],
        ),
        (
            "deadlock: a reference to an undeclared operation",
            json!([{"name": "a", "payload": "@<nobody.out::/x>"}]),
            &[],
            &[],
            &["DEADLOCK: no operation is running or ready, but 1 operation(s) are pending: a waits for [nobody];"],
            &["a"],
        ),
        (
            "deadlock: self reference",
            json!([{"name": "a", "payload": "@<a.out>"}]),
            &[],
            &[],
            &["DEADLOCK: no operation is running or ready, but 1 operation(s) are pending: a waits for [a];"],
            &["a"],
        ),
    ];
    for (case, ops, failing, batches, diagnostics, never) in cases {
        let plan = ExecutionPlan::new(&agenda(ops), &[], "ag").expect(case);
        let mut run = drive(plan, echo(failing));
        assert_eq!(run.batches, names(batches), "{case}");
        assert_eq!(messages(&run.outcome), diagnostics.to_vec(), "{case}");
        for name in never {
            assert!(!run.payloads.contains_key(*name), "{case}: {name} ran");
        }
        // Once failed, it stays failed and nothing else ever becomes ready.
        assert!(run.plan.ready().is_empty(), "{case}");
        assert!(run.plan.percent_complete() < 100.0, "{case}");
    }
}

#[test]
fn failure_waits_for_running_operations() {
    let ops = json!([{"name": "a"}, {"name": "b"}, {"name": "c", "params": {"dependsOn": "b"}}]);
    let mut plan = ExecutionPlan::new(&agenda(ops), &[], "ag").unwrap();
    assert_eq!(plan.ready().len(), 2);
    plan.fail("a", event("boom")).unwrap();
    assert_eq!(plan.outcome(), Outcome::Running, "b is still running");
    assert!(plan.ready().is_empty());
    plan.complete("b", json!({"ok": true})).unwrap();
    assert!(plan.ready().is_empty(), "c must not start after a failure");
    assert!(plan.is_halted());
    assert_eq!(plan.operation_names().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(messages(&plan.outcome()), ["boom"]);
    let c = plan.operation_progress("c").unwrap();
    assert_eq!(c.processing_state, Some(ProcessingState::Waiting));
    let a = plan.operation_progress("a").unwrap();
    assert_eq!(a.processing_state_message.as_deref(), Some("failed"));
    assert_eq!(a.diagnostic_events, Some(vec![event("boom")]));
    let b = plan.operation_progress("b").unwrap();
    assert_eq!(b.result_payload.as_deref(), Some(r#"{"ok":true}"#));
}

#[test]
fn resume_skips_prior_successes_and_feeds_their_outputs() {
    let ops = json!([
        {"name": "b", "payload": {"v": "@<a.out::/x>", "e": "@<e.out::/x?none>", "i": "@<i.out::/x?none>"}},
        {"name": "a"}, {"name": "e"}, {"name": "i"},
        {"name": "c", "payload": "@<b.out::/in/v>"},
        {"name": "f", "payload": 1}
    ]);
    let prior = vec![
        progress("a", ProcessingState::Complete, "SUCCEEDED", Some(r#"{"x": 42}"#)),
        progress("e", ProcessingState::Complete, "succeeded", None),
        progress("i", ProcessingState::Complete, "succeeded", Some("not json")),
        progress("f", ProcessingState::Complete, "failed", Some("{}")),
        progress("c", ProcessingState::Waiting, "pending", None),
        progress("stale", ProcessingState::Complete, "succeeded", Some("{}")),
    ];
    let mut plan = ExecutionPlan::new(&agenda(ops), &prior, "ag").unwrap();
    assert_eq!(plan.percent_complete(), 50.0, "3 of 6 already done");
    let first = plan.ready();
    let by_name: BTreeMap<_, _> = first.iter().map(|r| (r.name.as_str(), r)).collect();
    assert_eq!(by_name.keys().copied().collect::<Vec<_>>(), ["b", "f"]);
    assert_eq!(by_name["b"].payload, json!({"v": 42, "e": "none", "i": "none"}));
    assert_eq!(by_name["b"].last_progress, None);
    // The failed attempt is handed back to the handler as LAST_PROGRESS.
    assert_eq!(by_name["f"].last_progress.as_ref(), Some(&prior[3]));
    assert_eq!(
        plan.operation_progress("a").unwrap().result_payload.as_deref(),
        Some(r#"{"x":42}"#)
    );
    let run = drive_rest(plan, first);
    assert_eq!(run.outcome, Outcome::Succeeded);
    assert_eq!(run.payloads["c"], json!(42));
    assert!(!run.payloads.contains_key("a"));
}

/// Completes the given running operations, then drives the rest.
fn drive_rest(mut plan: ExecutionPlan, running: Vec<ReadyOperation>) -> Run {
    let handler = echo(&[]);
    for r in running {
        plan.complete(&r.name, handler(&r).unwrap()).unwrap();
    }
    drive(plan, handler)
}

#[test]
fn generators_append_operations() {
    let generator = json!({"operationsJsonPointer": "/ops", "paramsJsonPointer": "/params", "logOnly": false});
    let gen_op = |settings: Value| {
        json!([
            {"name": "gen", "params": {"agenda.operation.generator": settings}},
            {"name": "after", "payload": "@<g2.out::/in>", "params": {"dependsOn": "gen"}}
        ])
    };
    let output = json!({
        "ops": [
            {"name": "g1", "payload": {"v": "@<gen.out::/params/v>"}},
            {"name": "g2", "payload": "@<g1.out::/in/v>"}
        ],
        "params": {"v": "hello"}
    });
    // (case, generator settings, expected outcome messages, batches)
    type Case = (&'static str, Value, Vec<String>, &'static [&'static [&'static str]]);
    let cases: Vec<Case> = vec![
        (
            "object settings",
            generator.clone(),
            vec![],
            &[&["gen"], &["g1"], &["g2"], &["after"]],
        ),
        (
            "settings as a JSON string",
            Value::String(generator.to_string()),
            vec![],
            &[&["gen"], &["g1"], &["g2"], &["after"]],
        ),
        (
            "log only: nothing added, the reference to g2 deadlocks",
            json!({"operationsJsonPointer": "/ops", "logOnly": "true"}),
            vec![
                "DEADLOCK: no operation is running or ready, but 1 operation(s) are pending: after waits for [g2];"
                    .into(),
            ],
            &[&["gen"]],
        ),
        (
            "operations missing from the output fail the generator",
            json!({"operationsJsonPointer": "/nothing"}),
            vec!["Operation generator gen produced no operations at /nothing".into()],
            &[&["gen"]],
        ),
    ];
    for (case, settings, diagnostics, batches) in cases {
        let plan = ExecutionPlan::new(&agenda(gen_op(settings)), &[], "ag").unwrap();
        let run = drive(plan, |r| {
            Ok(if r.name == "gen" {
                output.clone()
            } else {
                json!({"in": r.payload})
            })
        });
        assert_eq!(messages(&run.outcome), diagnostics, "{case}");
        assert_eq!(run.batches, names(batches), "{case}");
        if diagnostics.is_empty() {
            assert_eq!(run.outcome, Outcome::Succeeded, "{case}");
            assert_eq!(run.payloads["g1"], json!({"v": "hello"}), "{case}");
            assert_eq!(run.payloads["after"], json!("hello"), "{case}");
            assert_eq!(run.plan.operation_count(), 4, "{case}");
            let g1 = &run.plan.node("g1").unwrap().op;
            let parent = g1.params.as_ref().unwrap().get("generatedOperationParent");
            assert_eq!(parent, Some(&json!("gen")), "{case}");
        }
    }
}

#[test]
fn generated_duplicates_fail_the_generator() {
    let ops = json!([{"name": "gen", "params": {"agenda.operation.generator": {"operationsJsonPointer": "/ops"}}}]);
    let mut plan = ExecutionPlan::new(&agenda(ops), &[], "ag").unwrap();
    plan.ready();
    let added = plan.complete("gen", json!({"ops": [{"name": "gen"}]})).unwrap();
    assert!(added.is_empty());
    assert_eq!(messages(&plan.outcome()), ["Operation name [gen] is duplicated."]);
}

#[test]
fn add_operations_checks_names_and_wires_dependencies() {
    let mut plan = ExecutionPlan::new(&agenda(json!([{"name": "a"}])), &[], "ag").unwrap();
    let cases: Vec<(Vec<Operation>, ExecutionError)> = vec![
        (vec![op("a", json!(1))], ExecutionError::DuplicateOperation("a".into())),
        (
            vec![op("n", json!(1)), op("n", json!(2))],
            ExecutionError::DuplicateOperation("n".into()),
        ),
        (
            vec![op("ok", json!(1)), Operation::default()],
            ExecutionError::UnnamedOperation(1),
        ),
    ];
    for (ops, err) in cases {
        assert_eq!(plan.add_operations(ops), Err(err));
    }
    assert_eq!(plan.operation_count(), 1, "rejected batches add nothing");
    assert_eq!(plan.ready().len(), 1);
    // Added while `a` runs, waiting on it, then on an operation added later.
    plan.add_operations(vec![op("b", json!("@<a.out::/v>")), op("c", json!("@<late.out>"))])
        .unwrap();
    assert!(plan.ready().is_empty());
    plan.complete("a", json!({"v": 5})).unwrap();
    let ready = plan.ready();
    assert_eq!((ready[0].name.as_str(), &ready[0].payload), ("b", &json!(5)));
    plan.add_operations(vec![op("late", json!("l"))]).unwrap();
    plan.complete("b", Value::Null).unwrap();
    assert_eq!(plan.ready()[0].name, "late");
    plan.complete("late", Value::Null).unwrap();
    assert_eq!(plan.ready()[0].payload, json!({}), "null output reads as {{}}");
    plan.complete("c", json!(1)).unwrap();
    assert_eq!(plan.outcome(), Outcome::Succeeded);
}

#[test]
fn construction_and_event_errors() {
    let cases: Vec<(Value, ExecutionError)> = vec![
        (json!([]), ExecutionError::NoOperations),
        (
            json!([{"name": "a"}, {"payload": 1}]),
            ExecutionError::UnnamedOperation(1),
        ),
        (
            json!([{"name": "a"}, {"name": "a"}]),
            ExecutionError::DuplicateOperation("a".into()),
        ),
    ];
    for (ops, err) in cases {
        assert_eq!(ExecutionPlan::new(&agenda(ops), &[], "ag").err(), Some(err));
    }
    assert_eq!(
        ExecutionPlan::new(&Agenda::default(), &[], "ag").err(),
        Some(ExecutionError::NoOperations)
    );
    let mut plan = ExecutionPlan::new(&agenda(json!([{"name": "a"}])), &[], "ag").unwrap();
    assert_eq!(
        plan.complete("a", json!(1)),
        Err(ExecutionError::NotRunning("a".into()))
    );
    assert_eq!(
        plan.fail("zz", event("x")),
        Err(ExecutionError::UnknownOperation("zz".into()))
    );
    assert_eq!(plan.operation_progress("zz"), None);
}

#[test]
fn percent_rolls_up_running_and_ignores_failed() {
    let ops = json!([{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]);
    let mut plan = ExecutionPlan::new(&agenda(ops), &[], "ag").unwrap();
    assert_eq!(plan.percent_complete(), 0.0);
    assert_eq!(plan.ready().len(), 4);
    // (event, percent after it)
    let steps: Vec<(&str, f64)> = vec![
        ("report b 50", 12.5),
        ("report c 250", 37.5),
        ("complete a", 62.5),
        ("fail d", 62.5),
        ("fail b", 50.0),
        ("complete c", 50.0),
    ];
    for (step, expected) in steps {
        let parts: Vec<&str> = step.split(' ').collect();
        match parts[..] {
            ["report", name, pct] => assert!(plan.report_percent(name, pct.parse().unwrap())),
            ["complete", name] => {
                plan.complete(name, json!({})).unwrap();
            }
            ["fail", name] => plan.fail(name, event("x")).unwrap(),
            _ => unreachable!(),
        }
        assert_eq!(plan.percent_complete(), expected, "{step}");
    }
    assert!(!plan.report_percent("a", 10.0), "not running any more");
    let c = plan.operation_progress("c").unwrap();
    assert_eq!(c.percent_complete, Some(100.0));
}

/// Drive a large agenda to its end. How long it takes is measured by the
/// benchmarks (`pop bench`: a 10,000-operation agenda), not asserted here.
fn run_large(case: &str, ops: Vec<Operation>, check: impl Fn(&Run)) {
    let plan = ExecutionPlan::new(
        &Agenda {
            operations: Some(ops),
            ..Default::default()
        },
        &[],
        "ag",
    )
    .unwrap();
    let run = drive(plan, |r| Ok(json!({"v": r.payload})));
    assert_eq!(run.outcome, Outcome::Succeeded, "{case}");
    check(&run);
}

#[test]
fn ten_thousand_operation_chain_runs_to_the_end() {
    const N: usize = 10_000;
    let ops = (0..N)
        .map(|i| match i {
            // Each passes on a scalar: nesting outputs 10,000 deep would only
            // test serde_json's recursive drop.
            0 => op("op0", json!({"i": 0})),
            _ => op(
                &format!("op{i}"),
                json!({"prev": format!("@<op{}.out::/v/i>", i - 1), "i": i}),
            ),
        })
        .collect();
    run_large("chain", ops, |run| {
        assert_eq!(run.batches.len(), N);
        assert_eq!(run.payloads["op2"], json!({"prev": 1, "i": 2}));
    });
}

#[test]
fn ten_thousand_operation_fan_out_runs_to_the_end() {
    const N: usize = 10_000;
    let mut ops: Vec<Operation> = vec![op("root", json!({"seed": 3}))];
    ops.extend((0..N).map(|i| op(&format!("leaf{i}"), json!(format!("@<root.out::/v/seed>-{i}")))));
    ops.push(Operation {
        name: Some("sink".into()),
        params: serde_json::from_value(json!({"dependsOn": (0..N).map(|i| format!("leaf{i}")).collect::<Vec<_>>()}))
            .unwrap(),
        ..Default::default()
    });
    run_large("fan-out", ops, |run| {
        assert_eq!(run.batches.iter().map(Vec::len).collect::<Vec<_>>(), [1, N, 1]);
        assert_eq!(run.payloads["leaf9999"], json!("3-9999"));
    });
}

#[test]
fn a_bounded_driver_only_marks_running_what_it_launches() {
    let ops: Vec<Value> = (0..5)
        .map(|i| json!({"name": format!("op{i}"), "type": "t", "payload": {}}))
        .collect();
    let mut plan = ExecutionPlan::new(&agenda(Value::Array(ops)), &[], "a").unwrap();
    let first = plan.ready_up_to(2);
    assert_eq!(first.len(), 2);
    assert_eq!((plan.running_count(), plan.pending_count()), (2, 3));
    assert!(!plan.is_halted(), "candidates left over are no deadlock");
    // A failure halts the plan: the three never launched stay pending and
    // the outcome is decided as soon as the running one finishes.
    plan.fail(&first[0].name, event("boom")).unwrap();
    assert!(plan.ready_up_to(2).is_empty());
    assert_eq!(plan.outcome(), Outcome::Running);
    plan.complete(&first[1].name, json!({})).unwrap();
    assert!(matches!(plan.outcome(), Outcome::Failed { .. }));
    assert_eq!(plan.pending_count(), 3);
}

#[test]
fn bounded_readiness_keeps_agenda_order_across_calls() {
    let ops: Vec<Value> = (0..5)
        .map(|i| json!({"name": format!("op{i}"), "type": "t", "payload": {}}))
        .collect();
    let mut plan = ExecutionPlan::new(&agenda(Value::Array(ops)), &[], "a").unwrap();
    let mut order = Vec::new();
    loop {
        let batch = plan.ready_up_to(2);
        if batch.is_empty() {
            break;
        }
        for ready in batch {
            order.push(ready.name.clone());
            plan.complete(&ready.name, json!({})).unwrap();
        }
    }
    assert_eq!(order, ["op0", "op1", "op2", "op3", "op4"]);
    assert_eq!(plan.outcome(), Outcome::Succeeded);
}

/// After a restart the generator runs again although its operations were
/// already appended to the agenda: they are not added twice, and they run.
#[test]
fn a_generator_run_again_does_not_duplicate_its_operations() {
    let generated = json!([
        {"name": "g1", "payload": {"v": 1}, "params": {"generatedOperationParent": "gen"}}
    ]);
    let agenda = agenda(json!([
        {"name": "gen", "params": {"agenda.operation.generator": {"operationsJsonPointer": "/ops"}}},
        generated[0].clone()
    ]));
    // `gen` was running when the server died: it runs again.
    let prior = [progress("gen", ProcessingState::Executing, "executing", None)];
    let mut plan = ExecutionPlan::new(&agenda, &prior, "a").unwrap();
    let ready = plan.ready();
    assert_eq!(ready.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["gen", "g1"]);
    let added = plan
        .complete(
            "gen",
            json!({"ops": [{"name": "g1", "payload": {"v": 1}}, {"name": "g2"}]}),
        )
        .unwrap();
    assert_eq!(added, ["g2"], "only the operation it had not generated before");
    plan.complete("g1", json!({})).unwrap();
    let next = plan.ready();
    assert_eq!(next.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["g2"]);
    plan.complete("g2", json!({})).unwrap();
    assert_eq!(plan.outcome(), Outcome::Succeeded);
}
