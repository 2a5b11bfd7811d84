//! moto's server (PyPI `moto[server]`) for the AWS adapters' tests:
//! `scripts/test.sh` starts one for the whole run and names it in
//! `POP_TEST_AWS_ENDPOINT`; a test run some other way starts its own
//! (`moto_server` on `PATH`), stopped when the test ends.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    pub endpoint: String,
    own: Option<Child>,
}

impl Moto {
    pub fn start() -> Self {
        if let Ok(endpoint) = std::env::var("POP_TEST_AWS_ENDPOINT") {
            return Self { endpoint, own: None };
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server on PATH (scripts/test-tools.sh installs it; scripts/test.sh starts it)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            endpoint,
            own: Some(child),
        }
    }

    /// An SDK configuration for moto: its endpoint, a region, test credentials.
    pub async fn config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "static",
            ))
            .load()
            .await
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

/// A name no earlier run used (moto keeps tables for its whole life).
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{test}{nanos}")
}
