//! `PodLauncher`: the registry's `podConfig` operations as Kubernetes pods
//! (spec §5.3.6, §5.5), through `kube::Client`.
//!
//! A launch creates the run's pod (its name derived from the run, so a
//! successor finds it: [`crate::pod::pod_name`]) and follows it with a
//! watch: the handler's `pop.report.progress` annotation is passed on as
//! it changes; the pod must be Running (or finished) within
//! `podScheduledTimeoutMs` ("pod not scheduled", and the pod is deleted);
//! Succeeded ends with the `pop.report.payload` annotation as the output;
//! Failed with "Kubernetes pod failed: <pod>" and its last 10 log lines
//! (unless the handler's own COMPLETE progress says more); a deleted pod
//! with "PodDeleted". A watch that ends is resumed from the last
//! resourceVersion, one that expired (410) after a fresh read; transient
//! API errors are retried with backoff. `reapCompletedPods` deletes the pod
//! once its outcome is read.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use pop_core::{OperationProgress, ProcessingState};
use pop_handlers_registry::{HandlerSpec, PodSpec, Registry};
use pop_ports::launcher::event;
use pop_ports::{Clock, Durability, LaunchError, Launcher, OperationResult, OperationRun, ProgressSink};
use serde_json::{Value, json};

use crate::logs::{LogWatch, log_has_marker};
use crate::pod::{self, MANAGED_BY, PAYLOAD_ANNOTATION, PROGRESS_ANNOTATION};

/// Log lines kept with a failed pod's diagnostic (spec §5.3.6).
const FAILURE_LOG_LINES: i64 = 10;
/// Attempts of a Kubernetes call that failed transiently.
const API_ATTEMPTS: u32 = 4;
/// Pods deleted per page by the reaper.
const REAP_PAGE: u32 = 50;
/// How often a running pod's log quietness is checked.
const QUIET_CHECK: Duration = Duration::from_secs(1);
/// How long a succeeded pod's log stream gets to show the end-of-log marker.
const MARKER_WAIT: Duration = Duration::from_secs(1);

/// Where pods go.
#[derive(Debug, Clone)]
pub struct PodLauncherConfig {
    /// The namespace pods are created in unless the run's resource pool
    /// gives its customer one (`Placement::namespace`).
    pub namespace: String,
    /// More namespaces the pod reaper looks in (the customers' namespaces
    /// of the resource pools this launcher serves); the default namespace
    /// and every namespace a pod was launched in since start are reaped anyway.
    pub reap_namespaces: Vec<String>,
    /// POP's `pop.kubernetes.zone`: pods only on nodes labelled `<zone>: "true"`.
    pub zone: Option<String>,
}

impl PodLauncherConfig {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            reap_namespaces: Vec::new(),
            zone: None,
        }
    }
}

pub struct PodLauncher {
    client: kube::Client,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    config: PodLauncherConfig,
    /// Namespaces pods were launched in since start (for the reaper).
    used_namespaces: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// Why the launcher could not reach a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no Kubernetes cluster configured (KUBECONFIG, ~/.kube/config or the in-cluster service account): {0}")]
    Config(#[source] kube::Error),
}

impl PodLauncher {
    /// A launcher on the cluster found the standard way
    /// (`kube::Config::infer`: `KUBECONFIG`, `~/.kube/config`, then the
    /// in-cluster service account), creating pods in `config.namespace`.
    pub async fn connect(
        registry: Arc<Registry>,
        clock: Arc<dyn Clock>,
        config: PodLauncherConfig,
    ) -> Result<Self, ConnectError> {
        let client = kube::Client::try_default().await.map_err(ConnectError::Config)?;
        Ok(Self::new(client, registry, clock, config))
    }

    pub fn new(
        client: kube::Client,
        registry: Arc<Registry>,
        clock: Arc<dyn Clock>,
        config: PodLauncherConfig,
    ) -> Self {
        Self {
            client,
            registry,
            clock,
            config,
            used_namespaces: Default::default(),
        }
    }

