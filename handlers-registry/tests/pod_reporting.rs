//! `pop-sample-handler` built with feature `kubernetes` reports onto its own pod's annotations
//! (spec §5.2), checked against the fake API server (`pop-kube-fake`) through the real client.
//! The handler runs as a plain child process with the pod's downward-API variables
//! (`MY_POD_NAME`, `POD_NAMESPACE`) and a `KUBECONFIG`; the pod object exists but its image is
//! never pulled, so the fake kubelet runs nothing for it.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use pop_core::{OperationProgress, ProcessingState};
use pop_handler::payload::{COMPRESSED_ENV_VAR, PAYLOAD_TYPE_ENV, SEGMENT_PREFIX, compress};
use pop_handler::reporter::{INTERVAL_ENV, PAYLOAD_ANNOTATION, PROGRESS_ANNOTATION};
use pop_kube_fake::{ClusterOptions, FakeCluster, write_kubeconfig};
use serde_json::{Value, json};

const NS: &str = "handlers";

struct World {
    _dir: tempfile::TempDir,
    // Kept for the test's length: dropping it stops the API server.
    _cluster: FakeCluster,
    kubeconfig: std::path::PathBuf,
    pods: Api<Pod>,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ClusterOptions::new(dir.path().join("cluster"));
    options.namespaces.push(NS.into());
    let cluster = FakeCluster::start(options, 0).await.unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, &cluster.url()).unwrap();
    let mut config = kube::Config::new(cluster.url().parse().unwrap());
    config.default_namespace = NS.into();
    let client = kube::Client::try_from(config).unwrap();
    World {
        _dir: dir,
        _cluster: cluster,
        kubeconfig,
        pods: Api::namespaced(client, NS),
    }
}

/// A pod for the handler to report onto; its image is mapped to no program, so it is never run.
async fn create_pod(pods: &Api<Pod>, name: &str) {
    let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": {"kept": "yes"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "handler", "image": "never-pulled:1"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
}

async fn annotations(pods: &Api<Pod>, name: &str) -> BTreeMap<String, String> {
    pods.get(name).await.unwrap().metadata.annotations.unwrap_or_default()
}

fn progress_of(annotations: &BTreeMap<String, String>) -> Option<OperationProgress> {
    annotations
        .get(PROGRESS_ANNOTATION)
        .map(|text| serde_json::from_str(text).expect("the progress annotation is OperationProgress JSON"))
}

struct Run {
    stdout: String,
    success: bool,
    /// Every distinct progress annotation seen while the handler ran.
    seen: Vec<OperationProgress>,
}

/// Runs the sample handler for the pod `name` with `env`, polling the pod's annotations until
/// it exits.
async fn run_handler(world: &World, name: &str, env: &[(String, String)]) -> Run {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pop-sample-handler"))
        .env_remove("POP_REPORT_FILE")
        .env_remove("PAYLOAD")
        .env("MY_POD_NAME", name)
        .env("POD_NAMESPACE", NS)
        .env("KUBECONFIG", &world.kubeconfig)
        .env("OPERATION_NAME", "op1")
        .env(INTERVAL_ENV, "100")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reading = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut text)
            .await
            .map(|_| text)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<OperationProgress> = Vec::new();
    let status = loop {
        if let Some(progress) = progress_of(&annotations(&world.pods, name).await)
            && seen.last() != Some(&progress)
        {
            seen.push(progress);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the handler did not finish");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    Run {
        stdout: reading.await.unwrap().unwrap(),
        success: status.success(),
        seen,
    }
}

/// Two sleep steps of 1 s: the 50 % EXECUTING progress is reported between them.
fn sleeping_payload() -> Value {
    json!({"actions": [{"action": "log", "paramsMap": {"sleepMilliseconds": 2000, "logMessage": "slept"}}],
        "resultPayload": {"answer": 42, "text": "x".repeat(300)}})
}

async fn assert_reported_success(world: &World, name: &str, run: &Run) {
    assert!(run.success, "{}", run.stdout);
    assert_eq!(run.stdout.lines().last(), Some("HandlerComplete"), "{}", run.stdout);
    assert!(run.stdout.contains("conclusionStatus=succeeded"), "{}", run.stdout);
    assert!(
        run.seen
            .iter()
            .any(|p| p.processing_state == Some(ProcessingState::Executing) && p.percent_complete == Some(50.0)),
        "an EXECUTING progress while it ran: {:?}",
        run.seen
    );
    let annotations = annotations(&world.pods, name).await;
    let progress = progress_of(&annotations).unwrap();
    assert_eq!(progress.processing_state, Some(ProcessingState::Complete));
    assert_eq!(progress.processing_state_message.as_deref(), Some("succeeded"));
    assert_eq!(progress.percent_complete, Some(100.0));
    assert_eq!(progress.operation.as_deref(), Some("op1"));
    let result: Value = serde_json::from_str(&annotations[PAYLOAD_ANNOTATION]).unwrap();
    assert_eq!(result, sleeping_payload()["resultPayload"]);
    assert_eq!(
        annotations["kept"], "yes",
        "a merge patch leaves other annotations alone"
    );
}

#[tokio::test]
async fn progress_and_result_go_to_the_pods_annotations() {
    let world = world().await;
    create_pod(&world.pods, "handler-plain").await;
    let env = [("PAYLOAD".to_owned(), sleeping_payload().to_string())];
    let run = run_handler(&world, "handler-plain", &env).await;
    assert_reported_success(&world, "handler-plain", &run).await;
}

#[tokio::test]
async fn a_compressed_payload_in_segments_is_read() {
    let world = world().await;
    create_pod(&world.pods, "handler-compressed").await;
    let segments = compress(&sleeping_payload().to_string(), 40);
    assert!(segments.len() > 1, "several segments");
    let mut env = vec![(PAYLOAD_TYPE_ENV.to_owned(), COMPRESSED_ENV_VAR.to_owned())];
    env.extend(
        segments
            .into_iter()
            .enumerate()
            .map(|(i, segment)| (format!("{SEGMENT_PREFIX}{i}"), segment)),
    );
    let run = run_handler(&world, "handler-compressed", &env).await;
    assert_reported_success(&world, "handler-compressed", &run).await;
}

#[tokio::test]
async fn a_failure_is_a_complete_failed_progress_without_payload() {
    let world = world().await;
    create_pod(&world.pods, "handler-fails").await;
    let payload = json!({"actions": [{"action": "exception", "paramsMap": {"exceptionMessage": "boom"}}]});
    let run = run_handler(&world, "handler-fails", &[("PAYLOAD".to_owned(), payload.to_string())]).await;
    assert!(!run.success);
    assert_eq!(run.stdout.lines().last(), Some("HandlerComplete"));
    let annotations = annotations(&world.pods, "handler-fails").await;
    let progress = progress_of(&annotations).unwrap();
    assert_eq!(progress.processing_state_message.as_deref(), Some("failed"));
    let event = &progress.diagnostic_events.unwrap()[0];
    assert_eq!(
        event.message.as_deref(),
        Some("An unknown error has occurred with operation: op1")
    );
    assert_eq!(event.stack_trace.as_deref(), Some("boom"));
    assert!(!annotations.contains_key(PAYLOAD_ANNOTATION));
}
