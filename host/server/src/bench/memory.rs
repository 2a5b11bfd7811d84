//! Server memory per pending agenda: resident memory of a fresh server
//! before and after submitting agendas that stay in the backlog (their
//! insight has no queue and no execution).

use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::Bench;
use crate::cli::BenchOptions;

pub async fn measure(options: &BenchOptions) -> anyhow::Result<()> {
    let bench = Bench::start(&options.server_binary()?, "memory", &[]).await?;
    let outcome = async {
        bench.setup().await?;
        let agenda = json!({"customerId": "bench", "title": "parked", "operations": [
            {"name": "a", "type": "parked", "payload": {"n": 1}},
            {"name": "b", "type": "parked", "payload": {"from": "@<a.out::/n>"}},
            {"name": "c", "type": "parked", "payload": {"from": "@<b.out>"}}]});
        // Warm-up with the same load as the measurement, so the transient
        // memory of handling requests (buffers, caches, allocator arenas) is
        // in both readings and the difference is what the agendas keep.
        submit(&bench, &agenda, options.pending_agendas / 4, options.concurrency).await?;
        settle().await;
        let (before, disk_before) = (bench.server_rss_bytes()?, bench.store_bytes());
        let count = options.pending_agendas;
        submit(&bench, &agenda, count, options.concurrency).await?;
        settle().await;
        let (after, disk_after) = (bench.server_rss_bytes()?, bench.store_bytes());
        let per_agenda = (after as f64 - before as f64) / count as f64;
        let disk_per_agenda = (disk_after as f64 - disk_before as f64) / count as f64;
        println!(
            "memory per pending agenda (3 ops): {per_agenda:.0} bytes of server RSS ({count} more agendas: {:.1} → {:.1} MiB); on disk {disk_per_agenda:.0} bytes",
            before as f64 / (1 << 20) as f64,
            after as f64 / (1 << 20) as f64
        );
        anyhow::Ok(())
    }
    .await;
    bench.stop().await;
    outcome
}

async fn submit(bench: &Bench, agenda: &Value, count: usize, concurrency: usize) -> anyhow::Result<()> {
    let results: Vec<anyhow::Result<Value>> = futures_util::stream::iter(0..count)
        .map(|_| bench.post("/pop/agenda", agenda))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().try_for_each(|r| r.map(drop))
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}