    /// The pods of `run`'s namespace: the one its resource pool gives the
    /// customer, else the launcher's.
    fn pods_of(&self, run: &OperationRun) -> Api<Pod> {
        let namespace = run.placement.namespace.as_deref().unwrap_or(&self.config.namespace);
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Every namespace the reaper looks in.
    fn reaped_namespaces(&self) -> Vec<String> {
        let mut all: std::collections::BTreeSet<String> =
            self.used_namespaces.lock().unwrap_or_else(|e| e.into_inner()).clone();
        all.insert(self.config.namespace.clone());
        all.extend(self.config.reap_namespaces.iter().cloned());
        all.into_iter().collect()
    }

    fn pod_spec(&self, run: &OperationRun) -> Option<PodSpec> {
        match self.registry.resolve(run.op_type()) {
            Ok(HandlerSpec::Pod(spec)) => Some(spec),
            _ => None,
        }
    }

    fn failed(&self, started: i64, message: String) -> OperationResult {
        OperationResult::failed_with(started, message, self.clock.now_millis())
    }

    /// The outcome of a run whose pod was deleted under it (spec §5.5: PodDeleted).
    fn deleted(&self, started: i64, name: &str) -> OperationResult {
        self.failed(started, format!("Kubernetes pod deleted: {name} (PodDeleted)"))
    }

    /// Follows `name` until it ends; `None` when it does not exist.
    async fn follow(
        &self,
        pods: &Api<Pod>,
        spec: &PodSpec,
        name: &str,
        sink: &dyn ProgressSink,
    ) -> Option<OperationResult> {
        let started = self.clock.now_millis();
        let pod = match retry(|| pods.get_opt(name)).await {
            Ok(Some(pod)) => pod,
            Ok(None) => return None,
            Err(e) => return Some(self.failed(started, format!("Failed to follow kubernetes pod: {name}: {e}"))),
        };
        let scheduled_by =
            started.saturating_add(i64::try_from(spec.pod_config.pod_scheduled_timeout_ms).unwrap_or(i64::MAX));
        let mut follower = Follower {
            name: name.to_owned(),
            last_progress: None,
            logs: None,
        };
        let mut current = pod;
        loop {
            if let Some(result) = self.settle(pods, spec, &mut follower, &current, sink).await {
                return Some(result);
            }
            if phase(&current) == "Pending" && self.clock.now_millis() >= scheduled_by {
                let why = pending_reason(&current);
                let _ = pods.delete(name, &DeleteParams::default()).await;
                return Some(self.failed(started, format!("Kubernetes pod not scheduled: {name} ({why})")));
            }
            // Watch from what was read; wake at least by the scheduling deadline.
            let version = current.metadata.resource_version.clone().unwrap_or_default();
            let wait = u32::try_from(((scheduled_by - self.clock.now_millis()) / 1000).clamp(1, 290)).unwrap_or(290);
            let params = WatchParams::default()
                .fields(&format!("metadata.name={name}"))
                .timeout(wait);
            let mut events = match pods.watch(&params, &version).await {
                Ok(events) => Box::pin(events),
                Err(e) if is_transient(&e) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => return Some(self.failed(started, format!("Failed to follow kubernetes pod: {name}: {e}"))),
            };
            loop {
                let event = tokio::select! {
                    event = events.try_next() => event,
                    () = tokio::time::sleep(QUIET_CHECK) => {
                        if let Some(result) = self.quiet_check(pods, spec, &follower, started).await {
                            return Some(result);
                        }
                        continue;
                    }
                };
                match event {
                    Ok(Some(WatchEvent::Added(pod) | WatchEvent::Modified(pod))) => {
                        current = pod;
                        if let Some(result) = self.settle(pods, spec, &mut follower, &current, sink).await {
                            return Some(result);
                        }
                    }
                    Ok(Some(WatchEvent::Deleted(_))) => return Some(self.deleted(started, name)),
                    Ok(Some(WatchEvent::Bookmark(bookmark))) => {
                        current.metadata.resource_version = Some(bookmark.metadata.resource_version);
                    }
                    Ok(Some(WatchEvent::Error(status))) => {
                        // 410: what was read is too old; read it again.
                        if status.code == 410 {
                            match retry(|| pods.get_opt(name)).await {
                                Ok(Some(pod)) => current = pod,
                                Ok(None) => return Some(self.deleted(started, name)),
                                Err(e) => {
                                    return Some(
                                        self.failed(started, format!("Failed to follow kubernetes pod: {name}: {e}")),
                                    );
                                }
                            }
                        }
                        break;
                    }
                    // The watch ended (its timeout) or dropped: resume.
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    /// Passes the handler's progress on; the result once the pod finished.
    async fn settle(
        &self,
        pods: &Api<Pod>,
        spec: &PodSpec,
        follower: &mut Follower,
        pod: &Pod,
        sink: &dyn ProgressSink,
    ) -> Option<OperationResult> {
        if follower.logs.is_none() && phase(pod) == "Running" {
            let marker = spec.pod_config.end_of_log_identifier.clone();
            follower.logs = Some(LogWatch::start(pods.clone(), follower.name.clone(), marker));
        }
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        let reported: Option<OperationProgress> = annotations
            .get(PROGRESS_ANNOTATION)
            .and_then(|text| serde_json::from_str(text).ok());
        if let Some(progress) = &reported
            && follower.last_progress.as_ref() != Some(progress)
        {
            if progress.processing_state == Some(ProcessingState::Executing) {
                sink.report(progress);
            }
            follower.last_progress = Some(progress.clone());
        }
        let now = self.clock.now_millis();
        let name = &follower.name;
        let outcome = match phase(pod).as_str() {
            "Succeeded" => {
                self.await_marker(pods, spec, follower).await;
                let output = annotations
                    .get(PAYLOAD_ANNOTATION)
                    .map(|text| serde_json::from_str(text).unwrap_or(Value::String(text.clone())))
                    .unwrap_or(Value::Null);
                let progress = reported.unwrap_or_default();
                if progress.processing_state_message.as_deref() == Some("failed") {
                    // The handler said it failed, though it exited 0.
                    OperationResult::failed(progress, None, now)
                } else {
                    OperationResult::succeeded(progress, output, now)
                }
            }
            "Failed" => {
                let lines = last_lines(pods, name).await;
                // The handler's own failure report (its diagnostics) is
                // kept; the pod's event, with the log's last lines, comes
                // last: it is the one the agenda carries.
                let progress = reported
                    .filter(|p| p.processing_state == Some(ProcessingState::Complete))
                    .unwrap_or_default();
                let mut diagnostic = event(format!("Kubernetes pod failed: {name}"), now);
                diagnostic.payload = Some(json!({"log": lines, "exitCode": exit_code(pod)}));
                OperationResult::failed(progress, Some(diagnostic), now)
            }
            _ => return None,
        };
        if spec.pod_config.reap_completed_pods {
            let _ = pods.delete(name, &DeleteParams::default()).await;
        }
        Some(outcome)
    }
}

async fn last_lines(pods: &Api<Pod>, name: &str) -> Vec<String> {
    let params = LogParams {
        tail_lines: Some(FAILURE_LOG_LINES),
        ..LogParams::default()
    };
    match pods.logs(name, &params).await {
        Ok(text) => text.lines().map(str::to_owned).collect(),
        Err(e) => vec![format!("(the log could not be read: {e})")],
    }
}

struct Follower {
    name: String,
    last_progress: Option<OperationProgress>,
    /// The log, followed from when the pod is first seen Running.
    logs: Option<LogWatch>,
}

impl PodLauncher {
    /// A running pod quiet for longer than `podStdoutTimeout` (0: no
    /// limit) is stopped and its operation failed (spec §5.5 step 4).
    async fn quiet_check(
        &self,
        pods: &Api<Pod>,
        spec: &PodSpec,
        follower: &Follower,
        started: i64,
    ) -> Option<OperationResult> {
        let limit = Duration::from_millis(spec.pod_config.pod_stdout_timeout);
        let quiet = follower.logs.as_ref()?.quiet_for();
        if limit.is_zero() || quiet <= limit {
            return None;
        }
        let name = &follower.name;
        let lines = last_lines(pods, name).await;
        let _ = pods.delete(name, &DeleteParams::default()).await;
        let now = self.clock.now_millis();
        let mut diagnostic = event(
            format!(
                "Kubernetes pod {name} wrote no log line for {} ms (podStdoutTimeout {} ms): no log activity",
                quiet.as_millis(),
                limit.as_millis()
            ),
            now,
        );
        diagnostic.payload = Some(json!({ "log": lines }));
        let progress = OperationProgress {
            started_time: Some(started),
            ..Default::default()
        };
        Some(OperationResult::failed(progress, Some(diagnostic), now))
    }

    /// A pod that succeeded is complete once its log shows the end-of-log
    /// marker (spec §5.5 step 5): the stream gets a moment to deliver it,
    /// then the whole log is read once. POP then completed anyway; so does
    /// this, saying so in the server's log.
    async fn await_marker(&self, pods: &Api<Pod>, spec: &PodSpec, follower: &Follower) {
        let Some(marker) = spec
            .pod_config
            .end_of_log_identifier
            .as_deref()
            .filter(|m| !m.is_empty())
        else {
            return;
        };
        if let Some(logs) = &follower.logs
            && logs.wait_for_marker(MARKER_WAIT).await
        {
            return;
        }
        if !log_has_marker(pods, &follower.name, marker).await {
            tracing::warn!(
                pod = follower.name,
                marker,
                "the pod succeeded without logging its end-of-log marker"
            );
        }
    }
}

fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into())
}

fn exit_code(pod: &Pod) -> Option<i32> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    Some(statuses.first()?.state.as_ref()?.terminated.as_ref()?.exit_code)
}

/// Why a pod is still Pending: the scheduler's message, or its container's
/// waiting reason (an image that cannot be pulled is scheduled, never Running).
fn pending_reason(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let unschedulable = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled" && c.status == "False"))
        .map(|c| c.message.clone().or(c.reason.clone()).unwrap_or_default());
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref()?.waiting.as_ref())
        .map(|w| {
            format!(
                "{}: {}",
                w.reason.clone().unwrap_or_default(),
                w.message.clone().unwrap_or_default()
            )
        });
    unschedulable.or(waiting).unwrap_or_else(|| "still Pending".into())
}

/// Whether retrying a failed call may help: the server's 429/5xx and
/// connection failures.
fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// `call`, again with backoff (100 ms doubling) while it fails transiently.
async fn retry<T, F, Fut>(mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if is_transient(&e) && attempt < API_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "Kubernetes call failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn launch_error(message: String, error: kube::Error) -> LaunchError {
    if is_transient(&error) {
        LaunchError::Unavailable {
            message,
            source: Some(Box::new(error)),
        }
    } else {
        LaunchError::Failed {
            message,
            source: Some(Box::new(error)),
        }
    }
}

#[async_trait]
impl Launcher for PodLauncher {
    fn name(&self) -> &'static str {
        "pod"
    }

