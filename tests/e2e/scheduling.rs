//! The scheduler loop: queues are topped up from the backlog by the
//! insight's scheduler plugin, and the plugin's state (the round-robin
//! cursor) is persisted by the host across decisions and restarts.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

/// Wait for the one queued agenda of `insight`, take it out of the queue,
/// and return its customer.
async fn take_next(admin: &Client, insight: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let queued = admin.get(&format!("/pop/queue?byinsightId={insight}")).await.all();
        assert!(queued.len() <= 1, "queueSize 1 is respected: {queued:?}");
        if let Some(entry) = queued.first() {
            assert!(
                entry["releasedBy"]
                    .as_str()
                    .unwrap()
                    .starts_with("pop:scheduler:RoundRobin@"),
                "{entry}"
            );
            admin
                .delete(&format!("/pop/queue/{}", entry["id"].as_str().unwrap()))
                .await
                .first();
            return entry["customerId"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "nothing was queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn round_robin_cursor_survives_decisions_and_restarts() {
    let workspace = Workspace::new();
    let data = workspace.dir.path().join("data");
    let tokens = workspace.dir.path().join("tokens.json");
    let server = workspace.start();
    setup_tenancy(&server).await;
    let admin = server.client(ADMIN);
    let insight = json!({"id": "rr", "customerId": "ops", "title": "Fair queue", "resourcePoolId": "pool-1",
        "isGlobal": true, "queueSize": 1, "schedulingAlgorithm": "RoundRobin", "mappers": {"operationType": ["rr-work"]}});
    admin.post("/pop/insight", insight).await.first();
    for (token, customer) in [(ALICE, "acme"), (BOB, "globex")] {
        for i in 0..3 {
            let agenda =
                json!({"customerId": customer, "operations": [{"name": "w", "type": "rr-work", "payload": {"i": i}}]});
            assert_eq!(
                server.client(token).post("/pop/agenda", agenda).await.first()["agendaInsight"]["insightId"],
                json!("rr")
            );
        }
    }
    drop(server);
    let server = Server::start_scheduling_every(&data, &tokens, Duration::from_millis(50));
    let admin = server.client(ADMIN);
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(take_next(&admin, "rr").await);
    }
    // Restart mid-cycle: the cursor is in the store, not in memory.
    let status = server.terminate();
    assert!(status.success());
    let server = Server::start_scheduling_every(&data, &tokens, Duration::from_millis(50));
    let admin = server.client(ADMIN);
    for _ in 0..3 {
        order.push(take_next(&admin, "rr").await);
    }
    assert_eq!(
        order,
        ["acme", "globex", "acme", "globex", "acme", "globex"],
        "one turn each, across the restart"
    );
    let backlog: Vec<Value> = admin.get("/pop/queue?byinsightId=rr").await.all();
    assert!(backlog.is_empty());
}
