//! The README's five-minute walkthrough, step by step.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn readme_walkthrough() {
    let workspace = Workspace::new();
    let server = workspace.start();
    let health = server.anonymous().get("/healthz").await;
    assert_eq!(health.status, 200);
    setup_tenancy(&server).await;
    let admin = server.client(ADMIN);
    let alice = server.client(ALICE);

    // The pool lists its insights, derived on read.
    let pool = admin.get("/pop/resourcepool/pool-1").await.first();
    assert_eq!(pool["insightIds"], json!(["insight-sample"]));

    // Submit: the server binds the agenda to the insight and creates progress.
    let submitted = alice.post("/pop/agenda", two_step_agenda("acme", "link-1")).await;
    assert!(submitted.body["cid"].as_str().is_some_and(|c| !c.is_empty()));
    let agenda = submitted.first();
    let agenda_id = agenda["id"].as_str().unwrap().to_string();
    let progress_id = agenda["progressId"].as_str().unwrap().to_string();
    assert_eq!(
        agenda["agendaInsight"],
        json!({"resourcePoolId": "pool-1", "insightId": "insight-sample"})
    );
    assert!(agenda["addedTime"].is_i64());
    assert_eq!(
        agenda["operations"][1]["payload"]["echo"],
        json!("@<first.out::/message>")
    );

    // Progress: WAITING, with one operation progress per operation.
    let progress = alice.get(&format!("/pop/progress/agenda/{progress_id}")).await.first();
    assert_eq!(progress["processingState"], json!("WAITING"));
    assert_eq!(progress["processingStateMessage"], json!("pending"));
    assert_eq!(progress["agendaId"], json!(agenda_id));
    assert_eq!(progress["externalId"], json!("ext-link-1"));
    // One attempt unless the agenda or its insight asks for more (issue 12;
    // POP assumed 3 but nothing retried by default here).
    assert_eq!(progress["maximumAttempts"], json!(1));
    let ops = progress["operationProgress"].as_array().unwrap();
    let names: Vec<&str> = ops.iter().map(|o| o["operation"].as_str().unwrap()).collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(ops[0]["id"], json!(format!("{progress_id}-first")));
    assert_eq!(ops[0]["processingState"], json!("WAITING"));

    // By link, and the rolled-up summary.
    let by_link = alice.get("/pop/progress/agenda?bylinkId=link-1").await.all();
    assert_eq!(by_link.len(), 1);
    let summary = alice
        .post("/pop/progress/agenda/service", json!({"linkId": "link-1"}))
        .await;
    assert_eq!(summary.status, 200, "{}", summary.body);
    assert_eq!(summary.body["processingState"], json!("WAITING"));
    assert_eq!(summary.body["processingPercent"], json!(0.0));
    assert_eq!(summary.body["progressList"].as_array().unwrap().len(), 1);

    // Operation progress by its agenda progress.
    let op_rows = alice
        .get(&format!("/pop/progress/operation?byagendaProgressId={progress_id}"))
        .await
        .all();
    assert_eq!(op_rows.len(), 2);

    // An executor-style progress PUT cascades into the operation rows and
    // counts the completed attempt.
    let update = json!({"processingState": "COMPLETE", "processingStateMessage": "succeeded", "percentComplete": 100.0,
        "operationProgress": [{"operation": "first", "processingState": "COMPLETE", "processingStateMessage": "succeeded",
        "resultPayload": "{\"message\":\"hello\"}"}, {"operation": "extra"}]});
    let updated = alice
        .put(&format!("/pop/progress/agenda/{progress_id}"), update)
        .await
        .first();
    assert_eq!(updated["attemptsCompleted"], json!(1));
    assert_eq!(
        updated["externalId"],
        json!("ext-link-1"),
        "sparse update keeps other fields"
    );
    let ops = updated["operationProgress"].as_array().unwrap();
    assert_eq!(ops.len(), 3, "a new operation progress is created on PUT: {ops:?}");
    assert_eq!(ops[0]["resultPayload"], json!("{\"message\":\"hello\"}"));
    assert_eq!(ops[1]["processingState"], json!("WAITING"));

    // Rerun from scratch: everything back to WAITING; the extra row has no
    // operation in the agenda but is reset too.
    let rerun = alice
        .post(
            "/pop/agenda/service/rerun",
            json!({"agendaId": agenda_id, "params": ["resetAll"]}),
        )
        .await;
    assert_eq!(rerun.status, 200, "{}", rerun.body);
    assert_eq!(rerun.body["requeued"], json!(true));
    let progress = alice.get(&format!("/pop/progress/agenda/{progress_id}")).await.first();
    assert_eq!(progress["processingState"], json!("WAITING"));
    let first = &progress["operationProgress"][0];
    assert_eq!(first["processingState"], json!("WAITING"));
    assert_eq!(first["resultPayload"], json!("{}"));

    // Bad rerun parameters are named.
    alice
        .post(
            "/pop/agenda/service/rerun",
            json!({"agendaId": agenda_id, "params": ["operationsToReset=nope"]}),
        )
        .await
        .expect_error(422, "nope");

    // Delete the agenda.
    let deleted = alice.delete(&format!("/pop/agenda/{agenda_id}")).await.first();
    assert_eq!(deleted["id"], json!(agenda_id));
    alice
        .get(&format!("/pop/agenda/{agenda_id}"))
        .await
        .expect_error(404, &agenda_id);
}

#[tokio::test]
async fn do_not_run_and_insight_selection() {
    let workspace = Workspace::new();
    let server = workspace.start();
    setup_tenancy(&server).await;
    let admin = server.client(ADMIN);
    let alice = server.client(ALICE);
    // A second insight, preferred by name through defaultInsight.
    let insight = json!({"id": "insight-fast", "customerId": "acme", "title": "Fast lane", "resourcePoolId": "pool-1",
        "mappers": {"paramMap": ["lane=fast"]}});
    admin.post("/pop/insight", insight).await.first();
    let mut agenda = two_step_agenda("acme", "l2");
    agenda["params"] = json!({"lane": "fast", "defaultInsight": "FAST LANE", "doNotRun": true});
    let created = alice.post("/pop/agenda", agenda).await.first();
    assert_eq!(created["agendaInsight"]["insightId"], json!("insight-fast"));

    // No insight matches: 404 naming the reason.
    let unmatched = json!({"customerId": "acme", "operations": [{"name": "x", "type": "unknown-type"}]});
    alice
        .post("/pop/agenda", unmatched)
        .await
        .expect_error(404, "No available insights");

    // A customer that does not exist: 422.
    let orphan = json!({"customerId": "initech", "operations": [{"name": "x", "type": "sample"}]});
    admin
        .post("/pop/agenda", orphan)
        .await
        .expect_error(422, "Customer not found for customerId initech");
}
