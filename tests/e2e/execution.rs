//! Agendas run end to end inside `pop serve`: scheduled, claimed by the
//! embedded puller, executed as a DAG by real handler processes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::harness::*;

/// Poll an agenda's progress until it is COMPLETE.
pub async fn wait_complete(client: &Client, progress_id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let progress = client.get(&format!("/pop/progress/agenda/{progress_id}")).await.first();
        if progress["processingState"] == json!("COMPLETE") {
            return progress;
        }
        assert!(
            Instant::now() < deadline,
            "agenda progress {progress_id} not COMPLETE after {timeout:?}: {progress}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A global insight of the pool of [`setup_tenancy`] for `types` (default
/// queue, run by the server).
pub async fn global_insight(server: &Server, id: &str, types: &[&str]) {
    let insight = json!({"id": id, "customerId": "ops", "title": id, "resourcePoolId": "pool-1",
        "isGlobal": true, "mappers": {"operationType": types}});
    server.client(ADMIN).post("/pop/insight", insight).await.first();
}

fn operation<'a>(progress: &'a Value, name: &str) -> &'a Value {
    progress["operationProgress"]
        .as_array()
        .and_then(|ops| ops.iter().find(|op| op["operation"] == json!(name)))
        .unwrap_or_else(|| panic!("no operation {name} in {progress}"))
}

