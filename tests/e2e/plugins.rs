//! WebAssembly plugins through the real API: built-ins loaded from their
//! wasm builds, live hot swap while decisions are being made, rollback,
//! restart, and hostile plugins contained.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pop_builtin_plugins::fixtures;
use serde_json::{Value, json};

use crate::harness::*;

/// An insight of acme's whose scheduler is acme's own plugin `picker`, and
/// five agendas waiting on it.
async fn acme_queue_with_backlog(server: &Server) -> Vec<String> {
    setup_tenancy(server).await;
    let admin = server.client(ADMIN);
    let insight = json!({"id": "acme-q", "customerId": "acme", "title": "Acme queue", "resourcePoolId": "pool-1",
        "queueSize": 0, "schedulingAlgorithm": "picker", "mappers": {"operationType": ["acme-work"]}});
    admin.post("/pop/insight", insight).await.first();
    let alice = server.client(ALICE);
    let mut ids = Vec::new();
    for i in 0..5 {
        let agenda = json!({"customerId": "acme", "title": format!("job {i}"),
            "operations": [{"name": "only", "type": "acme-work", "payload": {"i": i}}]});
        let created = alice.post("/pop/agenda", agenda).await.first();
        assert_eq!(created["agendaInsight"]["insightId"], json!("acme-q"));
        ids.push(created["id"].as_str().unwrap().to_string());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    ids
}

async fn upload(client: &Client, query: &str, wasm: &'static [u8]) -> Reply {
    client.post_bytes(&format!("/pop/plugin?{query}"), wasm).await
}

/// One scheduling decision of `insight` without side effects.
async fn preview(client: &Client, insight: &str) -> Reply {
    client
        .post(
            "/pop/insight/service/preview",
            json!({"insightId": insight, "slots": 1}),
        )
        .await
}

fn decision(reply: &Reply) -> (String, String) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let released = reply.body["released"].as_array().expect("released");
    assert_eq!(released.len(), 1, "one slot, one release: {}", reply.body);
    (
        reply.body["decidedBy"].as_str().unwrap().to_string(),
        released[0].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn tenant_scheduler_hot_swap_rollback_and_restart() {
    let workspace = Workspace::new();
    let server = workspace.start();
    let agendas = acme_queue_with_backlog(&server).await;
    let alice = server.client(ALICE);
    let v1 = upload(
        &alice,
        "kind=scheduler&name=picker&version=1&customerId=acme&activate=true",
        fixtures::FIRST_PENDING,
    )
    .await
    .first();
    assert_eq!(v1["id"], json!("acme:scheduler:picker@1"));
    assert_eq!(v1["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        decision(&preview(&alice, "acme-q").await),
        ("acme:scheduler:picker@1".into(), agendas[0].clone())
    );

    // Decisions keep coming from another client while the new version lands.
    let stop = Arc::new(AtomicBool::new(false));
    let deciding = {
        let (client, stop) = (server.client(ALICE), stop.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                seen.push(decision(&preview(&client, "acme-q").await));
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    upload(
        &alice,
        "kind=scheduler&name=picker&version=2&customerId=acme",
        fixtures::LAST_PENDING,
    )
    .await
    .first();
    let activated = alice
        .post("/pop/plugin/acme:scheduler:picker@2/activate", json!({}))
        .await
        .first();
    assert_eq!(activated["activeVersion"], json!("2"));
    // The very next decision follows the new version.
    assert_eq!(
        decision(&preview(&alice, "acme-q").await),
        ("acme:scheduler:picker@2".into(), agendas[4].clone())
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = deciding.await.unwrap();
    assert!(seen.len() > 5, "decisions were made during the swap: {}", seen.len());
    let switch = seen
        .iter()
        .position(|(by, _)| by.ends_with("@2"))
        .expect("the swap was seen");
    assert!(
        seen[..switch]
            .iter()
            .all(|d| *d == ("acme:scheduler:picker@1".to_string(), agendas[0].clone()))
    );
    assert!(
        seen[switch..]
            .iter()
            .all(|d| *d == ("acme:scheduler:picker@2".to_string(), agendas[4].clone()))
    );

    // An active version cannot be deleted; rollback restores v1.
    alice
        .delete("/pop/plugin/acme:scheduler:picker@2")
        .await
        .expect_error(409, "active");
    let rolled = alice
        .post("/pop/plugin/acme:scheduler:picker/rollback", json!({}))
        .await
        .first();
    assert_eq!(rolled["activeVersion"], json!("1"));
    assert_eq!(decision(&preview(&alice, "acme-q").await).0, "acme:scheduler:picker@1");
    alice
        .post("/pop/plugin/acme:scheduler:picker/rollback", json!({}))
        .await
        .expect_error(409, "roll back");

    // Another customer cannot see, activate or use acme's plugin.
    let bob = server.client(BOB);
    bob.get("/pop/plugin/acme:scheduler:picker@1")
        .await
        .expect_error(404, "not found");
    bob.post("/pop/plugin/acme:scheduler:picker@2/activate", json!({}))
        .await
        .expect_error(404, "not found");
    bob.post(
        "/pop/insight/service/preview",
        json!({"insightId": "acme-q", "slots": 1}),
    )
    .await
    .expect_error(404, "acme-q");

    // A restart keeps the active versions.
    let status = server.terminate();
    assert!(status.success());
    let server = Server::start(
        &workspace.dir.path().join("data"),
        &workspace.dir.path().join("tokens.json"),
    );
    let alice = server.client(ALICE);
    assert_eq!(
        decision(&preview(&alice, "acme-q").await),
        ("acme:scheduler:picker@1".into(), agendas[0].clone())
    );
    let versions = alice.get("/pop/plugin?byname=picker").await.all();
    assert_eq!(versions.len(), 2);
}

#[tokio::test]
async fn builtin_schedulers_run_from_their_wasm_builds() {
    let workspace = Workspace::new();
    let server = workspace.start();
    setup_tenancy(&server).await;
    let alice = server.client(ALICE);
    for name in ["FirstInFirstOut", "RoundRobin", "Priority", "WeightedFair"] {
        let found = alice.get(&format!("/pop/plugin?byname={name}")).await.all();
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        assert_eq!(found[0]["isGlobal"], json!(true));
        assert_eq!(found[0]["pluginKind"], json!("scheduler"));
        assert_eq!(found[0]["sha256"].as_str().unwrap().len(), 64);
        assert_eq!(found[0]["contractVersion"], json!("0.2.0"));
    }
    for name in ["pop-insight-mapper", "pop-visibility"] {
        assert_eq!(
            alice.get(&format!("/pop/plugin?byname={name}")).await.all().len(),
            1,
            "{name}"
        );
    }
    // No queue: the agenda stays in the backlog for the preview to see (a
    // submission wakes the scheduler loop, which would release it).
    server
        .client(ADMIN)
        .put("/pop/insight/insight-sample", json!({"queueSize": 0}))
        .await
        .first();
    let agenda = alice.post("/pop/agenda", two_step_agenda("acme", "l")).await.first();
    let decided = preview(&server.client(ADMIN), "insight-sample").await;
    let (by, released) = decision(&decided);
    assert!(by.starts_with("pop:scheduler:RoundRobin@"), "{by}");
    assert_eq!(released, agenda["id"].as_str().unwrap());
    assert_eq!(decided.body["fallback"], json!(false));
}

/// Every hostile plugin is refused at upload with the reason, the host stays
/// up, and other tenants' decisions keep their latency.
#[tokio::test]
async fn hostile_plugins_are_contained() {
    let workspace = Workspace::new();
    let server = workspace.start();
    acme_queue_with_backlog(&server).await;
    let alice = server.client(ALICE);
    let bob = server.client(BOB);
    upload(
        &alice,
        "kind=scheduler&name=picker&version=1&customerId=acme&activate=true",
        fixtures::FIRST_PENDING,
    )
    .await
    .first();
    let hostile: [(&str, &'static [u8], &str); 7] = [
        ("spin", fixtures::SPIN, "deadline"),
        ("bomb", fixtures::MEMORY_BOMB, "out of memory"),
        ("deep", fixtures::STACK_OVERFLOW, "stack"),
        ("trap", fixtures::TRAP, "trap"),
        ("liar", fixtures::BAD_OUTPUT, "not offered"),
        ("handler", fixtures::WRONG_WORLD, "scheduler"),
        (
            "garbage",
            b"\x00asm\x01\x00\x00\x00garbage that is no component",
            "component",
        ),
    ];
    for (name, wasm, reason) in hostile {
        let query = format!("kind=scheduler&name={name}&version=1&customerId=globex&activate=true");
        // The reason names the bound that stopped it (budget, memory cap,
        // stack): a plugin that was not stopped would never answer.
        let reply = upload(&bob, &query, wasm).await;
        reply.expect_error(422, reason);
        assert_eq!(
            server.anonymous().get("/healthz").await.status,
            200,
            "host up after {name}"
        );
        bob.get(&format!("/pop/plugin?byname={name}"))
            .await
            .all()
            .is_empty()
            .then_some(())
            .expect("nothing stored");
    }
    // Other tenants' decisions are still their own plugins' (how long they
    // take beside a failing neighbour is `pop bench --only isolation`).
    let (decided_by, _) = decision(&preview(&alice, "acme-q").await);
    assert!(decided_by.contains("acme:scheduler:picker"), "{decided_by}");
}

/// A plugin that passes its smoke call but fails on real input: decisions
/// fall back (to the last good version, else the built-in) and the owner sees
/// why in the plugin's diagnostics.
#[tokio::test]
async fn runtime_failures_fall_back_and_are_reported_to_the_owner() {
    let workspace = Workspace::new();
    let server = workspace.start();
    let agendas = acme_queue_with_backlog(&server).await;
    let alice = server.client(ALICE);
    upload(
        &alice,
        "kind=scheduler&name=picker&version=1&customerId=acme&activate=true",
        fixtures::LAST_PENDING,
    )
    .await
    .first();
    assert_eq!(decision(&preview(&alice, "acme-q").await).1, agendas[4]);
    upload(
        &alice,
        "kind=scheduler&name=picker&version=2&customerId=acme&activate=true",
        fixtures::TRAP_WHEN_BUSY,
    )
    .await
    .first();
    let reply = preview(&alice, "acme-q").await;
    assert_eq!(
        decision(&reply),
        ("acme:scheduler:picker@1".to_string(), agendas[4].clone()),
        "last good version"
    );
    assert_eq!(reply.body["fallback"], json!(true));
    // The owner sees the failure on the failing version.
    let mut reported: Value = Value::Null;
    for _ in 0..50 {
        reported = alice.get("/pop/plugin/acme:scheduler:picker@2").await.first();
        if reported["failureCount"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reported["failureCount"].as_i64().unwrap_or(0) >= 1, "{reported}");
    let message = reported["diagnosticEvents"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        message.contains("trap") || message.contains("unreachable") || message.contains("panic"),
        "{message}"
    );
    // Without a last good version, the built-in FIFO decides.
    alice
        .post("/pop/plugin/acme:scheduler:picker/rollback", json!({}))
        .await
        .first();
    upload(
        &alice,
        "kind=scheduler&name=other&version=1&customerId=acme&activate=true",
        fixtures::TRAP_WHEN_BUSY,
    )
    .await
    .first();
    alice
        .put("/pop/insight/acme-q", json!({"schedulingAlgorithm": "other"}))
        .await
        .first();
    let reply = preview(&alice, "acme-q").await;
    let (by, released) = decision(&reply);
    assert!(by.starts_with("native:FirstInFirstOut"), "{by}");
    assert_eq!(released, agendas[0]);

    // Operators see the same in the counters, summed over tenants.
    alice.get("/pop/metrics").await.expect_error(403, "super users");
    let metrics = server.client(ADMIN).get("/pop/metrics").await;
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    let text = metrics.body.as_str().unwrap_or_default();
    let counter = |series: &str| -> u64 {
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert!(counter(r#"pop_plugin_failures_total{world="scheduler",failure="trap"}"#) >= 2);
    for by in ["active", "last-good", "native"] {
        let series = format!(r#"pop_plugin_answers_total{{world="scheduler",answered_by="{by}"}}"#);
        assert!(counter(&series) >= 1, "{series}");
    }
    let calls = counter(r#"pop_plugin_call_seconds_count{world="scheduler"}"#);
    assert_eq!(
        counter(r#"pop_plugin_call_seconds_bucket{world="scheduler",le="+Inf"}"#),
        calls
    );
}

/// A customer's visibility policy decides who sees its objects (here: its
/// partners too), and its insight matcher binds its agendas.
#[tokio::test]
async fn customer_policies_decide_visibility_and_insight_binding() {
    use pop_builtin_plugins::examples;
    let workspace = Workspace::new();
    let server = workspace.start();
    setup_tenancy(&server).await;
    let (alice, bob, partner) = (server.client(ALICE), server.client(BOB), server.client(PARTNER));
    let agenda = alice
        .post("/pop/agenda", two_step_agenda("acme", "shared-link"))
        .await
        .first();
    let agenda_path = format!("/pop/agenda/{}", agenda["id"].as_str().unwrap());
    partner.get(&agenda_path).await.expect_error(404, "not found");

    upload(
        &alice,
        "kind=visibility-policy&name=partners&version=1&activate=true",
        examples::PARTNER_VISIBILITY,
    )
    .await
    .first();
    let customer = alice
        .put("/pop/customer/acme", json!({"visibilityPolicy": "partners"}))
        .await
        .first();
    assert_eq!(customer["visibilityPolicy"], json!("partners"));
    assert_eq!(partner.get("/pop/customer/acme").await.first()["id"], json!("acme"));
    assert_eq!(partner.get(&agenda_path).await.first()["id"], agenda["id"]);
    let listed = partner.get("/pop/agenda?bylinkId=shared-link").await.all();
    assert_eq!(listed.len(), 1);
    assert_eq!(partner.get("/pop/agenda?bycount=true").await.body["count"], json!(1));
    // Reading is not writing, and other customers see nothing new.
    assert!(
        !partner
            .put(&agenda_path, json!({"title": "x"}))
            .await
            .status
            .is_success()
    );
    bob.get(&agenda_path).await.expect_error(404, "not found");
    assert_eq!(bob.get("/pop/agenda?bycount=true").await.body["count"], json!(0));
    // A policy decides about its customer's data objects only: acme's
    // plugin records stay acme's, for partners and everyone else.
    for caller in [&partner, &bob] {
        caller
            .get("/pop/plugin/acme:visibility-policy:partners@1")
            .await
            .expect_error(404, "not found");
        let listed = caller.get("/pop/plugin?byname=partners").await.all();
        assert!(listed.is_empty(), "{listed:?}");
    }
    // Dropping the policy takes the partner's view away again.
    alice
        .put("/pop/customer/acme", json!({"visibilityPolicy": ""}))
        .await
        .first();
    partner.get(&agenda_path).await.expect_error(404, "not found");

    // The matcher: agendas carrying `queue` go to the insight of that title.
    let admin = server.client(ADMIN);
    let fast = json!({"id": "fast", "customerId": "acme", "title": "Fast lane", "resourcePoolId": "pool-1"});
    admin.post("/pop/insight", fast).await.first();
    upload(
        &alice,
        "kind=insight-matcher&name=by-title&version=1&activate=true",
        examples::BY_TITLE,
    )
    .await
    .first();
    alice
        .put("/pop/customer/acme", json!({"insightMatcher": "by-title"}))
        .await
        .first();
    let mut queued = two_step_agenda("acme", "q");
    queued["params"]["queue"] = json!("fast lane");
    assert_eq!(
        alice.post("/pop/agenda", queued).await.first()["agendaInsight"]["insightId"],
        json!("fast")
    );
    let plain = alice.post("/pop/agenda", two_step_agenda("acme", "p")).await.first();
    assert_eq!(plain["agendaInsight"]["insightId"], json!("insight-sample"));
}

/// The multipart form upload, and a super user's global plugin that every
/// customer's insight can name.
#[tokio::test]
async fn multipart_upload_of_a_global_plugin() {
    use pop_builtin_plugins::examples;
    let workspace = Workspace::new();
    let server = workspace.start();
    setup_tenancy(&server).await;
    let form = |global: bool| {
        reqwest::multipart::Form::new()
            .text("kind", "scheduler")
            .text("name", "newest-first")
            .text("version", "1.0.0")
            .text("customerId", "ops")
            .text("isGlobal", global.to_string())
            .text("activate", "true")
            .part(
                "wasm",
                reqwest::multipart::Part::bytes(examples::NEWEST_FIRST).file_name("newest.wasm"),
            )
    };
    // Only super users publish global plugins.
    let bob_form = form(true).text("customerId", "globex");
    server
        .client(BOB)
        .post_multipart("/pop/plugin", bob_form)
        .await
        .expect_error(403, "super users");
    let created = server
        .client(ADMIN)
        .post_multipart("/pop/plugin", form(true))
        .await
        .first();
    assert_eq!(created["id"], json!("ops:scheduler:newest-first@1.0.0"));
    assert_eq!(created["isGlobal"], json!(true));
    assert_eq!(created["sizeBytes"], json!(examples::NEWEST_FIRST.len()));
    // Everyone can read it; globex's own insight uses it by name.
    assert_eq!(
        server
            .client(BOB)
            .get("/pop/plugin/ops:scheduler:newest-first@1.0.0")
            .await
            .first()["id"],
        created["id"]
    );
    let insight = json!({"id": "globex-q", "customerId": "globex", "title": "Globex queue", "resourcePoolId": "pool-1",
        "schedulingAlgorithm": "newest-first", "queueSize": 0, "mappers": {"operationType": ["globex-work"]}});
    server.client(ADMIN).post("/pop/insight", insight).await.first();
    let bob = server.client(BOB);
    let mut ids = Vec::new();
    for i in 0..3 {
        let agenda =
            json!({"customerId": "globex", "operations": [{"name": "w", "type": "globex-work", "payload": {"i": i}}]});
        ids.push(
            bob.post("/pop/agenda", agenda).await.first()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (by, released) = decision(&preview(&bob, "globex-q").await);
    assert_eq!(by, "ops:scheduler:newest-first@1.0.0");
    assert_eq!(released, ids[2], "newest first");
    // A duplicate version is a conflict; a missing field is named.
    server
        .client(ADMIN)
        .post_multipart("/pop/plugin", form(true))
        .await
        .expect_error(409, "already exists");
    let incomplete = reqwest::multipart::Form::new()
        .text("kind", "scheduler")
        .part("wasm", reqwest::multipart::Part::bytes(examples::NEWEST_FIRST));
    server
        .client(ADMIN)
        .post_multipart("/pop/plugin", incomplete)
        .await
        .expect_error(422, "name");
}

#[tokio::test]
async fn a_scheduler_built_against_the_previous_contract_still_decides() {
    let workspace = Workspace::new();
    let server = workspace.start();
    let agendas = acme_queue_with_backlog(&server).await;
    let alice = server.client(ALICE);
    let legacy = upload(
        &alice,
        "kind=scheduler&name=picker&version=1&customerId=acme&activate=true",
        fixtures::LEGACY_ROUND_ROBIN,
    )
    .await
    .first();
    assert_eq!(legacy["contractVersion"], json!("0.1.0"));
    // Round-robin over acme's backlog alone: its oldest agenda.
    assert_eq!(
        decision(&preview(&alice, "acme-q").await),
        ("acme:scheduler:picker@1".into(), agendas[0].clone())
    );
    let current = upload(
        &alice,
        "kind=scheduler&name=picker&version=2&customerId=acme&activate=true",
        fixtures::LAST_PENDING,
    )
    .await
    .first();
    assert_eq!(current["contractVersion"], json!("0.2.0"));
    assert_eq!(
        decision(&preview(&alice, "acme-q").await),
        ("acme:scheduler:picker@2".into(), agendas[4].clone())
    );
}
