//! The store's disk under a steady load with the data reaper on: agendas
//! submitted at a steady rate, run, and reaped a minute after they
//! completed; the store files' size after the first tenth of them against
//! the size at the end (and the largest seen). With the reaper keeping the
//! live data constant, SQLite reuses the freed pages and the file stays
//! bounded.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::json;

use super::Bench;
use crate::cli::BenchOptions;

/// Retention of the soak: completed agendas are reaped after a minute.
const RETENTION_MS: &str = "60000";

pub async fn measure(options: &BenchOptions) -> anyhow::Result<()> {
    let env = [
        ("POP_RETENTION_MS", RETENTION_MS),
        ("POP_REAP_INTERVAL_MS", "2000"),
        ("POP_REAP_BATCH", "5000"),
    ];
    let bench = Bench::start(&options.server_binary()?, "soak", &env).await?;
    let outcome = async {
        bench.setup().await?;
        let total = options.soak_agendas.max(10);
        let rate = options.soak_rate.max(1);
        let agenda = json!({"customerId": "bench", "title": "soak", "operations": [
            {"name": "a", "type": "sampleWasm", "payload": {"resultPayload": {"n": 1}}},
            {"name": "b", "type": "sampleWasm", "payload": {"resultPayload": {"from": "@<a.out::/n>"}}}]});
        let body = serde_json::to_vec(&agenda)?;
        let tick = Duration::from_millis(100);
        let per_tick = (rate as f64 * tick.as_secs_f64()).max(1.0) as usize;
        let started = Instant::now();
        let (mut submitted, mut after_tenth, mut largest, mut largest_db) = (0usize, None, 0u64, 0u64);
        let mut next = Instant::now();
        while submitted < total {
            let batch = per_tick.min(total - submitted);
            let posts: Vec<anyhow::Result<()>> = futures_util::stream::iter(0..batch)
                .map(|_| bench.post_bytes("/pop/agenda", body.clone()))
                .buffer_unordered(32)
                .collect()
                .await;
            posts.into_iter().collect::<anyhow::Result<()>>()?;
            submitted += batch;
            let bytes = bench.store_bytes();
            largest = largest.max(bytes);
            largest_db = largest_db.max(bench.database_bytes());
            if after_tenth.is_none() && submitted >= total / 10 {
                after_tenth = Some(bytes);
            }
            if submitted % (total / 10).max(1) < batch {
                println!(
                    "soak: {submitted} agendas in {:.0} s, store {:.1} MiB",
                    started.elapsed().as_secs_f64(),
                    mib(bytes)
                );
            }
            next += tick;
            tokio::time::sleep_until(next.into()).await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let end = bench.store_bytes();
        let tenth = after_tenth.unwrap_or(end).max(1);
        let waiting = bench
            .get("/pop/progress/agenda?byprocessingState=WAITING&bycount=true")
            .await?["count"]
            .as_u64()
            .unwrap_or(0);
        let metrics = bench.get_text("/pop/metrics").await?;
        let reaped = metrics
            .lines()
            .find_map(|l| l.strip_prefix("pop_job_acted_total{job=\"reap\"} "))
            .unwrap_or("?")
            .to_owned();
        println!(
            "soak: {submitted} agendas at {:.0}/s, retention 60 s: store files (database + WAL) {:.1} MiB after the first {}, {:.1} MiB at the end ({:.2}×), largest {:.1} MiB ({:.2}×); the database file alone at most {:.1} MiB ({:.2}×); {reaped} reaped, {waiting} still waiting",
            submitted as f64 / elapsed,
            mib(tenth),
            total / 10,
            mib(end),
            end as f64 / tenth as f64,
            mib(largest),
            largest as f64 / tenth as f64,
            mib(largest_db),
            largest_db as f64 / tenth as f64,
        );
        anyhow::Ok(())
    }
    .await;
    bench.stop().await;
    outcome
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}
