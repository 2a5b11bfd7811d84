//! Reruns are conditional transitions (issue 12, item 0): of concurrent
//! reruns of one attempt exactly one takes effect, the others answer 409,
//! and no agenda ever runs in two executors at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use crate::execution::{global_insight, wait_complete};
use crate::harness::*;

const AGENDAS: usize = 50;
const RERUNS_EACH: usize = 20;

/// A process handler that logs `$AGENDA_ID` per run and fails until
/// `ready` exists; then it succeeds once `release` exists too, so that the
/// rerun attempts are still running while the reruns are answered.
fn flaky_registry(workspace: &Workspace, ready: &std::path::Path, release: &std::path::Path, runs: &std::path::Path) {
    let script = format!(
        "echo \"$AGENDA_ID\" >> '{runs}'; if [ ! -f '{ready}' ]; then echo 'not yet' >&2; exit 3; fi; \
         while [ ! -f '{release}' ]; do sleep 0.05; done; echo HandlerComplete",
        runs = runs.display(),
        ready = ready.display(),
        release = release.display()
    );
    let registry = json!({
        "baseProcessConfig": {"timeoutMs": 60000, "stdoutTimeoutMs": 60000, "endOfLogIdentifier": "HandlerComplete"},
        "flaky": {"processConfig": {"program": "sh", "args": ["-c", script]}}
    });
    std::fs::create_dir_all(workspace.data_dir()).unwrap();
    std::fs::write(workspace.data_dir().join("registry.json"), registry.to_string()).unwrap();
}

#[tokio::test]
async fn of_twenty_concurrent_reruns_of_a_failed_agenda_exactly_one_takes_effect() {
    let workspace = Workspace::new();
    let marker = workspace.dir.path().join("ready");
    let release = workspace.dir.path().join("release");
    let runs_log = workspace.dir.path().join("runs");
    flaky_registry(&workspace, &marker, &release, &runs_log);
    let server = workspace.start_running(&Options::running());
    setup_tenancy(&server).await;
    global_insight(&server, "insight-reruns", &["flaky"]).await;
    let alice = server.client(ALICE);

    let mut agendas = Vec::new();
    for n in 0..AGENDAS {
        let agenda = json!({"customerId": "acme", "title": format!("rerun-{n}"), "operations": [
            {"name": "call", "type": "flaky", "payload": {}}]});
        let agenda = alice.post("/pop/agenda", agenda).await.first();
        agendas.push((
            agenda["id"].as_str().unwrap().to_string(),
            agenda["progressId"].as_str().unwrap().to_string(),
        ));
    }
    for (_, progress_id) in &agendas {
        let failed = wait_complete(&alice, progress_id, Duration::from_secs(120)).await;
        assert_eq!(failed["processingStateMessage"], json!("failed"), "{failed}");
    }

    // Now the handler succeeds; every agenda gets 20 reruns at once.
    std::fs::write(&marker, "").unwrap();
    let mut reruns = Vec::new();
    for (agenda_id, _) in &agendas {
        for _ in 0..RERUNS_EACH {
            let alice = alice.clone();
            let agenda_id = agenda_id.clone();
            reruns.push(async move {
                let body = json!({"agendaId": agenda_id, "params": ["continue"]});
                let reply = alice.post("/pop/agenda/service/rerun", body).await;
                (agenda_id, reply)
            });
        }
    }
    let answers = join_all(reruns).await;
    let mut taken: HashMap<String, usize> = HashMap::new();
    for (agenda_id, reply) in &answers {
        match reply.status.as_u16() {
            200 => *taken.entry(agenda_id.clone()).or_default() += 1,
            409 => {
                let description = reply.body["errorResponse"]["description"].as_str().unwrap_or_default();
                assert!(
                    description.contains("already being rerun: attempt 2"),
                    "a refused rerun names the attempt under way: {}",
                    reply.body
                );
            }
            other => panic!("a rerun answered {other}: {}", reply.body),
        }
    }
    for (agenda_id, _) in &agendas {
        assert_eq!(
            taken.get(agenda_id),
            Some(&1),
            "agenda {agenda_id}: reruns that took effect"
        );
    }

    std::fs::write(&release, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    for (agenda_id, progress_id) in &agendas {
        let done = loop {
            let progress = wait_complete(&alice, progress_id, Duration::from_secs(180)).await;
            if progress["attemptsCompleted"] == json!(2) {
                break progress;
            }
            assert!(
                Instant::now() < deadline,
                "agenda {agenda_id}: no second attempt: {progress}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(done["processingStateMessage"], json!("succeeded"), "{done}");
    }
    // Settle: nothing runs any more, then count the handler runs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = std::fs::read_to_string(&runs_log).unwrap();
    let mut runs: HashMap<&str, usize> = HashMap::new();
    for line in log.lines() {
        *runs.entry(line).or_default() += 1;
    }
    for (agenda_id, progress_id) in &agendas {
        assert_eq!(
            runs.get(agenda_id.as_str()),
            Some(&2),
            "agenda {agenda_id}: one failed run and one rerun, never two at once"
        );
        let progress = alice.get(&format!("/pop/progress/agenda/{progress_id}")).await.first();
        assert_eq!(progress["attemptsCompleted"], json!(2), "{progress}");
    }
}