/// The output an operation of `progress` recorded (`null` without one).
pub fn result_of(progress: &Value, name: &str) -> Value {
    let text = operation(progress, name)["resultPayload"].as_str().unwrap_or("null");
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// The README's agenda: `fetch` fans out to `left` and `right`, `join`
/// fans in; later operations take earlier outputs by reference.
pub fn fan_out_fan_in(customer: &str) -> Value {
    json!({
        "customerId": customer,
        "title": "fan out, fan in",
        "operations": [
            {"name": "fetch", "type": "sample", "payload": {
                "actions": [{"action": "log", "paramsMap": {"logMessage": "fetching", "sleepMilliseconds": 50}}],
                "resultPayload": {"items": ["alpha", "beta"], "count": 2}}},
            {"name": "left", "type": "sample", "payload": {
                "resultPayload": {"item": "@<fetch.out::/items/0>", "side": "left"}}},
            {"name": "right", "type": "sample", "payload": {
                "resultPayload": {"item": "@<fetch.out::/items/1>", "side": "right"}}},
            {"name": "join", "type": "sample", "payload": {
                "resultPayload": {"pair": ["@<left.out::/item>", "@<right.out::/item>"],
                                  "count": "@<fetch.out::/count>"}}}
        ]
    })
}

#[tokio::test]
async fn fan_out_fan_in_runs_to_succeeded_with_resolved_results() {
    let workspace = Workspace::new();
    let server = workspace.start_running(&Options::running());
    setup_tenancy(&server).await;
    let alice = server.client(ALICE);
    let agenda = alice.post("/pop/agenda", fan_out_fan_in("acme")).await.first();
    let progress_id = agenda["progressId"].as_str().unwrap();

    let progress = wait_complete(&alice, progress_id, Duration::from_secs(60)).await;
    assert_eq!(progress["processingStateMessage"], json!("succeeded"), "{progress}");
    assert_eq!(progress["percentComplete"], json!(100.0));
    assert_eq!(progress["attemptsCompleted"], json!(1));
    assert!(progress["startedTime"].as_i64() <= progress["completedTime"].as_i64());
    assert_eq!(result_of(&progress, "left"), json!({"item": "alpha", "side": "left"}));
    assert_eq!(result_of(&progress, "right"), json!({"item": "beta", "side": "right"}));
    assert_eq!(
        result_of(&progress, "join"),
        json!({"pair": ["alpha", "beta"], "count": 2}),
        "references resolved to the earlier outputs, the number kept a number"
    );
    for name in ["fetch", "left", "right", "join"] {
        let op = operation(&progress, name);
        assert_eq!(op["processingState"], json!("COMPLETE"), "{op}");
        assert_eq!(op["processingStateMessage"], json!("succeeded"), "{op}");
    }
    // `join` started only after both branches completed.
    let completed = |name: &str| operation(&progress, name)["completedTime"].as_i64().unwrap();
    let started = |name: &str| operation(&progress, name)["startedTime"].as_i64().unwrap();
    assert!(started("join") >= completed("left").max(completed("right")));
    // Done agendas leave the queue.
    let queued = server.client(ADMIN).get("/pop/queue").await.all();
    assert!(queued.is_empty(), "{queued:?}");
}

/// A registry in the data directory: `sample` as shipped, plus `flaky`, a
/// process that fails until a marker file exists and appends one line per
/// run to a count file.
fn flaky_registry(workspace: &Workspace, marker: &std::path::Path, count: &std::path::Path) {
    let script = format!(
        "echo run >> '{count}'; if [ -f '{marker}' ]; then echo recovered; echo HandlerComplete; else echo 'dependency not ready' >&2; exit 3; fi",
        count = count.display(),
        marker = marker.display()
    );
    let registry = json!({
        "baseProcessConfig": {"timeoutMs": 60000, "stdoutTimeoutMs": 60000, "endOfLogIdentifier": "HandlerComplete"},
        "sample": {"processConfig": {"program": "pop-sample-handler"}},
        "flaky": {"processConfig": {"program": "sh", "args": ["-c", script]}}
    });
    std::fs::create_dir_all(workspace.data_dir()).unwrap();
    std::fs::write(workspace.data_dir().join("registry.json"), registry.to_string()).unwrap();
}

#[tokio::test]
async fn a_failed_operation_fails_the_agenda_and_rerun_continue_finishes_it() {
    let workspace = Workspace::new();
    let marker = workspace.dir.path().join("ready");
    let flaky_runs = workspace.dir.path().join("flaky-runs");
    let sample_runs = workspace.dir.path().join("sample-runs");
    flaky_registry(&workspace, &marker, &flaky_runs);
    let options = Options::running().env("POP_SAMPLE_RUN_LOG", sample_runs.display().to_string());
    let server = workspace.start_running(&options);
    setup_tenancy(&server).await;
    global_insight(&server, "insight-flaky", &["flaky"]).await;
    let alice = server.client(ALICE);
    let agenda = json!({"customerId": "acme", "title": "flaky", "operations": [
        {"name": "prepare", "type": "sample", "payload": {"resultPayload": {"ok": true}}},
        {"name": "call", "type": "flaky", "payload": {"after": "@<prepare.out::/ok>"}},
        {"name": "report", "type": "sample", "payload": {"resultPayload": {"called": "@<call.out::/?none>"}}}
    ]});
    let agenda = alice.post("/pop/agenda", agenda).await.first();
    let agenda_id = agenda["id"].as_str().unwrap().to_string();
    let progress_id = agenda["progressId"].as_str().unwrap().to_string();

    let failed = wait_complete(&alice, &progress_id, Duration::from_secs(60)).await;
    assert_eq!(failed["processingStateMessage"], json!("failed"), "{failed}");
    let diagnostics = failed["diagnosticEvents"].to_string();
    assert!(diagnostics.contains("call"), "{diagnostics}");
    assert!(diagnostics.contains("exited with code 3"), "{diagnostics}");
    assert!(
        diagnostics.contains("dependency not ready"),
        "the log tail: {diagnostics}"
    );
    assert_eq!(operation(&failed, "call")["processingStateMessage"], json!("failed"));
    assert_eq!(
        operation(&failed, "report")["processingState"],
        json!("WAITING"),
        "a pending operation is not started after a failure"
    );

    std::fs::write(&marker, "").unwrap();
    let rerun = alice
        .post(
            "/pop/agenda/service/rerun",
            json!({"agendaId": agenda_id, "params": ["continue"]}),
        )
        .await;
    assert_eq!(rerun.status, 200, "{}", rerun.body);
    // The rerun first resets the progress to WAITING; then it runs again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let progress = wait_complete(&alice, &progress_id, Duration::from_secs(60)).await;
        if progress["attemptsCompleted"] == json!(2) {
            break progress;
        }
        assert!(Instant::now() < deadline, "no second attempt: {progress}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["processingStateMessage"], json!("succeeded"), "{done}");
    assert_eq!(operation(&done, "report")["processingStateMessage"], json!("succeeded"));
    let runs = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(runs(&flaky_runs).lines().count(), 2, "the failed operation ran again");
    let prepare_runs = runs(&sample_runs)
        .lines()
        .filter(|l| l.ends_with("prepare succeeded"))
        .count();
    assert_eq!(prepare_runs, 1, "the succeeded operation did not run again");
}

/// `kill -9` while 200 agendas are queued or running; after the restart
/// every agenda completes, none is lost or stuck, and no operation that
/// succeeded runs (to success) a second time.
#[tokio::test]
async fn a_crash_loses_no_agenda_and_reruns_no_succeeded_operation() {
    const AGENDAS: usize = 200;
    let workspace = Workspace::new();
    let run_log = workspace.dir.path().join("runs.log");
    let options = Options::running()
        .env("POP_EXECUTION_LIMIT", "16")
        .env("POP_SAMPLE_RUN_LOG", run_log.display().to_string());
    let server = workspace.start_running(&options);
    setup_tenancy(&server).await;
    let admin = server.client(ADMIN);
    admin
        .put("/pop/insight/insight-sample", json!({"queueSize": 50}))
        .await
        .first();
    let alice = server.client(ALICE);
    let step = |name: &str, input: &str| {
        json!({"name": name, "type": "sample", "payload": {
            "actions": [{"action": "log", "paramsMap": {"logMessage": name, "sleepMilliseconds": 20}}],
            "resultPayload": {"from": name, "input": input}}})
    };
    let mut progress_ids = Vec::with_capacity(AGENDAS);
    for i in 0..AGENDAS {
        let agenda = json!({"customerId": "acme", "linkId": "crash", "title": format!("crash {i}"), "operations": [
            step("one", "start"), step("two", "@<one.out::/from>"), step("three", "@<two.out::/from>")]});
        let agenda = alice.post("/pop/agenda", agenda).await.first();
        progress_ids.push(agenda["progressId"].as_str().unwrap().to_string());
    }
    // Kill once some agendas finished and others are under way.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let all = alice
            .get("/pop/progress/agenda?bylinkId=crash&bylimit=1000")
            .await
            .all();
        let complete = all.iter().filter(|p| p["processingState"] == json!("COMPLETE")).count();
        if complete >= AGENDAS / 5 {
            assert!(complete < AGENDAS, "everything finished before the crash");
            break;
        }
        assert!(Instant::now() < deadline, "agendas do not progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();

    let server = workspace.start_running(&options);
    let alice = server.client(ALICE);
    for progress_id in &progress_ids {
        let progress = wait_complete(&alice, progress_id, Duration::from_secs(180)).await;
        assert_eq!(progress["processingStateMessage"], json!("succeeded"), "{progress}");
        assert_eq!(result_of(&progress, "three")["input"], json!("two"), "{progress}");
    }
    let mut succeeded_runs: HashMap<String, usize> = HashMap::new();
    let mut started_runs = 0;
    for line in std::fs::read_to_string(&run_log).unwrap().lines() {
        match line.rsplit_once(' ') {
            Some((op, "succeeded")) => *succeeded_runs.entry(op.to_string()).or_default() += 1,
            Some((_, "started")) => started_runs += 1,
            _ => panic!("unexpected run log line {line}"),
        }
    }
    let twice: Vec<_> = succeeded_runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "operations that succeeded twice: {twice:?}");
    assert!(started_runs >= AGENDAS * 3, "every operation ran: {started_runs}");
    let queued = server.client(ADMIN).get("/pop/queue").await.all();
    assert!(queued.is_empty(), "{queued:?}");
}

/// Customer A submits 2,000 agendas, then customer B 10, on a round-robin
/// insight with a one-entry queue, served by an external puller (the test):
/// B's first agenda is released within the next 2 slots, all 10 within 20.
#[tokio::test]
async fn round_robin_lets_a_small_customer_through_a_big_backlog() {
    let workspace = Workspace::new();
    let options = Options {
        schedule_interval: Duration::from_millis(10),
        ..Options::default()
    };
    let server = workspace.start_running(&options);
    setup_tenancy(&server).await;
    let admin = server.client(ADMIN);
    let insight = json!({"id": "insight-fair", "customerId": "ops", "title": "Fair work", "resourcePoolId": "pool-1",
        "isGlobal": true, "queueSize": 1, "schedulingAlgorithm": "RoundRobin", "executionLimit": 0,
        "mappers": {"operationType": ["fair"]}});
    admin.post("/pop/insight", insight).await.first();
    let agenda = |customer: &str, i: usize| {
        json!({"customerId": customer, "title": format!("{customer} {i}"),
               "operations": [{"name": "only", "type": "fair", "payload": {}}]})
    };
    let alice = server.client(ALICE);
    let submissions = (0..2000).map(|i| {
        let alice = alice.clone();
        let body = agenda("acme", i);
        async move { alice.post("/pop/agenda", body).await.first() }
    });
    futures_util::stream::iter(submissions)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let bob = server.client(BOB);
    for i in 0..10 {
        bob.post("/pop/agenda", agenda("globex", i)).await.first();
    }

    // Claim one at a time, in release order, until B's ten are through.
    let mut order = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while order.iter().filter(|c| *c == "globex").count() < 10 {
        assert!(Instant::now() < deadline, "B's agendas not released: {order:?}");
        let got = admin
            .post(
                "/pop/resourcepool/service/getAgenda",
                json!({"insightId": "insight-fair", "count": 1, "puller": "fair-test"}),
            )
            .await;
        assert_eq!(got.status, 200, "{}", got.body);
        let Some(agenda) = got.body["agendas"].as_array().and_then(|a| a.first()).cloned() else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        order.push(agenda["customerId"].as_str().unwrap().to_string());
        let lease = &got.body["leases"][0];
        let ack = json!({"queueId": lease["queueId"], "puller": "fair-test"});
        let acked = admin.post("/pop/resourcepool/service/ackAgenda", ack).await;
        assert_eq!(acked.status, 200, "{}", acked.body);
    }
    let first_b = order.iter().position(|c| c == "globex").unwrap();
    // The queue may hold one of A's agendas released before B submitted.
    assert!(first_b < 2, "B's first agenda in slot {}: {order:?}", first_b + 1);
    assert!(order.len() <= 20, "B's ten took {} slots: {order:?}", order.len());
}

/// A registry with `shout`, a tenant's wasm handler plugin run in-process.
fn wasm_registry(workspace: &Workspace) {
    let registry = json!({
        "sample": {"processConfig": {"program": "pop-sample-handler"}},
        "shout": {"wasmConfig": {"plugin": "uppercase"}}
    });
    std::fs::create_dir_all(workspace.data_dir()).unwrap();
    std::fs::write(workspace.data_dir().join("registry.json"), registry.to_string()).unwrap();
}

#[tokio::test]
async fn wasm_handlers_resident_handlers_and_generators_run_in_one_agenda() {
    let workspace = Workspace::new();
    wasm_registry(&workspace);
    let server = workspace.start_running(&Options::running());
    setup_tenancy(&server).await;
    global_insight(&server, "insight-mixed", &["shout", "updateAgenda"]).await;
    let alice = server.client(ALICE);
    let uploaded = alice
        .post_bytes(
            "/pop/plugin?kind=handler&name=uppercase&version=1.0.0&customerId=acme&activate=true",
            pop_builtin_plugins::examples::UPPERCASE,
        )
        .await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.body);
    let agenda = json!({"customerId": "acme", "title": "mixed", "operations": [
        {"name": "greet", "type": "shout", "payload": {"greeting": "hello", "who": ["pop", "world"]}},
        {"name": "note", "type": "logMessages", "payload": {"logMessages": ["greeted @<greet.out::/greeting>"]}},
        {"name": "expand", "type": "updateAgenda",
         "params": {"agenda.operation.generator": {"operationsJsonPointer": "/operations"}},
         "payload": {"operations": [
            {"name": "child-1", "type": "shout", "payload": {"text": "@<greet.out::/who/1>"}},
            {"name": "child-2", "type": "shout", "params": {"dependsOn": "child-1"}, "payload": {"text": "again"}}]}}
    ]});
    let agenda = alice.post("/pop/agenda", agenda).await.first();
    let agenda_id = agenda["id"].as_str().unwrap().to_string();
    let progress_id = agenda["progressId"].as_str().unwrap().to_string();
    let progress = wait_complete(&alice, &progress_id, Duration::from_secs(60)).await;
    assert_eq!(progress["processingStateMessage"], json!("succeeded"), "{progress}");
    assert_eq!(
        result_of(&progress, "greet"),
        json!({"greeting": "HELLO", "who": ["POP", "WORLD"]})
    );
    assert_eq!(
        operation(&progress, "note")["processingStateMessage"],
        json!("succeeded")
    );
    // The generated operations ran after their generator, references and all.
    assert_eq!(result_of(&progress, "child-1"), json!({"text": "WORLD"}));
    assert_eq!(result_of(&progress, "child-2"), json!({"text": "AGAIN"}));
    let child = |name: &str, field: &str| operation(&progress, name)[field].as_i64().unwrap();
    assert!(child("child-2", "startedTime") >= child("child-1", "completedTime"));
    assert_eq!(progress["percentComplete"], json!(100.0));
    // And they are part of the agenda now, marked with their parent.
    let stored = alice.get(&format!("/pop/agenda/{agenda_id}")).await.first();
    let ops = stored["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 5, "{stored}");
    assert_eq!(ops[3]["params"]["generatedOperationParent"], json!("expand"));
}

#[tokio::test]
async fn an_unknown_operation_type_fails_the_agenda_with_pops_message() {
    let workspace = Workspace::new();
    let server = workspace.start_running(&Options::running());
    setup_tenancy(&server).await;
    global_insight(&server, "insight-mystery", &["mystery"]).await;
    let alice = server.client(ALICE);
    let agenda = json!({"customerId": "acme", "title": "mystery", "operations": [
        {"name": "what", "type": "mystery", "payload": {}},
        {"name": "after", "type": "sample", "payload": {"x": "@<what.out>"}}]});
    let agenda = alice.post("/pop/agenda", agenda).await.first();
    let progress = wait_complete(&alice, agenda["progressId"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(progress["processingStateMessage"], json!("failed"), "{progress}");
    assert_eq!(
        progress["diagnosticEvents"][0]["message"],
        json!("Unknown operation type found: mystery on operation: what")
    );
    assert_eq!(operation(&progress, "after")["processingState"], json!("WAITING"));
}

/// The built-in registry's `sampleWasm`: the sample handler compiled to a
/// component and shipped inside `pop`, run in-process with no setup.
#[tokio::test]
async fn the_wasm_sample_handler_runs_with_no_setup() {
    let workspace = Workspace::new();
    let server = workspace.start_running(&Options::running());
    setup_tenancy(&server).await;
    global_insight(&server, "insight-wasm", &["sampleWasm"]).await;
    let alice = server.client(ALICE);
    let agenda = json!({"customerId": "acme", "title": "wasm sample", "operations": [
        {"name": "nap", "type": "sampleWasm", "payload": {
            "actions": [{"action": "log", "paramsMap": {"logMessage": "rested", "sleepMilliseconds": 1200}}],
            "resultPayload": {"rested": true, "minutes": 0.5}}},
        {"name": "after", "type": "sampleWasm", "payload": {"resultPayload": {"was": "@<nap.out::/rested>"}}}]});
    let agenda = alice.post("/pop/agenda", agenda).await.first();
    let progress = wait_complete(&alice, agenda["progressId"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(progress["processingStateMessage"], json!("succeeded"), "{progress}");
    assert_eq!(result_of(&progress, "nap"), json!({"rested": true, "minutes": 0.5}));
    assert_eq!(result_of(&progress, "after"), json!({"was": true}));
    let nap = operation(&progress, "nap");
    let took = nap["completedTime"].as_i64().unwrap() - nap["startedTime"].as_i64().unwrap();
    // Longer than the runtime's default handler deadline (1 s): the
    // registry's timeoutMs (baseWasmConfig, 60 s) is the one that applies.
    assert!(took >= 1200, "the sleep really waited: {took} ms");
}

/// A generator whose output holds no operations fails, although its
/// handler succeeded: the row and the agenda say why.
#[tokio::test]
async fn a_generator_without_operations_fails_its_agenda() {
    let workspace = Workspace::new();
    let server = workspace.start_running(&Options::running());
    setup_tenancy(&server).await;
    global_insight(&server, "insight-wasm", &["sampleWasm"]).await;
    let alice = server.client(ALICE);
    let agenda = json!({"customerId": "acme", "title": "empty generator", "operations": [
        {"name": "gen", "type": "sampleWasm",
         "params": {"agenda.operation.generator": {"operationsJsonPointer": "/ops"}},
         "payload": {"resultPayload": {"nothing": 1}}}]});
    let agenda = alice.post("/pop/agenda", agenda).await.first();
    let progress = wait_complete(&alice, agenda["progressId"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(progress["processingStateMessage"], json!("failed"), "{progress}");
    let generator = operation(&progress, "gen");
    assert_eq!(generator["processingStateMessage"], json!("failed"), "{generator}");
    assert!(
        generator["diagnosticEvents"]
            .to_string()
            .contains("produced no operations at /ops"),
        "{generator}"
    );
    assert!(
        progress["diagnosticEvents"]
            .to_string()
            .contains("produced no operations"),
        "{progress}"
    );
}

/// An agenda as a crash leaves it mid-generator: the generator's operations
/// are already appended (marked with their parent) but the generator runs
/// again. It neither appends them twice nor fails; everything runs once.
#[tokio::test]
async fn a_generator_that_runs_again_does_not_append_twice() {
    let workspace = Workspace::new();
    let server = workspace.start_running(&Options::running());
    setup_tenancy(&server).await;
    global_insight(&server, "insight-gen", &["updateAgenda", "sampleWasm"]).await;
    let alice = server.client(ALICE);
    let child = |name: &str| {
        json!({"name": name, "type": "sampleWasm", "params": {"generatedOperationParent": "expand"},
               "payload": {"resultPayload": {"child": name}}})
    };
    let agenda = json!({"customerId": "acme", "title": "generated before", "operations": [
        {"name": "expand", "type": "updateAgenda",
         "params": {"agenda.operation.generator": {"operationsJsonPointer": "/operations"}},
         "payload": {"operations": [
            {"name": "c1", "type": "sampleWasm", "payload": {"resultPayload": {"child": "c1"}}},
            {"name": "c2", "type": "sampleWasm", "payload": {"resultPayload": {"child": "c2"}}}]}},
        child("c1")]});
    let agenda = alice.post("/pop/agenda", agenda).await.first();
    let agenda_id = agenda["id"].as_str().unwrap().to_string();
    let progress = wait_complete(&alice, agenda["progressId"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(progress["processingStateMessage"], json!("succeeded"), "{progress}");
    assert_eq!(result_of(&progress, "c2"), json!({"child": "c2"}));
    let stored = alice.get(&format!("/pop/agenda/{agenda_id}")).await.first();
    let names: Vec<&str> = stored["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["expand", "c1", "c2"], "c1 was not appended again");
}

/// Wider than one atomic store write (DynamoDB's 100 items): a submission
/// of 250 operations, a generator adding 150 more, and a rerun of them all
/// are each split into chunks under the store's limit, and read whole.
#[tokio::test]
async fn an_agenda_wider_than_one_atomic_write_is_submitted_generated_and_rerun_whole() {
    let workspace = Workspace::new();
    let server = workspace.start_running(&Options::running());
    setup_tenancy(&server).await;
    global_insight(&server, "insight-wide", &["logMessages", "updateAgenda"]).await;
    let alice = server.client(ALICE);
    let mut operations: Vec<Value> = (0..250)
        .map(|i| json!({"name": format!("log-{i}"), "type": "logMessages", "payload": {"logMessages": [format!("line {i}")]}}))
        .collect();
    let generated: Vec<Value> = (0..150)
        .map(|i| json!({"name": format!("gen-{i}"), "type": "logMessages", "payload": {}}))
        .collect();
    operations.push(json!({"name": "expand", "type": "updateAgenda",
        "params": {"agenda.operation.generator": {"operationsJsonPointer": "/operations"}},
        "payload": {"operations": generated}}));
    let agenda = json!({"customerId": "acme", "title": "wide", "operations": operations});
    let submitted = alice.post("/pop/agenda", agenda).await.first();
    let agenda_id = submitted["id"].as_str().unwrap().to_string();
    let progress_id = submitted["progressId"].as_str().unwrap().to_string();

    let progress = wait_complete(&alice, &progress_id, Duration::from_secs(120)).await;
    assert_eq!(
        progress["processingStateMessage"],
        json!("succeeded"),
        "{}",
        progress["diagnosticEvents"]
    );
    let rows = progress["operationProgress"].as_array().unwrap();
    assert_eq!(rows.len(), 401, "every submitted and generated operation has its row");
    assert!(
        rows.iter()
            .all(|row| row["processingStateMessage"] == json!("succeeded"))
    );
    let stored = alice.get(&format!("/pop/agenda/{agenda_id}")).await.first();
    assert_eq!(stored["operations"].as_array().unwrap().len(), 401);

    let rerun = alice
        .post("/pop/agenda/service/rerun", json!({"agendaId": agenda_id}))
        .await;
    assert_eq!(rerun.status, 200, "{}", rerun.body);
    let deadline = Instant::now() + Duration::from_secs(120);
    let again = loop {
        let progress = alice.get(&format!("/pop/progress/agenda/{progress_id}")).await.first();
        if progress["processingState"] == json!("COMPLETE") && progress["attemptsCompleted"] == json!(2) {
            break progress;
        }
        assert!(Instant::now() < deadline, "the rerun did not complete: {progress}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        again["processingStateMessage"],
        json!("succeeded"),
        "{}",
        again["diagnosticEvents"]
    );
    let rows = again["operationProgress"].as_array().unwrap();
    assert_eq!(rows.len(), 401, "the rerun regenerated the deleted operations");
    assert!(
        rows.iter()
            .all(|row| row["processingStateMessage"] == json!("succeeded"))
    );
}

/// Larger than one stored row (DynamoDB's 400 KB item, which every store
/// adapter keeps to): the agenda's operations go to the blob store, and the
/// agenda is accepted, run, read whole after a kill -9 and deleted whole.
#[tokio::test]
async fn an_agenda_larger_than_one_stored_row_is_kept_whole() {
    let workspace = Workspace::new();
    let server = workspace.start_running(&Options::running());
    setup_tenancy(&server).await;
    global_insight(&server, "insight-large", &["logMessages"]).await;
    let alice = server.client(ALICE);
    let line = "x".repeat(200);
    let operations: Vec<Value> = (0..2_000)
        .map(|i| json!({"name": format!("log-{i}"), "type": "logMessages", "payload": {"logMessages": [format!("{i} {line}")]}}))
        .collect();
    let agenda = json!({"customerId": "acme", "title": "large", "operations": operations});
    let size = serde_json::to_vec(&agenda).unwrap().len();
    assert!(size > 400 * 1024, "the agenda must exceed one row: {size} bytes");
    let submitted = alice.post("/pop/agenda", agenda).await.first();
    let agenda_id = submitted["id"].as_str().unwrap().to_string();
    let progress = wait_complete(
        &alice,
        submitted["progressId"].as_str().unwrap(),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        progress["processingStateMessage"],
        json!("succeeded"),
        "{}",
        progress["diagnosticEvents"]
    );
    assert_eq!(progress["operationProgress"].as_array().unwrap().len(), 2_000);

    server.kill();
    let server = workspace.start_running(&Options::running());
    let alice = server.client(ALICE);
    let stored = alice.get(&format!("/pop/agenda/{agenda_id}")).await.first();
    assert_eq!(
        stored["operations"],
        json!(operations),
        "read back whole after a restart"
    );
    let listed = alice.get("/pop/agenda?bytitle=large").await.all();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["operations"].as_array().unwrap().len(), 2_000);

    let deleted = alice.delete(&format!("/pop/agenda/{agenda_id}")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    alice
        .get(&format!("/pop/agenda/{agenda_id}"))
        .await
        .expect_error(404, &agenda_id);
}
