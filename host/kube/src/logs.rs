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
}

/// A pod's log being followed; the task stops when this is dropped.
pub struct LogWatch {
    seen: Arc<Mutex<Seen>>,
    /// Set once the marker was seen: waiting for it takes no polling.
    marker: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl LogWatch {
    /// Starts following `name`'s log; `marker` is the end-of-log line to
    /// look for. Activity counts from now: a handler that never writes a
    /// line is quiet from its start.
    pub fn start(pods: Api<Pod>, name: String, marker: Option<String>) -> Self {
        let seen = Arc::new(Mutex::new(Seen {
            last_activity: Instant::now(),
        }));
        let (marker_seen, marker_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(follow(pods, name, marker, seen.clone(), marker_seen));
        Self {
            seen,
            marker: marker_rx,
            task,
        }
    }

    /// Waits up to `bound` for the end-of-log marker; whether it came.
    pub async fn wait_for_marker(&self, bound: Duration) -> bool {
        let mut marker = self.marker.clone();
        tokio::time::timeout(bound, marker.wait_for(|seen| *seen))
            .await
            .is_ok_and(|seen| seen.is_ok())
    }

    /// How long the pod has written nothing.
    pub fn quiet_for(&self) -> Duration {
        self.lock().last_activity.elapsed()
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

async fn follow(
    pods: Api<Pod>,
    name: String,
    marker: Option<String>,
    seen: Arc<Mutex<Seen>>,
    marker_seen: tokio::sync::watch::Sender<bool>,
) {
    let params = LogParams {
        follow: true,
        ..LogParams::default()
    };
    loop {
        if let Ok(stream) = pods.log_stream(&name, &params).await {
            let mut lines = stream.lines();
            while let Ok(Some(line)) = lines.try_next().await {
                seen.lock().unwrap_or_else(|e| e.into_inner()).last_activity = Instant::now();
                if marker.as_deref().is_some_and(|m| line.trim_end() == m) {
                    marker_seen.send_replace(true);
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
