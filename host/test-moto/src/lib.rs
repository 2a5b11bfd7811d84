//! moto's server for the AWS adapters' tests: `scripts/test.sh` starts one
//! for the whole run and names it in `POP_TEST_AWS_ENDPOINT`; a test run
//! some other way starts its own (`scripts/moto-server.py` with the
//! `python3` of `scripts/test-tools.sh`'s venv on `PATH`), stopped when the [`Moto`] is dropped.
//! Nothing POP ships depends on this crate.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The variable naming a running moto server.
pub const ENDPOINT_ENV: &str = "POP_TEST_AWS_ENDPOINT";

pub struct Moto {
    pub endpoint: String,
    own: Option<Child>,
}

impl Moto {
    /// The run's moto, or one of our own.
    pub fn start() -> Self {
        if let Ok(endpoint) = std::env::var(ENDPOINT_ENV) {
            return Self { endpoint, own: None };
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        // One request at a time: see scripts/moto-server.py.
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/moto-server.py");
        let child = Command::new("python3")
            .args([script, &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with moto[server] on PATH (scripts/test-tools.sh installs it; scripts/test.sh starts it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            own: Some(child),
        }
    }

    /// An SDK configuration for moto: its endpoint, a region, test credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::from_keys("test", "test", None))
            .load()
            .await
    }

    /// The environment a child process (`pop serve --backend aws`) finds moto by.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.own {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A name no earlier test used (moto keeps what it created for its life).
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}{nanos}")
}
