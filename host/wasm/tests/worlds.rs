//! The insight-matcher, visibility-policy and handler worlds, with the
//! built-in and example components, against pop-core's native rules.

mod common;

use std::time::{Duration, Instant};

use common::{Rng, builtin, runtime, runtime_with};
use pop_builtin_plugins::{examples, fixtures};
use pop_core::visibility::{Caller, ObjectPage, Ownership, ReadRule, can_read};
use pop_core::{Agenda, Insight, ObjectKind};
use pop_wasm::convert::{agenda_summary, insight_summary, object_kind, object_summary};
use pop_wasm::{CompiledPlugin, Contract, InstanceFor, Limits, PluginFailure, PluginKind, Runtime, types};
use serde_json::{Value, json};

fn agenda(value: Value) -> Agenda {
    serde_json::from_value(value).unwrap()
}

fn insight(value: Value) -> Insight {
    serde_json::from_value(value).unwrap()
}

#[test]
fn the_builtin_insight_mapper_selects_like_pop_core() {
    let runtime = runtime();
    let mapper = builtin(&runtime, "pop-insight-mapper");
    let candidates = vec![
        insight(json!({"id": "i1", "title": "CPU", "customerId": "acme", "mappers": {"operationType": ["shell"]}})),
        insight(
            json!({"id": "i2", "title": "GPU", "customerId": "acme", "mappers": {"operationType": ["ml", "shell"]}}),
        ),
        insight(json!({"id": "i3", "title": "Tagged", "customerId": "acme", "mappers": {"paramMap": ["team=red"]}})),
        insight(json!({"id": "i4", "title": "Named", "customerId": "acme", "mappers": {"operationName": ["train"]}})),
    ];
    let agendas = [
        json!({"operations": [{"name": "a", "type": "shell"}]}),
        json!({"operations": [{"name": "a", "type": "ML"}]}),
        json!({"params": {"defaultInsight": "gpu"}, "operations": [{"name": "a", "type": "shell"}]}),
        json!({"params": {"team": "Red"}, "operations": [{"name": "a", "type": "none"}]}),
        json!({"operations": [{"name": "train", "type": "none"}]}),
        json!({"operations": [{"name": "nothing", "type": "matches"}]}),
    ];
    let summaries: Vec<types::InsightSummary> = candidates.iter().map(insight_summary).collect();
    for agenda_json in agendas {
        let agenda = agenda(agenda_json.clone());
        let native = pop_core::insight::select_insight(&agenda, "acme", &candidates)
            .map(|chosen| candidates.iter().position(|c| std::ptr::eq(c, chosen)).unwrap() as u32);
        let wasm = runtime
            .select_insight(
                &mapper,
                InstanceFor::Tenant("acme"),
                &agenda_summary(&agenda, "acme"),
                &summaries,
            )
            .unwrap();
        assert_eq!(wasm, native, "{agenda_json}");
    }
}

#[test]
fn the_example_matcher_picks_by_title() {
    let runtime = runtime();
    let by_title = runtime.compile(PluginKind::InsightMatcher, examples::BY_TITLE).unwrap();
    let candidates: Vec<types::InsightSummary> = ["CPU", "GPU"]
        .iter()
        .map(|title| insight_summary(&insight(json!({"id": title, "title": title, "customerId": "acme"}))))
        .collect();
    let wants = |queue: &str| agenda_summary(&agenda(json!({"params": {"queue": queue}})), "acme");
    assert_eq!(
        runtime.select_insight(&by_title, InstanceFor::Tenant("acme"), &wants("gpu"), &candidates),
        Ok(Some(1))
    );
    assert_eq!(
        runtime.select_insight(&by_title, InstanceFor::Tenant("acme"), &wants("tpu"), &candidates),
        Ok(None)
    );
    assert_eq!(
        runtime.select_insight(&by_title, InstanceFor::Tenant("acme"), &wants("cpu"), &[]),
        Ok(None)
    );
}

#[test]
fn the_builtin_visibility_policy_decides_like_pop_core() {
    let runtime = runtime();
    let policy = builtin(&runtime, "pop-visibility");
    assert_eq!(policy.contract(), Contract::V0_2);
    decides_like_pop_core(&runtime, &policy);
}

#[test]
fn a_visibility_policy_built_against_contract_0_1_is_still_served() {
    let runtime = runtime();
    let policy = runtime
        .compile(PluginKind::VisibilityPolicy, fixtures::LEGACY_VISIBILITY)
        .expect("a 0.1.0 visibility policy compiles");
    assert_eq!(policy.contract(), Contract::V0_1);
    decides_like_pop_core(&runtime, &policy);
}