    fn accepts(&self, op_type: &str) -> bool {
        matches!(self.registry.get(op_type), Some(HandlerSpec::Pod(_)))
    }

    fn durability(&self) -> Durability {
        Durability::Detached
    }

    async fn launch(&self, run: &OperationRun, progress: Arc<dyn ProgressSink>) -> OperationResult {
        let started = self.clock.now_millis();
        let Some(spec) = self.pod_spec(run) else {
            return self.failed(
                started,
                format!(
                    "Unknown operation type found: {} on operation: {}",
                    run.op_type(),
                    run.name
                ),
            );
        };
        let name = pod::pod_name(&spec, run);
        let site = pod::PodSite {
            zone: self.config.zone.clone(),
        };
        let object = pod::build(&spec, run, &name, &site);
        let pod: Pod = match serde_json::from_value(object) {
            Ok(pod) => pod,
            Err(e) => return self.failed(started, format!("Failed to build kubernetes pod {name}: {e}")),
        };
        let pods = self.pods_of(run);
        if let Some(namespace) = &run.placement.namespace {
            self.used_namespaces
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(namespace.clone());
        }
        let post = PostParams::default();
        match retry(|| pods.create(&post, &pod)).await {
            Ok(_) => {}
            // This run's pod exists already (a restarted executor, or a
            // second launch of the same run): follow it, do not start another.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tracing::info!(pod = name, "the run's pod exists already; following it");
            }
            Err(e) => return self.failed(started, format!("Failed to create kubernetes pod {name}: {e}")),
        }
        match self.follow(&pods, &spec, &name, progress.as_ref()).await {
            Some(result) => result,
            None => self.deleted(started, &name),
        }
    }

