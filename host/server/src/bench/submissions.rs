//! Agenda submissions per second and reads by id, through the real API.
//! The agendas carry `doNotRun`, so only the submission path is measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::bail;
use serde_json::{Value, json};

use super::Bench;
use crate::cli::BenchOptions;

pub async fn measure(bench: &Bench, options: &BenchOptions) -> anyhow::Result<()> {
    let (client, base, token) = (&bench.http, bench.base.as_str(), bench.token.as_str());
    let agenda = bench_agenda(options.operations);
    // Warm up connections and the store's caches.
    let warmup = options.agendas.min(500).max(options.concurrency);
    let (_, ids) = load(client, base, token, &agenda, warmup, options.concurrency, Target::Post).await?;
    let (post, created) = load(
        client,
        base,
        token,
        &agenda,
        options.agendas,
        options.concurrency,
        Target::Post,
    )
    .await?;
    let ids = Arc::new(if created.is_empty() { ids } else { created });
    let (get, _) = load(
        client,
        base,
        token,
        &agenda,
        options.agendas,
        options.concurrency,
        Target::Get(ids),
    )
    .await?;
    println!(
        "agenda POST ({} ops each): {} requests, concurrency {}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        options.operations, options.agendas, options.concurrency, post.rate, post.p50_ms, post.p99_ms, post.max_ms
    );
    println!(
        "agenda GET by id:            {} requests, concurrency {}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        options.agendas, options.concurrency, get.rate, get.p50_ms, get.p99_ms, get.max_ms
    );
    println!("POST/GET throughput ratio: {:.2}", post.rate / get.rate);
    Ok(())
}

pub(super) fn bench_agenda(operations: usize) -> Value {
    let ops: Vec<Value> = (0..operations.max(1))
        .map(|i| {
            let payload = if i == 0 {
                json!({"action": "log", "message": "hello"})
            } else {
                json!({"action": "log", "message": format!("from @<op{}.out::/message?none>", i - 1), "prev": format!("@<op{}.out>", i - 1)})
            };
            json!({"name": format!("op{i}"), "type": "sample", "payload": payload})
        })
        .collect();
    json!({"customerId": "bench", "linkId": "bench-link", "params": {"doNotRun": true}, "operations": ops})
}

#[derive(Clone)]
pub(super) enum Target {
    Post,
    Get(Arc<Vec<String>>),
}

pub(super) struct Figures {
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub(super) async fn load(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    agenda: &Value,
    total: usize,
    concurrency: usize,
    target: Target,
) -> anyhow::Result<(Figures, Vec<String>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, next, target) = (client.clone(), next.clone(), target.clone());
        let (base, token, agenda) = (base.to_string(), token.to_string(), agenda.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>((latencies, ids));
                }
                let sent = Instant::now();
                let request = match &target {
                    Target::Post => client.post(format!("{base}/pop/agenda")).json(&agenda),
                    Target::Get(ids) => client.get(format!("{base}/pop/agenda/{}", ids[i % ids.len()])),
                };
                let response = request.bearer_auth(&token).send().await?;
                let status = response.status();
                let body: Value = response.json().await?;
                if !status.is_success() {
                    bail!("request failed with {status}: {body}");
                }
                latencies.push(sent.elapsed());
                if matches!(target, Target::Post)
                    && let Some(id) = body["all"][0]["id"].as_str()
                {
                    ids.push(id.to_string());
                }
            }
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut ids = Vec::new();
    for worker in workers {
        let (l, i) = worker.await??;
        latencies.extend(l);
        ids.extend(i);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3;
    let figures = Figures {
        rate: total as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: latencies.last().map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0),
    };
    Ok((figures, ids))
}
