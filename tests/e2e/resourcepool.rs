//! The ResourcePool service: pullers claim queued agendas under leases
//! (at-least-once delivery), extend and acknowledge them; executors report
//! progress and append generated operations; pool components create
//! agendas for customers onto their own insights.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

/// The pool operator: account `ops` owns `insight-sample` (user `puller-1`).
const OPS: &str = "ops-token";
const INSIGHT: &str = "insight-sample";
const GET_AGENDA: &str = "/pop/resourcepool/service/getAgenda";
const EXTEND: &str = "/pop/resourcepool/service/extendLease";
const ACK: &str = "/pop/resourcepool/service/ackAgenda";

/// A server whose scheduler loop runs every 50 ms, with the harness
/// identities plus the pool operator, and the README tenancy set up.
async fn start(workspace: &Workspace) -> Server {
    let dir = workspace.dir.path();
    let harness_tokens = std::fs::read_to_string(dir.join("tokens.json")).expect("harness tokens");
    let mut tokens: Value = serde_json::from_str(&harness_tokens).expect("tokens JSON");
    tokens["tokens"]
        .as_array_mut()
        .expect("token list")
        .push(json!({"token": OPS, "userId": "puller-1", "accounts": ["ops"], "superUser": false}));
    let path = dir.join("tokens-resourcepool.json");
    std::fs::write(&path, tokens.to_string()).expect("write tokens");
    let server = Server::start_scheduling_every(&dir.join("data"), &path, Duration::from_millis(50));
    setup_tenancy(&server).await;
    server
}

/// Submit `n` agendas of acme; their ids.
async fn submit(server: &Server, n: usize, link: &str) -> Vec<String> {
    let alice = server.client(ALICE);
    let mut ids = Vec::new();
    for i in 0..n {
        let agenda = alice
            .post("/pop/agenda", two_step_agenda("acme", &format!("{link}-{i}")))
            .await
            .first();
        ids.push(agenda["id"].as_str().unwrap().to_string());
    }
    ids
}

