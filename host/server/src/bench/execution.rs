//! Agendas run by the server: per-operation orchestration overhead with the
//! sample handler as a wasm component (`sampleWasm`) and as a process
//! (`sample`), as a chain (each operation
//! waits for the previous one: the latency of one hand-over) and as a
//! fan-out (all at once: the throughput), and a 10,000-operation agenda
//! accepted and run.
//!
//! Times are the server's own (`startedTime` → `completedTime` of the agenda
//! progress), so the client's polling and the scheduling interval do not
//! count; they include the handlers' own (tiny) work.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};

use super::Bench;

struct Run {
    run_ms: f64,
}

pub async fn measure(bench: &Bench) -> anyhow::Result<()> {
    for (label, op_type, chain_len, fan_len) in [("wasm", "sampleWasm", 200, 1000), ("process", "sample", 50, 200)] {
        let chain = run(bench, &agenda(op_type, chain_len, true)).await?;
        let fan = run(bench, &agenda(op_type, fan_len, false)).await?;
        println!(
            "{label:>7} handler: chain of {chain_len}: {:.3} ms per operation; fan-out of {fan_len}: {:.3} ms per operation",
            chain.run_ms / chain_len as f64,
            fan.run_ms / fan_len as f64,
        );
    }
    // Acceptance alone, a few times (parked with `doNotRun`), then one run.
    // The body is serialized once and the reply only read, not parsed, so
    // the figure is the server's (and the loopback's), not the client's JSON.
    let mut parked = agenda("sampleWasm", 10_000, false);
    parked["params"] = json!({"doNotRun": true});
    let body = serde_json::to_vec(&parked)?;
    let mut accepted = Vec::new();
    for _ in 0..ACCEPT_SAMPLES {
        let sent = Instant::now();
        bench.post_bytes("/pop/agenda", body.clone()).await?;
        accepted.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    accepted.sort_by(f64::total_cmp);
    let big = run(bench, &agenda("sampleWasm", 10_000, false)).await?;
    println!(
        "10,000-operation agenda (wasm fan-out): accepted in {:.0} ms (median of {ACCEPT_SAMPLES}; min {:.0}, max {:.0}), ran in {:.0} ms ({:.3} ms per operation)",
        accepted[accepted.len() / 2],
        accepted[0],
        accepted[accepted.len() - 1],
        big.run_ms,
        big.run_ms / 10_000.0
    );
    Ok(())
}

/// Submissions of the 10,000-operation agenda timed for acceptance.
const ACCEPT_SAMPLES: usize = 5;

/// `count` operations of `op_type`, each taking the previous one's output
/// (`chain`) or all independent.
pub(super) fn agenda(op_type: &str, count: usize, chain: bool) -> Value {
    let ops: Vec<Value> = (0..count)
        .map(|i| {
            let text = if chain && i > 0 {
                json!(format!("@<op{}.out::/text>", i - 1))
            } else {
                json!(format!("hello {i}"))
            };
            let payload = json!({"resultPayload": {"text": text}});
            json!({"name": format!("op{i}"), "type": op_type, "payload": payload})
        })
        .collect();
    json!({"customerId": "bench", "title": format!("{count} x {op_type}"), "operations": ops})
}

async fn run(bench: &Bench, agenda: &Value) -> anyhow::Result<Run> {
    let submitted = bench.post("/pop/agenda", agenda).await?;
    let progress_id = submitted["all"][0]["progressId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let fields = "processingState,processingStateMessage,startedTime,completedTime";
        let progress = bench
            .get(&format!("/pop/progress/agenda/{progress_id}?byfields={fields}"))
            .await?;
        let progress = &progress["all"][0];
        if progress["processingState"] == "COMPLETE" {
            if progress["processingStateMessage"] != "succeeded" {
                bail!("the benchmark agenda failed: {progress}");
            }
            let started = progress["startedTime"].as_i64().unwrap_or_default();
            let completed = progress["completedTime"].as_i64().unwrap_or_default();
            return Ok(Run {
                run_ms: (completed - started) as f64,
            });
        }
        if Instant::now() > deadline {
            bail!("the benchmark agenda did not complete in time: {progress}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
