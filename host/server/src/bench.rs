//! `pop bench`: agenda submissions per second through a real `pop serve`
//! child process over loopback HTTP, on a fresh store in a temporary
//! directory. Reads by id are measured in the same run for comparison.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::cli::BenchOptions;

pub async fn run(options: BenchOptions) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("pop-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (mut child, base) = start_server(&dir).await?;
    let token = std::fs::read_to_string(dir.join(crate::auth::ADMIN_TOKEN_FILE))?
        .trim()
        .to_string();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    let result = measure(&client, &base, &token, &options).await;
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn start_server(dir: &std::path::Path) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start pop serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await?? {
            Some(line) => {
                if let Some(address) = line.strip_prefix("pop listening on ") {
                    return Ok((child, address.trim().to_string()));
                }
            }
            None => break,
        }
    }
    bail!("pop serve did not report its address")
}

async fn measure(client: &reqwest::Client, base: &str, token: &str, options: &BenchOptions) -> anyhow::Result<()> {
    let setup = [
        (
            "/pop/resourcepool",
            json!({"id": "bench-pool", "customerId": "bench", "title": "bench pool"}),
        ),
        (
            "/pop/customer",
            json!({"id": "bench", "customerId": "bench", "title": "Bench", "resourcePoolId": "bench-pool"}),
        ),
        (
            "/pop/insight",
            json!({"customerId": "bench", "title": "bench insight", "resourcePoolId": "bench-pool", "queueSize": 10,
                   "schedulingAlgorithm": "FirstInFirstOut", "mappers": {"operationType": ["sample"]}}),
        ),
    ];
    for (path, body) in setup {
        let response = client
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("setup {path} failed: {}", response.text().await?);
        }
    }
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

fn bench_agenda(operations: usize) -> Value {
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
enum Target {
    Post,
    Get(Arc<Vec<String>>),
}

struct Figures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

async fn load(
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
