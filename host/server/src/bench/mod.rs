//! `pop bench`: the server measured through its real API, as a child
//! `pop serve` process on a fresh store in a temporary directory, client
//! and server on the same machine. Sections:
//!
//! * [`submissions`]: agenda POSTs per second (and p50/p99), reads by id;
//! * [`execution`]: per-operation orchestration overhead with the wasm and
//!   the process handler, and a 10,000-operation agenda accepted and run;
//! * [`memory`]: server memory per pending agenda;
//! * [`isolation`]: one tenant's latency beside another's failing scheduler;
//! * [`latency`]: one small agenda POST → COMPLETE on an idle server, and
//!   the idle server's CPU;
//! * [`pods`] (with `--features kubernetes`): per-operation overhead of
//!   pod operations on the fake cluster, and pods per second;
//! * `aws` (only with `--only aws --aws-endpoint URL`, feature `aws`):
//!   submissions and latency on the AWS backend beside the embedded one;
//! * [`soak`] (only with `--only soak`, it takes minutes): the store's size
//!   under a steady load with the data reaper on.

#[cfg(feature = "aws")]
mod aws;
mod execution;
mod isolation;
mod latency;
mod memory;
#[cfg(feature = "kubernetes")]
mod pods;
mod soak;
mod submissions;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::cli::BenchOptions;

/// A running server to measure, and a client for it.
pub struct Bench {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    child: Child,
    dir: PathBuf,
}

pub async fn run(options: BenchOptions) -> anyhow::Result<()> {
    let bench = Bench::start(&options.server_binary()?, "main", &[]).await?;
    bench.setup().await?;
    let outcome = async {
        if options.section("submissions") {
            submissions::measure(&bench, &options).await?;
        }
        if options.section("execution") {
            execution::measure(&bench).await?;
        }
        if options.section("isolation") {
            isolation::measure(&bench).await?;
        }
        anyhow::Ok(())
    }
    .await;
    bench.stop().await;
    outcome?;
    if options.section("latency") {
        latency::measure(&options).await?;
    }
    if options.section("memory") {
        memory::measure(&options).await?;
    }
    if options.only.as_deref() == Some("aws") {
        #[cfg(feature = "aws")]
        aws::measure(&options).await?;
        #[cfg(not(feature = "aws"))]
        anyhow::bail!("aws: not measured: this pop was built without `--features aws`");
    }
    if options.section("pods") {
        #[cfg(feature = "kubernetes")]
        pods::measure(&options).await?;
        #[cfg(not(feature = "kubernetes"))]
        println!("pods: not measured: this pop was built without `--features kubernetes`");
    }
    if options.only.as_deref() == Some("soak") {
        soak::measure(&options).await?;
    }
    Ok(())
}

impl BenchOptions {
    fn section(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == name)
    }

    /// The `pop` binary whose server is measured.
    fn server_binary(&self) -> anyhow::Result<PathBuf> {
        match &self.server {
            Some(path) => Ok(path.clone()),
            None => Ok(std::env::current_exe()?),
        }
    }
}

impl Bench {
    /// Start `pop serve` on a fresh data directory, with the built-in
    /// registry (`sample` as a process, `sampleWasm` in-process).
    pub async fn start(server: &Path, name: &str, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("pop-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let (child, base) = start_server(server, &dir, env).await?;
        let token = std::fs::read_to_string(dir.join(pop_token_file::ADMIN_TOKEN_FILE))?
            .trim()
            .to_string();
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
        Ok(Self {
            http,
            base,
            token,
            child,
            dir,
        })
    }

    /// Pool, customer, and two insights: one that runs `sample` and
    /// `sampleWasm` operations here, one whose agendas stay pending (no
    /// queue, no execution).
    pub async fn setup(&self) -> anyhow::Result<()> {
        self.post(
            "/pop/resourcepool",
            &json!({"id": "bench-pool", "customerId": "bench", "title": "bench pool"}),
        )
        .await?;
        self.post(
            "/pop/customer",
            &json!({"id": "bench", "customerId": "bench", "title": "Bench", "resourcePoolId": "bench-pool"}),
        )
        .await?;
        self.post(
            "/pop/insight",
            &json!({"id": "bench-run", "customerId": "bench", "title": "bench runs", "resourcePoolId": "bench-pool",
                    "queueSize": 100, "executionLimit": 64, "schedulingAlgorithm": "FirstInFirstOut",
                    "mappers": {"operationType": ["sample", "sampleWasm"]}}),
        )
        .await?;
        self.post(
            "/pop/insight",
            &json!({"id": "bench-parked", "customerId": "bench", "title": "bench parked", "resourcePoolId": "bench-pool",
                    "queueSize": 0, "executionLimit": 0, "mappers": {"operationType": ["parked"]}}),
        )
        .await?;
        Ok(())
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("POST {path} failed with {status}: {body}");
        }
        Ok(body)
    }

    /// POST a body already serialized; the reply is checked for success and
    /// read whole, but not parsed.
    pub async fn post_bytes(&self, path: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let reply = response.bytes().await?;
        if !status.is_success() {
            bail!("POST {path} failed with {status}: {}", String::from_utf8_lossy(&reply));
        }
        Ok(())
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .put(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("PUT {path} failed with {status}: {body}");
        }
        Ok(body)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("GET {path} failed with {status}: {body}");
        }
        Ok(body)
    }

    /// GET a plain-text resource (the metrics).
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("GET {path} failed with {status}: {text}");
        }
        Ok(text)
    }

    /// The server's resident memory, from `/proc` (Linux).
    pub fn server_rss_bytes(&self) -> anyhow::Result<u64> {
        let pid = self.child.id().context("the server exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc status")?;
        Ok(kib * 1024)
    }

    /// CPU time (user + system) the server used so far, from `/proc`.
    pub fn server_cpu_ms(&self) -> anyhow::Result<f64> {
        let pid = self.child.id().context("the server exited")?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name (which may hold spaces): state is
        // the 3rd field, utime and stime the 14th and 15th.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).context("bad /proc stat")?;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = fields
            .get(11..13)
            .context("short /proc stat")?
            .iter()
            .map(|f| f.parse::<f64>().unwrap_or(0.0))
            .sum();
        // Linux reports in clock ticks of 1/100 s (USER_HZ) on every
        // mainstream architecture.
        Ok(ticks * 10.0)
    }

    /// Bytes of the store files (database and WAL).
    pub fn store_bytes(&self) -> u64 {
        ["pop.db", "pop.db-wal"]
            .iter()
            .filter_map(|name| std::fs::metadata(self.dir.join(name)).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Bytes of the database file alone.
    pub fn database_bytes(&self) -> u64 {
        std::fs::metadata(self.dir.join("pop.db")).map(|m| m.len()).unwrap_or(0)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start_server(server: &Path, dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(server)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", std::env::var("POP_BENCH_LOG").unwrap_or("warn".into()))
        // Release as soon as there is room: the benchmarks measure execution,
        // not the scheduling interval.
        .env("POP_SCHEDULE_INTERVAL_MS", "5")
        .envs(env.iter().copied())
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

/// The `q` quantile of sorted samples (nearest rank).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
