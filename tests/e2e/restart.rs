//! Acknowledged writes survive a crash (SIGKILL) and a clean restart.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn acknowledged_writes_survive_kill_and_restart() {
    let workspace = Workspace::new();
    let server = workspace.start();
    setup_tenancy(&server).await;
    let alice = server.client(ALICE);
    let mut agenda_ids = Vec::new();
    // Concurrent submissions, all acknowledged before the crash.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = server.client(ALICE);
        tasks.push(tokio::spawn(async move {
            client
                .post("/pop/agenda", two_step_agenda("acme", &format!("r{i}")))
                .await
        }));
    }
    for task in tasks {
        agenda_ids.push(task.await.unwrap().first()["id"].as_str().unwrap().to_string());
    }
    let template = json!({"id": "acme:t1", "customerId": "acme", "title": "kept", "agenda": {"operations": []}});
    alice.post("/pop/agendatemplate", template).await.first();
    alice
        .put("/pop/agendatemplate/acme:t1", json!({"title": "kept-updated"}))
        .await
        .first();
    let (data_dir, tokens) = (server.data_dir.clone(), server.tokens.clone());
    server.kill();

    let server = Server::start(&data_dir, &tokens);
    let alice = server.client(ALICE);
    for id in &agenda_ids {
        let agenda = alice.get(&format!("/pop/agenda/{id}")).await.first();
        let progress = alice
            .get(&format!(
                "/pop/progress/agenda/{}",
                agenda["progressId"].as_str().unwrap()
            ))
            .await
            .first();
        assert_eq!(progress["operationProgress"].as_array().unwrap().len(), 2);
    }
    assert_eq!(alice.get("/pop/agenda?bycount=true").await.body["count"], json!(40));
    assert_eq!(
        alice.get("/pop/agendatemplate/acme:t1").await.first()["title"],
        json!("kept-updated")
    );

    // A clean shutdown on SIGTERM exits 0 and keeps everything too.
    alice.delete(&format!("/pop/agenda/{}", agenda_ids[0])).await.first();
    let status = server.terminate();
    assert!(status.success(), "pop serve exited with {status}");
    let server = Server::start(&data_dir, &tokens);
    assert_eq!(
        server.client(ALICE).get("/pop/agenda?bycount=true").await.body["count"],
        json!(39)
    );
}
