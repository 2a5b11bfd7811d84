//! The AWS backend beside the embedded one, in one run (feature `aws`):
//! agenda submissions per second and one small agenda's POST → COMPLETE
//! latency, each through a real `pop serve` child, the AWS one on the
//! DynamoDB and S3 at `--aws-endpoint` (moto's server: start
//! `moto_server -p 5000` first). moto is a stand-in: it runs in one Python
//! process on the same two cores and is far slower than DynamoDB per
//! request, so the ratio says what the AWS adapters cost on a stand-in,
//! not what DynamoDB would do.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde_json::json;

use super::latency::complete_one;
use super::submissions::{Target, bench_agenda, load};
use super::{Bench, percentile};
use crate::cli::BenchOptions;

const SUBMISSIONS: usize = 400;
const CONCURRENCY: usize = 16;
const LATENCY_SAMPLES: usize = 20;

struct Figures {
    posts_per_s: f64,
    post_p50_ms: f64,
    latency_p50_ms: f64,
}

pub async fn measure(options: &BenchOptions) -> anyhow::Result<()> {
    let endpoint = options
        .aws_endpoint
        .as_deref()
        .context("--aws-endpoint URL (a running moto_server, or AWS) is needed for the aws section")?;
    let server = options.server_binary()?;
    let embedded = on(&server, "embedded", &[]).await?;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let prefix = format!("bench{nanos}-");
    let aws_env = [
        ("POP_BACKEND", "aws"),
        ("POP_AWS_PREFIX", prefix.as_str()),
        ("POP_AWS_CREATE_RESOURCES", "true"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
    ];
    let aws = on(&server, "aws", &aws_env).await?;
    for (label, figures) in [("embedded", &embedded), ("aws (moto)", &aws)] {
        println!(
            "backend {label}: {SUBMISSIONS} 3-op agenda POSTs at concurrency {CONCURRENCY}: {:.0}/s (p50 {:.1} ms); \
             one 1-op agenda POST → COMPLETE, server-side p50 {:.1} ms over {LATENCY_SAMPLES}",
            figures.posts_per_s, figures.post_p50_ms, figures.latency_p50_ms
        );
    }
    println!(
        "aws (moto) against embedded, one run: submissions {:.4} ×, latency {:.2} ×",
        aws.posts_per_s / embedded.posts_per_s,
        aws.latency_p50_ms / embedded.latency_p50_ms.max(f64::MIN_POSITIVE)
    );
    Ok(())
}

async fn on(server: &std::path::Path, name: &str, env: &[(&str, &str)]) -> anyhow::Result<Figures> {
    let bench = Bench::start(server, name, env).await?;
    let outcome = run(&bench).await;
    bench.stop().await;
    outcome
}

async fn run(bench: &Bench) -> anyhow::Result<Figures> {
    bench.setup().await?;
    let agenda = bench_agenda(3);
    let (posts, _) = load(
        &bench.http,
        &bench.base,
        &bench.token,
        &agenda,
        SUBMISSIONS,
        CONCURRENCY,
        Target::Post,
    )
    .await?;
    let small = json!({"customerId": "bench", "title": "latency", "operations": [
        {"name": "only", "type": "sampleWasm", "payload": {"resultPayload": {"ok": true}}}]});
    complete_one(bench, &small).await?;
    let mut server_ms = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        server_ms.push(complete_one(bench, &small).await?.0);
    }
    server_ms.sort_by(f64::total_cmp);
    Ok(Figures {
        posts_per_s: posts.rate,
        post_p50_ms: posts.p50_ms,
        latency_p50_ms: percentile(&server_ms, 0.5),
    })
}
