//! Start and stop `pop serve`; a small HTTP client that returns status + JSON.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

pub const ADMIN: &str = "root-token";
pub const ALICE: &str = "alice-token"; // account acme
pub const BOB: &str = "bob-token"; // account globex
pub const PARTNER: &str = "partner-token"; // account acme-partner
pub const MULTI: &str = "multi-token"; // accounts globex and initech
/// A remote puller's token: account ops, scoped to insight `insight-remote`.
pub const PULLER: &str = "puller-token";

/// A running `pop serve` child process.
pub struct Server {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub tokens: PathBuf,
}

/// A data directory plus the token file of the test identities.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let tokens = json!({"tokens": [
            {"token": ADMIN, "userId": "root", "accounts": [], "superUser": true},
            {"token": ALICE, "userId": "alice", "accounts": ["acme"], "superUser": false},
            {"token": BOB, "userId": "bob", "accounts": ["globex"], "superUser": false},
            {"token": PARTNER, "userId": "pat", "accounts": ["acme-partner"], "superUser": false},
            {"token": MULTI, "userId": "max", "accounts": ["globex", "initech"], "superUser": false},
            {"token": PULLER, "userId": "remote-puller", "accounts": ["ops"], "insights": ["insight-remote"]},
        ]});
        std::fs::write(dir.path().join("tokens.json"), tokens.to_string()).expect("write tokens");
        Self { dir }
    }

    pub fn start(&self) -> Server {
        Server::start(&self.dir.path().join("data"), &self.dir.path().join("tokens.json"))
    }

    /// A server that runs agendas itself (see [`Options::running`]).
    pub fn start_running(&self, options: &Options) -> Server {
        Server::start_with(&self.data_dir(), &self.dir.path().join("tokens.json"), options)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// How a test server runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub schedule_interval: Duration,
    /// Agendas per insight the server runs itself (0: none; external
    /// pullers — the tests — claim them through getAgenda).
    pub execution_limit: usize,
    pub env: Vec<(String, String)>,
    /// Where the server's log (stderr) goes, appended; default: the test's.
    pub log_file: Option<PathBuf>,
}

impl Default for Options {
    /// The scheduler loop effectively idle (one round at start-up) and no
    /// embedded execution, so tests can look at backlogs and queues.
    fn default() -> Self {
        Self {
            schedule_interval: Duration::from_secs(3600),
            execution_limit: 0,
            env: Vec::new(),
            log_file: None,
        }
    }
}

impl Options {
    /// Scheduling every 20 ms and the embedded puller running agendas.
    pub fn running() -> Self {
        Self {
            schedule_interval: Duration::from_millis(20),
            execution_limit: 8,
            env: vec![("POP_HEARTBEAT_MS".into(), "200".into())],
            log_file: None,
        }
    }

    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }
}

impl Server {
    /// Start with the scheduler loop effectively idle (one round at start-up),
    /// so tests can look at backlogs without the loop draining them.
    pub fn start(data_dir: &Path, tokens: &Path) -> Server {
        Self::start_scheduling_every(data_dir, tokens, Duration::from_secs(3600))
    }

    pub fn start_scheduling_every(data_dir: &Path, tokens: &Path, interval: Duration) -> Server {
        let options = Options {
            schedule_interval: interval,
            ..Options::default()
        };
        Self::start_with(data_dir, tokens, &options)
    }

    pub fn start_with(data_dir: &Path, tokens: &Path, options: &Options) -> Server {
        let stderr = match &options.log_file {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("server log file"),
            ),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_pop"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--tokens")
            .arg(tokens)
            .env("RUST_LOG", "warn")
            .env(
                "POP_SCHEDULE_INTERVAL_MS",
                options.schedule_interval.as_millis().to_string(),
            )
            .env("POP_EXECUTION_LIMIT", options.execution_limit.to_string())
            // The 20 ms production deadline is wall-clock time: on a loaded
            // 2-core CI machine an honest call can wait that long for a core.
            .env("POP_PLUGIN_DEADLINE_MS", "1000")
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn pop serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("pop listening on ") {
                    let _ = tx.send(address.trim().to_string());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("pop serve reported its address");
        Server {
            child,
            base,
            data_dir: data_dir.to_path_buf(),
            tokens: tokens.to_path_buf(),
        }
    }

    pub fn client(&self, token: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: self.base.clone(),
            token: Some(token.to_string()),
        }
    }

    pub fn anonymous(&self) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: self.base.clone(),
            token: None,
        }
    }

    /// SIGKILL: nothing gets a chance to flush.
    /// The server's resident memory in bytes (Linux `/proc`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("server status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kib * 1024
    }

    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        self.child.wait().expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status and JSON body of a response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// The objects of an `{all, count}` envelope, asserting success.
    pub fn all(&self) -> Vec<Value> {
        assert!(
            self.status.is_success(),
            "expected success, got {} {}",
            self.status,
            self.body
        );
        self.body["all"].as_array().cloned().unwrap_or_default()
    }

    pub fn first(&self) -> Value {
        self.all()
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("empty result: {}", self.body))
    }

    /// Assert an error status and that the errorResponse names it.
    pub fn expect_error(&self, status: u16, description_contains: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        let error = &self.body["errorResponse"];
        assert_eq!(error["responseCode"], json!(status), "body: {}", self.body);
        assert_eq!(self.body["error"], json!(true));
        let description = error["description"].as_str().unwrap_or_default();
        assert!(
            description.contains(description_contains),
            "description {description:?} should contain {description_contains:?}"
        );
        assert!(error["title"].as_str().is_some_and(|t| !t.is_empty()));
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply { status, body }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn post_raw(&self, path: &str, body: &'static str) -> Reply {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        self.send(request).await
    }

    pub async fn post_bytes(&self, path: &str, body: &'static [u8]) -> Reply {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/wasm")
            .body(body);
        self.send(request).await
    }

    pub async fn post_multipart(&self, path: &str, form: reqwest::multipart::Form) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).multipart(form))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.put(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }
}

/// The README walkthrough's setup: a pool, a global insight for `sample`
/// operations, and customers acme and globex on that pool.
pub async fn setup_tenancy(server: &Server) {
    let admin = server.client(ADMIN);
    admin
        .post(
            "/pop/resourcepool",
            json!({"id": "pool-1", "customerId": "ops", "title": "local pool"}),
        )
        .await
        .first();
    for customer in ["acme", "globex"] {
        let body = json!({"customerId": customer, "title": customer, "resourcePoolId": "pool-1"});
        admin.post("/pop/customer", body).await.first();
    }
    let insight = json!({"id": "insight-sample", "customerId": "ops", "title": "Sample work", "resourcePoolId": "pool-1",
        "isGlobal": true, "queueSize": 10, "schedulingAlgorithm": "RoundRobin",
        "mappers": {"operationType": ["sample"]}});
    admin.post("/pop/insight", insight).await.first();
}

/// A two-operation agenda of `customer`: `second` reads `first`'s output.
pub fn two_step_agenda(customer: &str, link: &str) -> Value {
    json!({
        "customerId": customer,
        "linkId": link,
        "title": format!("{customer} job"),
        "params": {"externalId": format!("ext-{link}")},
        "operations": [
            {"name": "first", "type": "sample", "payload": {"action": "log", "message": "hello"}},
            {"name": "second", "type": "sample", "payload": {"echo": "@<first.out::/message>"}}
        ]
    })
}

/// A child process killed with the test.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
