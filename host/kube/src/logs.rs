//! Following a running pod's log (spec §5.5 steps 3–5): when it last
//! wrote a line (the `podStdoutTimeout` quietness check) and whether the
//! end-of-log marker (`HandlerComplete`) appeared.
//!
//! The log is streamed (`follow=true`) by a task of its own; a stream that
//! ends while the pod still runs (an API server restart, a dropped
//! connection) is opened again after a pause. Lines a reopened stream
//! repeats only refresh the time of activity and the marker, which both
//! tolerate repeats. Quietness is measured on the monotonic clock: it
//! bounds real handler behaviour, like a local handler's timeouts.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};

/// Pause before a stream that ended or failed is opened again.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Seen {
    last_activity: Instant,
    marker: bool,
}

/// A pod's log being followed; the task stops when this is dropped.
pub struct LogWatch {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl LogWatch {
    /// Starts following `name`'s log; `marker` is the end-of-log line to
    /// look for. Activity counts from now: a handler that never writes a
    /// line is quiet from its start.
    pub fn start(pods: Api<Pod>, name: String, marker: Option<String>) -> Self {
        let seen = Arc::new(Mutex::new(Seen {
            last_activity: Instant::now(),
            marker: false,
        }));
        let task = tokio::spawn(follow(pods, name, marker, seen.clone()));
        Self { seen, task }
    }

    /// How long the pod has written nothing.
    pub fn quiet_for(&self) -> Duration {
        self.lock().last_activity.elapsed()
    }

    /// Whether the end-of-log marker was seen.
    pub fn saw_marker(&self) -> bool {
        self.lock().marker
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for LogWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn follow(pods: Api<Pod>, name: String, marker: Option<String>, seen: Arc<Mutex<Seen>>) {
    let params = LogParams {
        follow: true,
        ..LogParams::default()
    };
    loop {
        if let Ok(stream) = pods.log_stream(&name, &params).await {
            let mut lines = stream.lines();
            while let Ok(Some(line)) = lines.try_next().await {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.last_activity = Instant::now();
                if marker.as_deref().is_some_and(|m| line.trim_end() == m) {
                    seen.marker = true;
                }
            }
        }
        tokio::time::sleep(REOPEN_AFTER).await;
    }
}

/// Whether `marker` is a line of the pod's whole log (read once, for a pod
/// that finished before its stream showed the marker).
pub async fn log_has_marker(pods: &Api<Pod>, name: &str, marker: &str) -> bool {
    match pods.logs(name, &LogParams::default()).await {
        Ok(text) => text.lines().any(|line| line.trim_end() == marker),
        Err(_) => false,
    }
}
