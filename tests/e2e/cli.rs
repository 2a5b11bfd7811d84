//! The client commands (`pop submit`, `pop progress`, `pop ls`) as a user
//! runs them, against a real server that runs the agendas.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;

use crate::execution::fan_out_fan_in;
use crate::harness::*;

fn pop(server: &Server, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pop"))
        .args(args)
        .env("POP_SERVER", &server.base)
        .env("POP_TOKEN", token)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run pop")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_watch_progress_and_ls() {
    let workspace = Workspace::new();
    let server = workspace.start_running(&Options::running());
    setup_tenancy(&server).await;
    let file = workspace.dir.path().join("agenda.json");
    std::fs::write(&file, fan_out_fan_in("acme").to_string()).unwrap();
    let file = file.display().to_string();

    let submitted = tokio::task::block_in_place(|| pop(&server, ALICE, &["submit", &file, "--watch"]));
    let out = text(&submitted);
    assert!(submitted.status.success(), "{out}");
    assert!(
        out.contains("agenda ") && out.contains(" submitted (progress "),
        "{out}"
    );
    assert!(out.contains("COMPLETE succeeded"), "{out}");
    assert!(out.contains(r#"join → {"pair":["alpha","beta"],"count":2}"#), "{out}");
    let agenda_id = out
        .split_whitespace()
        .nth(1)
        .expect("agenda id after 'agenda'")
        .to_string();

    let progress = tokio::task::block_in_place(|| pop(&server, ALICE, &["progress", &agenda_id]));
    let out = text(&progress);
    assert!(progress.status.success(), "{out}");
    assert!(out.lines().next().unwrap().starts_with("agenda "), "{out}");
    for name in ["fetch", "left", "right", "join"] {
        assert!(
            out.lines().any(|l| l.starts_with(name) && l.contains("100.0%")),
            "{name}: {out}"
        );
    }

    let listed = tokio::task::block_in_place(|| pop(&server, ALICE, &["ls"]));
    let out = text(&listed);
    assert!(listed.status.success(), "{out}");
    assert!(out.contains(&agenda_id) && out.contains("COMPLETE succeeded"), "{out}");
    // Another customer's agendas are not listed.
    let other = tokio::task::block_in_place(|| pop(&server, BOB, &["ls"]));
    assert!(!text(&other).contains(&agenda_id), "{}", text(&other));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_watched_agenda_exits_non_zero_with_its_diagnostics() {
    let workspace = Workspace::new();
    let server = workspace.start_running(&Options::running());
    setup_tenancy(&server).await;
    let agenda = json!({"customerId": "acme", "title": "boom", "operations": [
        {"name": "explode", "type": "sample", "payload": {"actions": [
            {"action": "exception", "paramsMap": {"exceptionMessage": "kaboom"}}]}}]});
    let file = workspace.dir.path().join("boom.json");
    std::fs::write(&file, agenda.to_string()).unwrap();
    let file = file.display().to_string();
    let watched = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking({
            let base = server.base.clone();
            move || {
                Command::new(env!("CARGO_BIN_EXE_pop"))
                    .args(["submit", &file, "--watch", "--server", &base, "--token", ALICE])
                    .output()
                    .expect("run pop")
            }
        }),
    )
    .await
    .expect("watch ends")
    .unwrap();
    let out = text(&watched);
    assert_eq!(watched.status.code(), Some(1), "{out}");
    assert!(out.contains("COMPLETE failed"), "{out}");
    assert!(out.contains("diagnostic: Operation explode failed"), "{out}");
    assert!(out.contains("kaboom"), "the handler's log tail: {out}");

    // Bad input is reported, not a panic.
    let missing = tokio::task::block_in_place(|| pop(&server, ALICE, &["submit", "/nonexistent.json"]));
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("cannot read /nonexistent.json"),
        "{}",
        text(&missing)
    );
    let bad = workspace.dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"customerId": "acme", "operations": []}"#).unwrap();
    let refused = tokio::task::block_in_place(|| pop(&server, ALICE, &["submit", &bad.display().to_string()]));
    assert!(!refused.status.success());
    assert!(text(&refused).contains("422"), "{}", text(&refused));
}

/// `pop job run` runs one background job on the server and prints what it
/// did; only super users may, and an unknown job is refused before any call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_run_prints_what_the_job_did() {
    let workspace = Workspace::new();
    let server = workspace.start_running(&Options::running());
    setup_tenancy(&server).await;
    for job in ["retry", "reclaim", "reap"] {
        let run = tokio::task::block_in_place(|| pop(&server, ADMIN, &["job", "run", job, "--log-only"]));
        let out = text(&run);
        assert!(run.status.success(), "{out}");
        assert!(
            out.contains(&format!("{job} (log only: nothing changed): examined ")),
            "{out}"
        );
    }
    let refused = tokio::task::block_in_place(|| pop(&server, ALICE, &["job", "run", "reap"]));
    assert!(!refused.status.success());
    assert!(text(&refused).contains("403"), "{}", text(&refused));
    let unknown = tokio::task::block_in_place(|| pop(&server, ADMIN, &["job", "run", "vacuum"]));
    assert!(!unknown.status.success());
    assert!(text(&unknown).contains("invalid value 'vacuum'"), "{}", text(&unknown));
}
