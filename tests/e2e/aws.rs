//! `pop serve --backend aws` on moto's DynamoDB and S3 through the real
//! AWS SDK (feature `aws`, on in `scripts/test.sh`), with the harness and
//! the agendas of the embedded tests: the README's fan-out/fan-in agenda
//! runs to `succeeded` and stays invisible to other tenants, an agenda
//! larger than one DynamoDB item is kept whole (its operations in S3), and
//! a `kill -9` loses no agenda.

use std::time::{Duration, Instant};

use pop_test_moto::{Moto, unique};
use serde_json::{Value, json};

use crate::execution::{fan_out_fan_in, result_of, wait_complete};
use crate::harness::*;

/// `options` on the AWS backend: moto's endpoint, tables and bucket of
/// the test's own, created at start.
fn on_aws(mut options: Options, moto: &Moto, prefix: &str) -> Options {
    options.env.extend(moto.env());
    options
        .env("POP_BACKEND", "aws")
        .env("POP_AWS_PREFIX", prefix)
        .env("POP_AWS_CREATE_RESOURCES", "true")
}

#[tokio::test]
async fn the_fan_out_fan_in_agenda_runs_on_dynamodb_and_s3() {
    let moto = Moto::start();
    let workspace = Workspace::new();
    let server = workspace.start_running(&on_aws(Options::running(), &moto, &unique("e2e-")));
    setup_tenancy(&server).await;
    let alice = server.client(ALICE);
    let agenda = alice.post("/pop/agenda", fan_out_fan_in("acme")).await.first();
    let progress_id = agenda["progressId"].as_str().unwrap();
    let done = wait_complete(&alice, progress_id, Duration::from_secs(60)).await;
    assert_eq!(done["processingStateMessage"], json!("succeeded"), "{done}");
    assert_eq!(result_of(&done, "join"), json!({"pair": ["alpha", "beta"], "count": 2}));
    // Another tenant is told nothing exists.
    let hidden = server
        .client(BOB)
        .get(&format!("/pop/progress/agenda/{progress_id}"))
        .await;
    assert_eq!(hidden.status.as_u16(), 404, "{}", hidden.body);

    // 1,100 operations with 400-byte payloads: over one 400 KB item.
    let operations: Vec<Value> = (0..1_100)
        .map(|i| json!({"name": format!("op{i}"), "type": "sample", "payload": {"text": "x".repeat(400)}}))
        .collect();
    let big = json!({"customerId": "acme", "title": "big", "params": {"doNotRun": true}, "operations": operations});
    let stored = alice.post("/pop/agenda", big).await.first();
    let id = stored["id"].as_str().unwrap();
    let read = alice.get(&format!("/pop/agenda/{id}")).await.first();
    assert_eq!(read["operations"].as_array().unwrap().len(), 1_100);
    assert_eq!(read["operations"][1_099]["payload"]["text"], json!("x".repeat(400)));
}

#[tokio::test]
async fn a_crash_loses_no_agenda_on_aws() {
    const AGENDAS: usize = 20;
    let moto = Moto::start();
    let workspace = Workspace::new();
    let options = on_aws(Options::running(), &moto, &unique("crash-"));
    let server = workspace.start_running(&options);
    setup_tenancy(&server).await;
    let alice = server.client(ALICE);
    let step = |name: &str, input: &str| {
        json!({"name": name, "type": "sample", "payload": {
            "actions": [{"action": "log", "paramsMap": {"logMessage": name, "sleepMilliseconds": 100}}],
            "resultPayload": {"from": name, "input": input}}})
    };
    let mut progress_ids = Vec::new();
    for i in 0..AGENDAS {
        let agenda = json!({"customerId": "acme", "linkId": "aws-crash", "title": format!("crash {i}"),
            "operations": [step("one", "start"), step("two", "@<one.out::/from>")]});
        progress_ids.push(
            alice.post("/pop/agenda", agenda).await.first()["progressId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let all = alice
            .get("/pop/progress/agenda?bylinkId=aws-crash&bylimit=100")
            .await
            .all();
        let complete = all.iter().filter(|p| p["processingState"] == json!("COMPLETE")).count();
        if complete >= 2 {
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
        let done = wait_complete(&alice, progress_id, Duration::from_secs(120)).await;
        assert_eq!(done["processingStateMessage"], json!("succeeded"), "{done}");
    }
}