/// Wait until every agenda of `ids` sits unleased in the insight's queue.
async fn wait_queued(server: &Server, ids: &[String]) {
    let admin = server.client(ADMIN);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let queue = admin
            .get(&format!("/pop/queue?byinsightId={INSIGHT}&bylimit=1000"))
            .await
            .all();
        let waiting: HashSet<&str> = queue
            .iter()
            .filter(|e| e["leaseOwner"].is_null())
            .filter_map(|e| e["agendaId"].as_str())
            .collect();
        if ids.iter().all(|id| waiting.contains(id.as_str())) {
            return;
        }
        assert!(Instant::now() < deadline, "agendas were not queued: {queue:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn agenda_ids(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["agendas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

fn lease_of<'a>(reply: &'a Reply, agenda_id: &str) -> &'a Value {
    reply.body["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["agendaId"] == json!(agenda_id))
        .unwrap_or_else(|| panic!("no lease for {agenda_id}: {}", reply.body))
}

#[tokio::test]
async fn leases_deliver_at_least_once() {
    let workspace = Workspace::new();
    let server = start(&workspace).await;
    let ops = server.client(OPS);
    let admin = server.client(ADMIN);
    let ids = submit(&server, 3, "lease").await;
    wait_queued(&server, &ids).await;

    // Oldest first, leased to the caller's user id by default.
    let first = ops.post(GET_AGENDA, json!({"insightId": INSIGHT, "count": 2})).await;
    assert_eq!(agenda_ids(&first), ids[..2]);
    assert_eq!(first.body["all"], first.body["agendas"]);
    assert_eq!(
        first.body["agendaProgresses"],
        json!([]),
        "nothing ran yet: no resume progress"
    );
    let agenda = &first.body["agendas"][0];
    assert!(
        agenda["params"]["added"].is_i64(),
        "params.added is the backlog time: {agenda}"
    );
    assert_eq!(agenda["operations"].as_array().unwrap().len(), 2);
    let lease = lease_of(&first, &ids[0]);
    assert_eq!(lease["deliveries"], json!(1));
    let queue_id = lease["queueId"].as_str().unwrap();
    let entry = admin.get(&format!("/pop/queue/{queue_id}")).await.first();
    assert_eq!(entry["leaseOwner"], json!("puller-1"));
    assert_eq!(entry["leaseExpires"], lease["leaseExpires"]);
    assert_eq!(entry["deliveries"], json!(1));
    let expires = lease["leaseExpires"].as_i64().unwrap();
    assert!(expires > now_ms() + 50_000, "the default lease is a minute: {lease}");

    // A second puller gets only what is not leased; then nothing is left.
    let second = ops
        .post(GET_AGENDA, json!({"insightId": INSIGHT, "count": 5, "puller": "p2"}))
        .await;
    assert_eq!(agenda_ids(&second), ids[2..]);
    let third = ops.post(GET_AGENDA, json!({"insightId": INSIGHT, "count": 5})).await;
    assert_eq!(agenda_ids(&third), Vec::<String>::new());
    assert_eq!(third.body["leases"], json!([]));

    // An expired lease makes the agenda claimable again: delivered twice.
    let late = submit(&server, 1, "late").await;
    wait_queued(&server, &late).await;
    let short = ops
        .post(
            GET_AGENDA,
            json!({"insightId": INSIGHT, "count": 5, "puller": "p3", "leaseMs": 200}),
        )
        .await;
    assert_eq!(agenda_ids(&short), late);
    let queue_id = lease_of(&short, &late[0])["queueId"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = ops
        .post(
            GET_AGENDA,
            json!({"insightId": INSIGHT, "count": 5, "puller": "p4", "leaseMs": 300}),
        )
        .await;
    assert_eq!(agenda_ids(&again), late, "the expired lease was not delivered again");
    assert_eq!(lease_of(&again, &late[0])["deliveries"], json!(2));
    assert_eq!(lease_of(&again, &late[0])["queueId"], json!(queue_id));

    // The old holder lost it; the new one extends it, so it stays claimed.
    let lease = |puller: &str| json!({"queueId": queue_id, "puller": puller, "leaseMs": 60_000});
    ops.post(EXTEND, lease("p3"))
        .await
        .expect_error(409, "not held by puller p3");
    let extended = ops.post(EXTEND, lease("p4")).await;
    assert_eq!(extended.status, 200, "{}", extended.body);
    assert_eq!(extended.body["deliveries"], json!(2));
    assert!(extended.body["leaseExpires"].as_i64().unwrap() > now_ms() + 50_000);
    let pinned = json!({"queueId": queue_id, "puller": "p4", "deliveries": 1});
    ops.post(EXTEND, pinned).await.expect_error(409, "delivered again");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let none = ops.post(GET_AGENDA, json!({"insightId": INSIGHT, "count": 5})).await;
    assert_eq!(
        agenda_ids(&none),
        Vec::<String>::new(),
        "an extended lease was handed out"
    );

    // Only the holder acknowledges; the entry then leaves the queue.
    let ack = |puller: &str| json!({"queueId": queue_id, "puller": puller});
    ops.post(ACK, ack("p3")).await.expect_error(409, "not held");
    let acked = ops.post(ACK, ack("p4")).await;
    assert_eq!(acked.status, 200, "{}", acked.body);
    admin
        .get(&format!("/pop/queue/{queue_id}"))
        .await
        .expect_error(404, "not found");
    ops.post(ACK, ack("p4")).await.expect_error(404, "not found");
}

#[tokio::test]
async fn concurrent_pullers_never_share_an_agenda() {
    let workspace = Workspace::new();
    let server = start(&workspace).await;
    let ids = submit(&server, 10, "race").await;
    wait_queued(&server, &ids).await;
    let pullers: Vec<_> = (0..4)
        .map(|i| {
            let ops = server.client(OPS);
            tokio::spawn(async move {
                let body = json!({"insightId": INSIGHT, "count": 4, "puller": format!("racer-{i}")});
                agenda_ids(&ops.post(GET_AGENDA, body).await)
            })
        })
        .collect();
    let mut delivered = Vec::new();
    for puller in pullers {
        delivered.extend(puller.await.unwrap());
    }
    let distinct: HashSet<&String> = delivered.iter().collect();
    assert_eq!(
        distinct.len(),
        delivered.len(),
        "an agenda went to two pullers: {delivered:?}"
    );
    // 16 asked for, 10 queued: every agenda was handed out exactly once.
    assert_eq!(distinct, ids.iter().collect::<HashSet<_>>());
}

#[tokio::test]
async fn pullers_are_refused_without_leaking() {
    let workspace = Workspace::new();
    let server = start(&workspace).await;
    let ops = server.client(OPS);
    let ids = submit(&server, 1, "private").await;
    wait_queued(&server, &ids).await;

    // The insight is global, but only its owner (or a super user) pulls;
    // an absent insight answers the same.
    for token in [ALICE, BOB] {
        server
            .client(token)
            .post(GET_AGENDA, json!({"insightId": INSIGHT, "count": 1}))
            .await
            .expect_error(
                404,
                "The Insight specified was not found or is not visible: insight-sample",
            );
    }
    ops.post(GET_AGENDA, json!({"insightId": "nope", "count": 1}))
        .await
        .expect_error(404, "The Insight specified was not found or is not visible: nope");

    // Leases of another owner's queue look absent.
    let claimed = ops.post(GET_AGENDA, json!({"insightId": INSIGHT, "count": 1})).await;
    let queue_id = claimed.body["leases"][0]["queueId"].as_str().unwrap().to_string();
    for path in [EXTEND, ACK] {
        let body = json!({"queueId": queue_id, "puller": "puller-1"});
        server
            .client(BOB)
            .post(path, body)
            .await
            .expect_error(404, &format!("Queue entry {queue_id} not found"));
        ops.post(path, json!({"queueId": "nope", "puller": "puller-1"}))
            .await
            .expect_error(404, "Queue entry nope not found");
    }

    // Bad bodies name the field.
    let cases = [
        (GET_AGENDA, json!({"count": 1}), 422, "insightId"),
        (GET_AGENDA, json!({"insightId": " ", "count": 1}), 422, "insightId"),
        (GET_AGENDA, json!({"insightId": INSIGHT}), 422, "count"),
        (GET_AGENDA, json!({"insightId": INSIGHT, "count": 0}), 422, "count"),
        (GET_AGENDA, json!({"insightId": INSIGHT, "count": "two"}), 422, "count"),
        (
            GET_AGENDA,
            json!({"insightId": INSIGHT, "count": 1, "leaseMs": 0}),
            422,
            "leaseMs",
        ),
        (
            GET_AGENDA,
            json!({"insightId": INSIGHT, "count": 1, "puller": ""}),
            422,
            "puller",
        ),
        (EXTEND, json!({"puller": "p"}), 422, "queueId"),
        (EXTEND, json!({"queueId": queue_id}), 422, "puller"),
        (ACK, json!({"queueId": queue_id, "puller": 5}), 422, "puller"),
        (
            "/pop/resourcepool/service/createAgenda",
            json!({"agendas": {}}),
            422,
            "agendas",
        ),
        (
            "/pop/resourcepool/service/updateAgendaProgress",
            json!({}),
            422,
            "agendaProgress",
        ),
        (
            "/pop/resourcepool/service/updateAgenda",
            json!({"operations": []}),
            422,
            "agendaId",
        ),
    ];
    for (path, body, status, field) in cases {
        ops.post(path, body).await.expect_error(status, field);
    }
    ops.post_raw(GET_AGENDA, "{not json")
        .await
        .expect_error(400, "not valid JSON");
    // Over the cap is capped, not refused.
    let capped = ops.post(GET_AGENDA, json!({"insightId": INSIGHT, "count": 1000})).await;
    assert_eq!(capped.status, 200, "{}", capped.body);
}

#[tokio::test]
async fn executors_report_progress_and_resume() {
    let workspace = Workspace::new();
    let server = start(&workspace).await;
    let ops = server.client(OPS);
    let alice = server.client(ALICE);
    let ids = submit(&server, 1, "exec").await;
    wait_queued(&server, &ids).await;
    let claimed = ops
        .post(GET_AGENDA, json!({"insightId": INSIGHT, "count": 1, "leaseMs": 200}))
        .await;
    assert_eq!(agenda_ids(&claimed), ids);
    let progress_id = claimed.body["agendas"][0]["progressId"].as_str().unwrap().to_string();

    // Only the executor's fields are taken; operation rows are updated.
    let report = json!({"agendaProgress": {
        "id": progress_id,
        "processingState": "EXECUTING",
        "processingStateMessage": "Running Operations",
        "percentComplete": 50.0,
        "startedTime": 1_700_000_000_000_i64,
        "title": "not an executor's field",
        "linkId": "not an executor's field",
        "operationProgress": [{"operation": "first", "processingState": "COMPLETE",
            "processingStateMessage": "succeeded", "resultPayload": "{\"message\":\"hello\"}"}]
    }});
    let updated = ops.post("/pop/resourcepool/service/updateAgendaProgress", report).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["error"], json!(false));
    let progress = alice.get(&format!("/pop/progress/agenda/{progress_id}")).await.first();
    assert_eq!(progress["processingState"], json!("EXECUTING"));
    assert_eq!(progress["percentComplete"], json!(50.0));
    assert_eq!(progress["startedTime"], json!(1_700_000_000_000_i64));
    assert_eq!(progress["linkId"], json!("exec-0"));
    assert_eq!(progress["title"], json!("acme job"));
    let first = &progress["operationProgress"][0];
    assert_eq!(first["operation"], json!("first"));
    assert_eq!(first["processingState"], json!("COMPLETE"));
    assert_eq!(first["resultPayload"], json!("{\"message\":\"hello\"}"));
    assert_eq!(progress["operationProgress"][1]["processingState"], json!("WAITING"));

    // The executor dies; the lease runs out; the next puller resumes it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let resumed = ops.post(GET_AGENDA, json!({"insightId": INSIGHT, "count": 1})).await;
    assert_eq!(agenda_ids(&resumed), ids);
    let progresses = resumed.body["agendaProgresses"].as_array().unwrap();
    assert_eq!(progresses.len(), 1, "{}", resumed.body);
    assert_eq!(progresses[0]["id"], json!(progress_id));
    assert_eq!(
        progresses[0]["operationProgress"][0]["processingState"],
        json!("COMPLETE")
    );

    // Completion counts an attempt, as a PUT does.
    let done = json!({"agendaProgress": {"id": progress_id, "processingState": "COMPLETE",
        "processingStateMessage": "succeeded", "completedTime": 1_700_000_001_000_i64}});
    let updated = ops.post("/pop/resourcepool/service/updateAgendaProgress", done).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let progress = alice.get(&format!("/pop/progress/agenda/{progress_id}")).await.first();
    assert_eq!(progress["attemptsCompleted"], json!(1));

    // Unknown progress, and a caller who cannot read the agenda's insight.
    ops.post(
        "/pop/resourcepool/service/updateAgendaProgress",
        json!({"agendaProgress": {"id": "nope", "percentComplete": 1.0}}),
    )
    .await
    .expect_error(404, "AgendaProgress nope was not found or is not visible");
    let admin = server.client(ADMIN);
    let private = json!({"id": "insight-private", "customerId": "ops", "title": "Private", "resourcePoolId": "pool-1",
        "queueSize": 10, "allowedCustomerIds": ["acme"], "mappers": {"operationType": ["private-work"]}});
    admin.post("/pop/insight", private).await.first();
    let agenda = json!({"customerId": "acme", "operations": [{"name": "p", "type": "private-work", "payload": {}}]});
    let agenda = alice.post("/pop/agenda", agenda).await.first();
    assert_eq!(agenda["agendaInsight"]["insightId"], json!("insight-private"));
    let private_progress = agenda["progressId"].as_str().unwrap();
    let report = json!({"agendaProgress": {"id": private_progress, "percentComplete": 99.0}});
    server
        .client(BOB)
        .post("/pop/resourcepool/service/updateAgendaProgress", report.clone())
        .await
        .expect_error(
            404,
            &format!("AgendaProgress {private_progress} was not found or is not visible"),
        );
    let unchanged = alice
        .get(&format!("/pop/progress/agenda/{private_progress}"))
        .await
        .first();
    assert_eq!(unchanged["percentComplete"], json!(0.0));

    // Reading a shared insight is not enough: bob may read the global
    // insight acme's agenda runs on, yet may not report progress for it.
    let forged = json!({"agendaProgress": {"id": progress_id, "percentComplete": 1.0}});
    server
        .client(BOB)
        .post("/pop/resourcepool/service/updateAgendaProgress", forged)
        .await
        .expect_error(404, "was not found or is not visible");
}

#[tokio::test]
async fn generators_append_operations() {
    let workspace = Workspace::new();
    let server = start(&workspace).await;
    let ops = server.client(OPS);
    let alice = server.client(ALICE);
    let ids = submit(&server, 1, "gen").await;
    let agenda_id = &ids[0];
    let update =
        |operations: Value, params: Value| json!({"agendaId": agenda_id, "operations": operations, "params": params});

    let generated = json!([{"name": "third", "type": "sample", "payload": {"echo": "@<second.out::/echo>"},
        "params": {"generatedOperationParent": "second"}}]);
    let reply = ops
        .post(
            "/pop/resourcepool/service/updateAgenda",
            update(generated, json!({"generated": true})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let agenda = &reply.body["agenda"];
    let names: Vec<&str> = agenda["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "second", "third"]);
    assert_eq!(agenda["params"]["generated"], json!(true));
    assert_eq!(
        agenda["params"]["externalId"],
        json!("ext-gen-0"),
        "params are merged, not replaced"
    );
    let stored = alice.get(&format!("/pop/agenda/{agenda_id}")).await.first();
    assert_eq!(stored["operations"], agenda["operations"]);

    let progress_id = stored["progressId"].as_str().unwrap();
    let progress = alice.get(&format!("/pop/progress/agenda/{progress_id}")).await.first();
    assert_eq!(progress["params"]["generated"], json!(true));
    assert_eq!(progress["params"]["externalId"], json!("ext-gen-0"));
    let third = &progress["operationProgress"][2];
    assert_eq!(third["id"], json!(format!("{progress_id}-third")));
    assert_eq!(third["processingState"], json!("WAITING"));
    assert_eq!(third["customerId"], json!("acme"));
    assert_eq!(third["params"]["generatedOperationParent"], json!("second"));

    // The combined agenda must still validate; nothing is written otherwise.
    let cases = [
        (json!([{"name": "First", "type": "sample"}]), "names"),
        (
            json!([{"name": "fourth", "type": "sample", "payload": {"x": "@<nope.out::/y>"}}]),
            "nope.out",
        ),
    ];
    for (operations, message) in cases {
        ops.post(
            "/pop/resourcepool/service/updateAgenda",
            update(operations, Value::Null),
        )
        .await
        .expect_error(422, message);
    }
    let after = alice.get(&format!("/pop/agenda/{agenda_id}")).await.first();
    assert_eq!(after["operations"].as_array().unwrap().len(), 3);
    ops.post(
        "/pop/resourcepool/service/updateAgenda",
        json!({"agendaId": "nope", "operations": [{"name": "x", "type": "sample"}]}),
    )
    .await
    .expect_error(404, "Agenda nope not found");
}

#[tokio::test]
async fn pool_components_create_agendas_for_customers() {
    let workspace = Workspace::new();
    let server = start(&workspace).await;
    let ops = server.client(OPS);
    let agenda = |customer: &str, op_type: &str| {
        json!({"customerId": customer, "title": format!("{customer} generated"),
            "operations": [{"name": "w", "type": op_type, "payload": {}}]})
    };
    let body = json!({"agendas": [agenda("acme", "sample"), agenda("globex", "sample"), null,
        agenda("", "sample"), agenda("acme", "unmatched")]});
    let reply = ops.post("/pop/resourcepool/service/createAgenda", body).await;
    reply.expect_error(
        400,
        "[ValidationException : The customerId field must be specified.][ObjectNotFoundException : No available insights for processing agenda]",
    );
    let created = reply.body["agendas"].as_array().unwrap();
    assert_eq!(created.len(), 2, "{}", reply.body);
    assert_eq!(reply.body["all"], reply.body["agendas"]);
    for (agenda, (customer, token)) in created.iter().zip([("acme", ALICE), ("globex", BOB)]) {
        assert_eq!(agenda["customerId"], json!(customer));
        assert_eq!(agenda["agendaInsight"]["insightId"], json!(INSIGHT));
        let id = agenda["id"].as_str().unwrap();
        // The agenda belongs to its customer, with progress and a backlog row.
        let owner = server.client(token);
        assert_eq!(owner.get(&format!("/pop/agenda/{id}")).await.first()["id"], json!(id));
        let progress_id = agenda["progressId"].as_str().unwrap();
        assert_eq!(
            owner.get(&format!("/pop/progress/agenda/{progress_id}")).await.first()["processingState"],
            json!("WAITING")
        );
    }
    wait_queued(&server, &[created[0]["id"].as_str().unwrap().to_string()]).await;

    let ok = ops
        .post(
            "/pop/resourcepool/service/createAgenda",
            json!({"agendas": [agenda("acme", "sample")]}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["agendas"].as_array().unwrap().len(), 1);

    // A customer does not own the pool's insight: nothing to create onto.
    let refused = server
        .client(ALICE)
        .post(
            "/pop/resourcepool/service/createAgenda",
            json!({"agendas": [agenda("acme", "sample")]}),
        )
        .await;
    refused.expect_error(
        400,
        "[ObjectNotFoundException : No available insights for processing agenda]",
    );
    assert_eq!(refused.body["agendas"], json!([]));
}

/// A rerun of an agenda that a puller holds neither duplicates it nor waits
/// for the old run: the entry's lease is cleared (the old holder can no
/// longer extend or acknowledge it) and the entry is claimable at once.
#[tokio::test]
async fn rerun_takes_a_leased_agenda_back_without_duplicating_it() {
    let workspace = Workspace::new();
    let server = start(&workspace).await;
    let ops = server.client(OPS);
    let alice = server.client(ALICE);
    let ids = submit(&server, 1, "rerun").await;
    wait_queued(&server, &ids).await;
    let claimed = ops.post(GET_AGENDA, json!({"insightId": INSIGHT, "count": 1})).await;
    assert_eq!(agenda_ids(&claimed), ids);

    let rerun = alice
        .post(
            "/pop/agenda/service/rerun",
            json!({"agendaId": ids[0], "params": ["resetAll"]}),
        )
        .await;
    assert_eq!(rerun.status, 200, "{}", rerun.body);
    assert_eq!(rerun.body["requeued"], json!(true));
    // Several scheduler rounds later there is still one queue entry, the
    // leased one: a second backlog row would have been released by now.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let entries = alice.get(&format!("/pop/queue?byagendaId={}", ids[0])).await.all();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["leaseOwner"], json!(""), "no holder: {entries:?}");
    let queue_id = entries[0]["id"].as_str().unwrap().to_string();
    ops.post(EXTEND, json!({"queueId": queue_id, "puller": "puller-1"}))
        .await
        .expect_error(409, "not held by puller puller-1");
    let again = ops
        .post(
            GET_AGENDA,
            json!({"insightId": INSIGHT, "count": 5, "puller": "puller-2"}),
        )
        .await;
    assert_eq!(agenda_ids(&again), ids, "the reset agenda is delivered again");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
