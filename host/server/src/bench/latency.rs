//! One small agenda from POST to COMPLETE on an idle server with the
//! default settings (a scheduling interval of 1 s, so only the wake-ups on
//! submission and release make it fast), one agenda at a time; and what
//! the idle server costs in CPU meanwhile.
//!
//! Latency is the server's own (`addedTime` of the progress →
//! `completedTime`) and, beside it, what the client saw (POST sent →
//! COMPLETE read, polling every millisecond).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::{Bench, percentile};
use crate::cli::BenchOptions;

const SAMPLES: usize = 60;
/// Quiet time between agendas, so each finds the server idle.
const PAUSE: Duration = Duration::from_millis(30);
/// How long the idle server's CPU time is measured.
const IDLE: Duration = Duration::from_secs(10);

/// What one server showed.
struct Figures {
    server_p50: f64,
    server_p99: f64,
    client_p50: f64,
    client_p99: f64,
    idle_cpu_ms_per_s: f64,
}

pub async fn measure(options: &BenchOptions) -> anyhow::Result<()> {
    let current = on(&options.server_binary()?).await?;
    print(&current, "");
    if let Some(baseline) = &options.baseline {
        let old = on(baseline).await?;
        print(&old, " (baseline)");
        println!(
            "latency: this build against the baseline, measured in one run: server-side p50 {:.2} ×, p99 {:.2} ×; \
             client-side p50 {:.2} ×; idle CPU {:.2} ×",
            current.server_p50 / old.server_p50,
            current.server_p99 / old.server_p99,
            current.client_p50 / old.client_p50,
            current.idle_cpu_ms_per_s / old.idle_cpu_ms_per_s.max(f64::MIN_POSITIVE),
        );
    }
    Ok(())
}

fn print(figures: &Figures, label: &str) {
    println!(
        "latency{label}: one 1-operation agenda POST → COMPLETE, server-side p50 {:.1} ms, p99 {:.1} ms; client-side \
         p50 {:.1} ms, p99 {:.1} ms (goal p50 ≤ 20 ms); idle server CPU {:.1} ms per s",
        figures.server_p50, figures.server_p99, figures.client_p50, figures.client_p99, figures.idle_cpu_ms_per_s,
    );
}

/// Measure the server of the `pop` binary `server`.
async fn on(server: &std::path::Path) -> anyhow::Result<Figures> {
    // The server as a user starts it: the default scheduling interval.
    let bench = Bench::start(server, "latency", &[("POP_SCHEDULE_INTERVAL_MS", "1000")]).await?;
    let outcome = run(&bench).await;
    bench.stop().await;
    outcome
}

async fn run(bench: &Bench) -> anyhow::Result<Figures> {
    bench.setup().await?;
    let agenda = json!({"customerId": "bench", "title": "latency", "operations": [
        {"name": "only", "type": "sampleWasm", "payload": {"resultPayload": {"ok": true}}}]});
    // Warm up: the first agenda compiles and instantiates the handler.
    complete_one(bench, &agenda).await?;
    let mut server = Vec::with_capacity(SAMPLES);
    let mut client = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        tokio::time::sleep(PAUSE).await;
        let (server_ms, client_ms) = complete_one(bench, &agenda).await?;
        server.push(server_ms);
        client.push(client_ms);
    }
    server.sort_by(f64::total_cmp);
    client.sort_by(f64::total_cmp);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = bench.server_cpu_ms()?;
    tokio::time::sleep(IDLE).await;
    let idle_cpu_ms_per_s = (bench.server_cpu_ms()? - before) / IDLE.as_secs_f64();
    Ok(Figures {
        server_p50: percentile(&server, 0.50),
        server_p99: percentile(&server, 0.99),
        client_p50: percentile(&client, 0.50),
        client_p99: percentile(&client, 0.99),
        idle_cpu_ms_per_s,
    })
}

/// Submit `agenda` and wait for it to complete: (server-side, client-side)
/// latency in ms.
pub(super) async fn complete_one(bench: &Bench, agenda: &Value) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let submitted = bench.post("/pop/agenda", agenda).await?;
    let id = submitted["all"][0]["progressId"]
        .as_str()
        .context("no progressId")?
        .to_owned();
    let deadline = started + Duration::from_secs(30);
    let fields = "processingState,processingStateMessage,addedTime,completedTime";
    loop {
        let reply = bench
            .get(&format!("/pop/progress/agenda/{id}?byfields={fields}"))
            .await?;
        let progress = &reply["all"][0];
        if progress["processingState"] == "COMPLETE" {
            let client_ms = started.elapsed().as_secs_f64() * 1000.0;
            if progress["processingStateMessage"] != "succeeded" {
                bail!("a latency agenda failed: {progress}");
            }
            let added = progress["addedTime"].as_i64().unwrap_or_default();
            let completed = progress["completedTime"].as_i64().unwrap_or_default();
            return Ok(((completed - added) as f64, client_ms));
        }
        if Instant::now() > deadline {
            bail!("a latency agenda did not complete in 30 s: {progress}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
