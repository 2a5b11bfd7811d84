//! One tenant's failing plugin must not slow another tenant down: submit →
//! complete latency of tenant `calm`'s agendas on its own insight, measured
//! twice in one run — alone, then while tenant `hostile`'s insight runs a
//! scheduler that spins into its budget on every real call and `hostile`
//! keeps submitting. Latency is the server's own (`addedTime` of the
//! progress → `completedTime`), so client polling does not count.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::{Bench, percentile};

/// Agendas of `calm` measured per phase, one submitted every [`SPACING`].
const SAMPLES: usize = 80;
const SPACING: Duration = Duration::from_millis(25);

pub async fn measure(bench: &Bench) -> anyhow::Result<()> {
    for customer in ["calm", "hostile"] {
        bench
            .post(
                "/pop/customer",
                &json!({"customerId": customer, "title": customer, "resourcePoolId": "bench-pool"}),
            )
            .await?;
        bench
            .post(
                "/pop/insight",
                &json!({"id": format!("{customer}:q"), "customerId": customer, "title": customer,
                    "resourcePoolId": "bench-pool", "queueSize": 10, "executionLimit": 8,
                    "schedulingAlgorithm": "FirstInFirstOut", "mappers": {"operationType": ["sampleWasm"]}}),
            )
            .await?;
    }
    let alone = latencies(bench, None).await?;

    let upload = bench
        .http
        .post(format!(
            "{}/pop/plugin?kind=scheduler&name=spinner&version=1&customerId=hostile&activate=true",
            bench.base
        ))
        .bearer_auth(&bench.token)
        .header(reqwest::header::CONTENT_TYPE, "application/wasm")
        .body(pop_builtin_plugins::fixtures::SPIN_WHEN_BUSY)
        .send()
        .await?;
    if !upload.status().is_success() {
        bail!("uploading the hostile scheduler failed: {}", upload.text().await?);
    }
    bench
        .put("/pop/insight/hostile:q", &json!({"schedulingAlgorithm": "spinner"}))
        .await?;
    let beside = latencies(bench, Some("hostile")).await?;

    let (p50a, p99a) = (percentile(&alone, 0.50), percentile(&alone, 0.99));
    let (p50b, p99b) = (percentile(&beside, 0.50), percentile(&beside, 0.99));
    println!(
        "isolation: calm's submit → complete alone p50 {p50a:.1} ms, p99 {p99a:.1} ms; beside a tenant whose scheduler \
         fails every call p50 {p50b:.1} ms, p99 {p99b:.1} ms; ratio p50 {:.2} ×, p99 {:.2} × (goal ≤ 1.2 ×)",
        p50b / p50a,
        p99b / p99a
    );
    Ok(())
}

/// Submit [`SAMPLES`] one-operation agendas of `calm` (and, when given, as
/// many of `noisy` between them) and return calm's latencies in ms.
async fn latencies(bench: &Bench, noisy: Option<&str>) -> anyhow::Result<Vec<f64>> {
    let agenda = |customer: &str| {
        json!({"customerId": customer, "title": "isolation", "operations": [
            {"name": "only", "type": "sampleWasm", "payload": {"resultPayload": {"ok": true}}}]})
    };
    let mut progress_ids = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let submitted = bench.post("/pop/agenda", &agenda("calm")).await?;
        let id = submitted["all"][0]["progressId"].as_str().context("no progressId")?;
        progress_ids.push(id.to_string());
        if let Some(noisy) = noisy {
            bench.post("/pop/agenda", &agenda(noisy)).await?;
        }
        tokio::time::sleep(SPACING.saturating_sub(started.elapsed())).await;
    }
    let mut latencies = Vec::with_capacity(SAMPLES);
    for id in progress_ids {
        latencies.push(completion_ms(bench, &id).await?);
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

/// `completedTime − addedTime` of a progress, once it is complete.
async fn completion_ms(bench: &Bench, progress_id: &str) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let fields = "processingState,processingStateMessage,addedTime,completedTime";
        let reply = bench
            .get(&format!("/pop/progress/agenda/{progress_id}?byfields={fields}"))
            .await?;
        let progress: &Value = &reply["all"][0];
        if progress["processingState"] == "COMPLETE" {
            if progress["processingStateMessage"] != "succeeded" {
                bail!("an isolation agenda failed: {progress}");
            }
            let added = progress["addedTime"].as_i64().unwrap_or_default();
            let completed = progress["completedTime"].as_i64().unwrap_or_default();
            return Ok((completed - added) as f64);
        }
        if Instant::now() > deadline {
            bail!("an isolation agenda did not complete in time: {progress}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