    /// The pod this run started before a restart: followed to its end
    /// (running or finished), so the operation is not run a second time.
    async fn adopt(&self, run: &OperationRun) -> Option<OperationResult> {
        let spec = self.pod_spec(run)?;
        let name = pod::pod_name(&spec, run);
        struct Quiet;
        impl ProgressSink for Quiet {
            fn report(&self, _progress: &OperationProgress) {}
            fn report_running(&self, _percent: f64, _message: &str) {}
        }
        self.follow(&self.pods_of(run), &spec, &name, &Quiet).await
    }

    /// Finished pods of POP older than the cutoff (spec §6.4: phase
    /// Succeeded or Failed, every container terminated), page by page.
    async fn reap_leftovers(&self, finished_before: pop_core::EpochMillis) -> Result<usize, LaunchError> {
        let mut removed = 0;
        for namespace in self.reaped_namespaces() {
            removed += self.reap_namespace(&namespace, finished_before).await?;
        }
        Ok(removed)
    }
}

impl PodLauncher {
    /// The pod reaper in one namespace.
    async fn reap_namespace(
        &self,
        namespace: &str,
        finished_before: pop_core::EpochMillis,
    ) -> Result<usize, LaunchError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let mut removed = 0;
        for phase in ["Succeeded", "Failed"] {
            let mut params = ListParams::default()
                .labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1))
                .fields(&format!("status.phase={phase}"))
                .limit(REAP_PAGE);
            loop {
                let page = retry(|| pods.list(&params))
                    .await
                    .map_err(|e| launch_error("cannot list finished pods".into(), e))?;
                for pod in &page.items {
                    if finished_at(pod).is_some_and(|at| at <= finished_before)
                        && let Some(name) = pod.metadata.name.as_deref()
                    {
                        match pods.delete(name, &DeleteParams::default()).await {
                            Ok(_) => removed += 1,
                            Err(kube::Error::Api(status)) if status.code == 404 => {}
                            Err(e) => tracing::warn!(pod = name, error = %e, "cannot delete a finished pod"),
                        }
                    }
                }
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => break,
                }
            }
        }
        Ok(removed)
    }
}

/// When every container of `pod` had terminated (the latest `finishedAt`),
/// in epoch ms; `None` while one has not.
fn finished_at(pod: &Pod) -> Option<i64> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let mut latest = None;
    for status in statuses {
        let terminated = status.state.as_ref()?.terminated.as_ref()?;
        let at = terminated.finished_at.as_ref()?.0.as_millisecond();
        latest = latest.max(Some(at));
    }
    latest
}
