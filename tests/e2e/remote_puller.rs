//! `pop puller` in its own process, in-process mode: a center's puller
//! claims its insight's agendas from the server over HTTP with a token
//! scoped to that insight, runs them with its own local handlers, and
//! reports through the ResourcePool service; the server runs none of them
//! itself (their resource pool is `external`), and the puller never runs
//! more than the insight's `executionLimit` at once.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::execution::{result_of, wait_complete};
use crate::harness::*;

#[tokio::test]
async fn a_remote_puller_runs_an_external_pools_agendas_in_its_own_process() {
    const AGENDAS: usize = 5;
    const LIMIT: u64 = 2;
    let workspace = Workspace::new();
    let server = workspace.start_running(&Options::running());
    setup_tenancy(&server).await;
    let admin = server.client(ADMIN);
    let pool = json!({"id": "pool-remote", "customerId": "ops", "title": "a center", "external": true});
    admin.post("/pop/resourcepool", pool).await.first();
    let customer = json!({"customerId": "initech", "title": "initech", "resourcePoolId": "pool-remote"});
    admin.post("/pop/customer", customer).await.first();
    let insight = json!({"id": "insight-remote", "customerId": "ops", "title": "remote", "resourcePoolId": "pool-remote",
        "isGlobal": true, "executionLimit": LIMIT, "queueSize": 10, "mappers": {"operationType": ["sample"]}});
    admin.post("/pop/insight", insight).await.first();

    let max = server.client(MULTI);
    let step = |name: &str, input: Value| {
        json!({"name": name, "type": "sample", "payload": {
            "actions": [{"action": "log", "paramsMap": {"logMessage": name, "sleepMilliseconds": 300}}],
            "resultPayload": {"from": name, "input": input}}})
    };
    let mut progress_ids = Vec::new();
    for i in 0..AGENDAS {
        let agenda = json!({"customerId": "initech", "title": format!("remote {i}"), "operations": [
            step("one", json!(i)), step("two", json!("@<one.out::/input>"))]});
        let agenda = max.post("/pop/agenda", agenda).await.first();
        progress_ids.push(agenda["progressId"].as_str().unwrap().to_owned());
    }
    // The server itself runs nothing of the external pool.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for progress_id in &progress_ids {
        let progress = max.get(&format!("/pop/progress/agenda/{progress_id}")).await.first();
        assert_eq!(progress["processingState"], json!("WAITING"), "{progress}");
    }

    let health = format!("127.0.0.1:{}", free_port());
    let runs = workspace.dir.path().join("puller-runs");
    let _puller = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_pop"))
            .args([
                "puller",
                "--insight",
                "insight-remote",
                "--poll-ms",
                "100",
                "--health-listen",
                &health,
            ])
            .env("POP_SERVER", &server.base)
            .env("POP_TOKEN", PULLER)
            .env("POP_RUNS_DIR", &runs)
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let mut most_running = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(reply) = http.get(format!("http://{health}/healthz")).send().await
            && let Ok(body) = reply.json::<Value>().await
        {
            assert_eq!(body["insightId"], json!("insight-remote"));
            let running = body["running"].as_u64().unwrap_or(0);
            assert!(running <= LIMIT, "{running} agendas at once; the limit is {LIMIT}");
            most_running = most_running.max(running);
        }
        let all = max.get("/pop/progress/agenda?bylimit=100").await.all();
        let done = all
            .iter()
            .filter(|p| progress_ids.iter().any(|id| p["id"] == json!(id)))
            .filter(|p| p["processingState"] == json!("COMPLETE"))
            .count();
        if done == AGENDAS {
            break;
        }
        assert!(Instant::now() < deadline, "the remote puller does not get through");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(most_running >= 1, "the health endpoint showed the runs");
    for (i, progress_id) in progress_ids.iter().enumerate() {
        let done = wait_complete(&max, progress_id, Duration::from_secs(10)).await;
        assert_eq!(done["processingStateMessage"], json!("succeeded"), "{done}");
        assert_eq!(result_of(&done, "two"), json!({"from": "two", "input": i}));
    }
    let queued = admin.get("/pop/queue").await.all();
    assert!(queued.is_empty(), "every delivery was acknowledged: {queued:?}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
