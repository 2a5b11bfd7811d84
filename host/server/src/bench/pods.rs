//! Operations as Kubernetes pods (issue 13), on the fake cluster
//! (`pop-kube-fake` as its own process, its kubelet running each pod's
//! container as a local process) through `pop serve --kubernetes` and the
//! real `kube` client:
//!
//! * the orchestration overhead per pod operation: a chain of sample
//!   operations, each its own pod, from the agenda's start to its end,
//!   less the handlers' own time (their reported `startedTime` →
//!   `completedTime`), per operation — beside the same chain as local
//!   processes, measured in the same run;
//! * pods per second: a fan-out whose operations all start at once,
//!   create → Succeeded → result read, per second.
//!
//! The fake API server answers faster than a real one and its kubelet
//! starts a process instead of a container, so the figures are POP's own
//! share (watch, annotations, the executor), not a cluster's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::Bench;
use super::execution::agenda;
use crate::cli::BenchOptions;

const CHAIN: usize = 20;
const FAN_OUT: usize = 100;

pub async fn measure(options: &BenchOptions) -> anyhow::Result<()> {
    let server = options.server_binary()?;
    let dir = std::env::temp_dir().join(format!("pop-bench-{}-cluster", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (cluster, kubeconfig) = start_cluster(&server, &dir).await?;
    let kubeconfig = kubeconfig.display().to_string();
    let env = [
        ("KUBECONFIG", kubeconfig.as_str()),
        ("POP_KUBERNETES", "true"),
        ("POP_KUBERNETES_NAMESPACE", "pop"),
    ];
    let bench = Bench::start(&server, "pods", &env).await?;
    let outcome = run(&bench).await;
    bench.stop().await;
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn run(bench: &Bench) -> anyhow::Result<()> {
    bench.setup().await?;
    bench
        .post(
            "/pop/insight",
            &json!({"id": "bench-pods", "customerId": "bench", "title": "bench pods", "resourcePoolId": "bench-pool",
                    "queueSize": 100, "executionLimit": 8, "mappers": {"operationType": ["samplePod"]}}),
        )
        .await?;
    // Warm-up: the first pod pays for the watch connections.
    complete(bench, &agenda("samplePod", 2, true)).await?;
    let process = complete(bench, &agenda("sample", CHAIN, true)).await?;
    let pods = complete(bench, &agenda("samplePod", CHAIN, true)).await?;
    let per_op = |run: &Completed| run.run_ms / CHAIN as f64;
    let overhead = |run: &Completed| (run.run_ms - run.handlers_ms) / CHAIN as f64;
    println!(
        "pods: chain of {CHAIN} pod operations on the fake cluster: {:.1} ms per operation, of which the handler's own {:.1} ms; \
         orchestration overhead {:.1} ms per pod operation (goal ≤ 50 ms); the same chain as local processes: {:.1} ms per \
         operation, overhead {:.1} ms; pod / process overhead {:.2} ×",
        per_op(&pods),
        pods.handlers_ms / CHAIN as f64,
        overhead(&pods),
        per_op(&process),
        overhead(&process),
        overhead(&pods) / overhead(&process).max(f64::MIN_POSITIVE),
    );
    let fan = complete(bench, &agenda("samplePod", FAN_OUT, false)).await?;
    println!(
        "pods: fan-out of {FAN_OUT} pod operations (50 at once): {:.0} ms, {:.1} pods per second created, run and read \
         through the launcher (anchor: ~130 pods/s capped a scheduler on a real API server in YuniKorn's KWOK test)",
        fan.run_ms,
        FAN_OUT as f64 / (fan.run_ms / 1e3),
    );
    Ok(())
}

/// The fake cluster as a process, its `pop-sample:1.0.0` image the sample
/// handler next to `server`; its kubeconfig.
async fn start_cluster(server: &Path, dir: &Path) -> anyhow::Result<(Child, PathBuf)> {
    let sibling = |name: &str| server.with_file_name(name);
    let mut child = Command::new(sibling("pop-kube-fake"))
        .args(["--work-dir"])
        .arg(dir)
        .args(["--namespace", "pop", "--image"])
        .arg(format!("pop-sample:1.0.0={}", sibling("pop-sample-handler").display()))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start pop-kube-fake (build it with `--features kubernetes`, next to pop)")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await?? {
        if let Some(path) = line.split("KUBECONFIG=").nth(1) {
            return Ok((child, PathBuf::from(path.trim_end_matches(')'))));
        }
    }
    bail!("pop-kube-fake did not report its kubeconfig")
}

struct Completed {
    /// The agenda's `startedTime` → `completedTime`.
    run_ms: f64,
    /// The operations' own `startedTime` → `completedTime`, summed.
    handlers_ms: f64,
}

async fn complete(bench: &Bench, agenda: &Value) -> anyhow::Result<Completed> {
    let submitted = bench.post("/pop/agenda", agenda).await?;
    let progress_id = submitted["all"][0]["progressId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let progress = bench.get(&format!("/pop/progress/agenda/{progress_id}")).await?;
        let progress = &progress["all"][0];
        if progress["processingState"] == "COMPLETE" {
            if progress["processingStateMessage"] != "succeeded" {
                bail!("the benchmark agenda failed: {progress}");
            }
            let span = |p: &Value| p["completedTime"].as_i64().unwrap_or(0) - p["startedTime"].as_i64().unwrap_or(0);
            let handlers: i64 = progress["operationProgress"]
                .as_array()
                .into_iter()
                .flatten()
                .map(span)
                .sum();
            return Ok(Completed {
                run_ms: span(progress) as f64,
                handlers_ms: handlers as f64,
            });
        }
        if Instant::now() > deadline {
            bail!("the benchmark agenda did not complete in time");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