/// Pages of mixed kinds, random owners, sharing and callers: the policy
/// (POP's rule) must answer as `pop_core::visibility::can_read`.
fn decides_like_pop_core(runtime: &Runtime, policy: &CompiledPlugin) {
    let mut rng = Rng::new(21);
    let names = ["acme", "Globex", "initech", "umbrella"];
    let kinds = [
        ObjectKind::Agenda,
        ObjectKind::AgendaTemplate,
        ObjectKind::Insight,
        ObjectKind::Customer,
    ];
    let pick = |rng: &mut Rng| names[rng.below(names.len() as u64) as usize].to_string();
    for _ in 0..30 {
        let accounts: Vec<String> = (0..rng.below(3)).map(|_| pick(&mut rng)).collect();
        let caller = Caller::new("user", accounts, rng.chance(10));
        let docs: Vec<(ObjectKind, serde_json::Map<String, Value>)> = (0..50)
            .map(|i| {
                let kind = kinds[rng.below(kinds.len() as u64) as usize];
                let allowed: Vec<String> = (0..rng.below(3)).map(|_| pick(&mut rng).to_lowercase()).collect();
                let doc = json!({"id": format!("o{i}"), "customerId": pick(&mut rng),
                                 "isGlobal": rng.chance(20), "allowedCustomerIds": allowed});
                (kind, doc.as_object().unwrap().clone())
            })
            .collect();
        let objects: Vec<types::ObjectSummary> = docs
            .iter()
            .map(|(kind, doc)| object_summary(*kind, doc).unwrap())
            .collect();
        let native: Vec<bool> = docs
            .iter()
            .map(|(kind, doc)| can_read(&caller, ReadRule::for_kind(*kind), Ownership::of(doc)))
            .collect();
        let wasm = runtime
            .decide_visibility(
                policy,
                InstanceFor::Tenant("acme"),
                &types::Caller::from(&caller),
                &objects,
            )
            .unwrap();
        assert_eq!(wasm, native, "{caller:?}");

        // The server's path: one page per kind, built from the documents.
        for kind in kinds {
            let of_kind: Vec<usize> = (0..docs.len()).filter(|&i| docs[i].0 == kind).collect();
            let page = ObjectPage::from_documents(of_kind.iter().map(|&i| &docs[i].1));
            let wasm = runtime
                .decide_visibility_page(
                    policy,
                    InstanceFor::Tenant("acme"),
                    &types::Caller::from(&caller),
                    object_kind(kind).unwrap(),
                    &page,
                )
                .unwrap();
            let native: Vec<bool> = of_kind.iter().map(|&i| native[i]).collect();
            assert_eq!(wasm, native, "{kind:?} page for {caller:?}");
        }
    }
}

#[test]
fn the_example_handler_reports_progress_and_answers() {
    let runtime = runtime();
    let handler = runtime.compile(PluginKind::Handler, examples::UPPERCASE).unwrap();
    let context = types::OperationContext {
        agenda_id: "a1".into(),
        operation_name: "shout".into(),
        cid: "cid-1".into(),
        last_progress: None,
    };
    let mut reports = Vec::new();
    let result = runtime.run_handler(
        &handler,
        r#"{"greeting":"hello","n":1}"#,
        &context,
        &mut |percent, message| reports.push((percent, message.to_string())),
    );
    assert_eq!(result.unwrap(), r#"{"greeting":"HELLO","n":1}"#);
    assert_eq!(
        reports,
        vec![(50.0, "payload parsed".to_string()), (100.0, "done".to_string())]
    );

    let refused = runtime.run_handler(&handler, "not json", &context, &mut |_, _| {});
    assert!(
        matches!(&refused, Err(PluginFailure::Refused(m)) if m.contains("not JSON")),
        "{refused:?}"
    );
}

#[test]
fn every_shipped_component_compiles_as_its_world() {
    let runtime = runtime();
    let all = pop_builtin_plugins::BUILTINS
        .iter()
        .chain(pop_builtin_plugins::examples::ALL)
        .chain(pop_builtin_plugins::fixtures::ALL);
    for component in all {
        let kind = PluginKind::from_world(component.kind).unwrap();
        let plugin = runtime
            .compile(kind, component.wasm)
            .unwrap_or_else(|e| panic!("{}: {e}", component.name));
        assert_eq!(plugin.kind(), kind);
    }
}

/// The sample handler of spec §5.6 as a component: sleeps for real through
/// the `timer` import (reporting a step at a time), logs as progress,
/// fails on `exception`, answers `resultPayload`; a sleep past the handler
/// deadline ends the call as timed out.
#[test]
fn the_wasm_sample_handler_sleeps_reports_and_answers() {
    let runtime = runtime_with(Limits {
        handler_deadline: Duration::from_millis(1500),
        ..Limits::default()
    });
    let sample = builtin(&runtime, "sample");
    let context = types::OperationContext {
        agenda_id: "a1".into(),
        operation_name: "nap".into(),
        cid: "cid-1".into(),
        last_progress: None,
    };
    let payload = r#"{"actions": [{"action": "log", "paramsMap": {"logMessage": "rested", "sleepMilliseconds": "300"}}],
                      "resultPayload": {"slept": true, "n": [1, 2]}}"#;
    let mut reports = Vec::new();
    let started = Instant::now();
    let result = runtime.run_handler(&sample, payload, &context, &mut |percent, message| {
        reports.push((percent, message.to_string()))
    });
    assert!(started.elapsed() >= Duration::from_millis(300), "it really slept");
    assert_eq!(result.unwrap(), r#"{"slept":true,"n":[1,2]}"#);
    assert_eq!(
        reports,
        vec![(100.0, "Sleeping 1/1".to_string()), (100.0, "rested".to_string())]
    );

    let failing = r#"{"actions": [{"action": "exception", "paramsMap": {"exceptionMessage": "kaboom"}}]}"#;
    let refused = runtime.run_handler(&sample, failing, &context, &mut |_, _| {});
    assert!(
        matches!(&refused, Err(PluginFailure::Refused(m)) if m == "kaboom"),
        "{refused:?}"
    );

    // A handler's timeout is wall time: a sleep past it ends the call
    // there (the host never sleeps beyond the deadline), as a timeout.
    let too_long = r#"{"actions": [{"action": "log", "paramsMap": {"sleepMilliseconds": 60000}}]}"#;
    let timed_out = runtime.run_handler(&sample, too_long, &context, &mut |_, _| {});
    assert_eq!(timed_out, Err(PluginFailure::Timeout));
}
