//! The pod launcher through the `Launcher` port against the fake cluster
//! (`pop-kube-fake`), over loopback HTTP through the real `kube` client:
//! success with the handler's annotations, failure with the last log
//! lines, a pod deleted mid-run, a pod that is never scheduled, a second
//! launch or an adoption of the same run finding its pod instead of
//! starting another, the pod reaper, and the launcher conformance suite.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use pop_core::{OperationProgress, ProcessingState};
use pop_handlers_registry::Registry;
use pop_kube::{PodLauncher, PodLauncherConfig};
use pop_kube_fake::{ClusterOptions, FakeCluster};
use pop_ports::launcher::conformance::{LauncherFixture, RecordingSink, launcher_conformance, run_of};
use pop_ports::{Launcher, SystemClock};
use serde_json::json;

const NS: &str = "pop";
/// A customer's own namespace, as a resource pool assigns it.
const CUSTOMER_NS: &str = "acme-pods";

/// A handler in the test image: reports 50 %, then its payload as the result.
fn echo_script(reporter: &Path) -> String {
    format!(
        "'{r}' progress '{{\"processingState\":\"EXECUTING\",\"percentComplete\":50}}' && \
         '{r}' result \"$PAYLOAD\" && echo HandlerComplete",
        r = reporter.display()
    )
}

struct World {
    _dir: tempfile::TempDir,
    // Kept for the test's length: dropping it stops the API server.
    _cluster: FakeCluster,
    launcher: Arc<PodLauncher>,
    pods: Api<Pod>,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let reporter = PathBuf::from(env!("CARGO_BIN_EXE_pop-pod-report"));
    let mut options = ClusterOptions::new(dir.path().join("cluster"));
    options.namespaces.push(NS.into());
    options.namespaces.push(CUSTOMER_NS.into());
    options.images.insert("pop-test:1".into(), PathBuf::from("/bin/sh"));
    let cluster = FakeCluster::start(options, 0).await.unwrap();
    let pod = |script: String| {
        json!({"podConfig": {"imageName": "pop-test:1", "namePrefix": "pop-test-",
        "arguments": ["-c", script]}})
    };
    let registry = json!({
        "basePodConfig": {"serviceAccountName": "pop", "cpuMinRequestCount": "0.1", "cpuMaxRequestCount": "1",
            "podScheduledTimeoutMs": 20000, "podStdoutTimeout": 20000},
        "echo": pod(echo_script(&reporter)),
        "fails": pod("echo first; echo second; echo broken >&2; exit 4".into()),
        "sleeps": pod("sleep 30".into()),
        "quiet": {"podConfig": {"imageName": "pop-test:1", "namePrefix": "pop-quiet-", "podStdoutTimeout": 1500,
            "arguments": ["-c", "echo started; sleep 30"]}},
        "nowhere": {"podConfig": {"imageName": "missing:1", "podScheduledTimeoutMs": 300}},
        "local": {"processConfig": {"program": "/bin/true"}},
    });
    let registry = Arc::new(Registry::from_value(&registry).expect("a valid registry"));
    let mut config = kube::Config::new(cluster.url().parse().unwrap());
    config.default_namespace = NS.into();
    let client = kube::Client::try_from(config).unwrap();
    let launcher = Arc::new(PodLauncher::new(
        client.clone(),
        registry,
        Arc::new(SystemClock),
        PodLauncherConfig::new(NS),
    ));
    World {
        _dir: dir,
        _cluster: cluster,
        launcher,
        pods: Api::namespaced(client, NS),
    }
}

fn message(result: &pop_ports::OperationResult) -> String {
    result
        .progress
        .diagnostic_events
        .as_ref()
        .and_then(|e| e.last())
        .and_then(|e| e.message.clone())
        .unwrap_or_default()
}

async fn pods_of(pods: &Api<Pod>, agenda: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("pop.agendaId={agenda}")))
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn a_pod_runs_the_operation_and_its_annotations_are_the_result() {
    let world = world().await;
    // `$(...)` in a payload must reach the handler as written, not expanded.
    let payload = json!({"text": "$(HOME) stays", "n": 1});
    let run = run_of("a1", "op1", "echo", payload.clone());
    let progress = Arc::new(RecordingSink::default());
    let result = world.launcher.launch(&run, progress.clone()).await;
    assert_eq!(
        result.progress.processing_state_message.as_deref(),
        Some("succeeded"),
        "{result:?}"
    );
    assert_eq!(result.output, Some(payload));
    let reported = progress.0.lock().unwrap().clone();
    assert!(
        reported.iter().any(|p| p.percent_complete == Some(50.0)),
        "the handler's progress annotation was passed on: {reported:?}"
    );
    let pods = pods_of(&world.pods, "a1").await;
    assert_eq!(pods.len(), 1);
    let labels = pods[0].metadata.labels.clone().unwrap();
    assert_eq!(labels["pop.operation"], "op1");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "pop");
    assert_eq!(pods[0].spec.as_ref().unwrap().restart_policy.as_deref(), Some("Never"));
}

#[tokio::test]
async fn a_failed_pod_fails_the_operation_with_its_last_log_lines() {
    let world = world().await;
    let result = world
        .launcher
        .launch(
            &run_of("a2", "op1", "fails", json!({})),
            Arc::new(RecordingSink::default()),
        )
        .await;
    assert_eq!(result.progress.processing_state_message.as_deref(), Some("failed"));
    let name = pods_of(&world.pods, "a2").await[0].metadata.name.clone().unwrap();
    assert_eq!(message(&result), format!("Kubernetes pod failed: {name}"));
    let payload = result
        .progress
        .diagnostic_events
        .unwrap()
        .last()
        .unwrap()
        .payload
        .clone()
        .unwrap();
    assert_eq!(payload["log"], json!(["first", "second", "broken"]));
    assert_eq!(payload["exitCode"], json!(4));
}

#[tokio::test]
async fn a_pod_deleted_mid_run_fails_with_pod_deleted() {
    let world = world().await;
    let launcher = world.launcher.clone();
    let running = tokio::spawn(async move {
        launcher
            .launch(
                &run_of("a3", "op1", "sleeps", json!({})),
                Arc::new(RecordingSink::default()),
            )
            .await
    });
    let name = loop {
        let pods = pods_of(&world.pods, "a3").await;
        if let Some(pod) = pods.first()
            && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        {
            break pod.metadata.name.clone().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    world.pods.delete(&name, &DeleteParams::default()).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.progress.processing_state_message.as_deref(), Some("failed"));
    assert!(message(&result).contains("PodDeleted"), "{}", message(&result));
}

#[tokio::test]
async fn a_pod_never_scheduled_fails_after_its_timeout_and_is_removed() {
    let world = world().await;
    let result = world
        .launcher
        .launch(
            &run_of("a4", "op1", "nowhere", json!({})),
            Arc::new(RecordingSink::default()),
        )
        .await;
    let text = message(&result);
    assert!(
        text.contains("not scheduled") && text.contains("ErrImagePull"),
        "{text}"
    );
    assert!(pods_of(&world.pods, "a4").await.is_empty(), "the pod was deleted");
}

#[tokio::test]
async fn the_same_run_never_gets_a_second_pod() {
    let world = world().await;
    let mut run = run_of("a5", "op1", "echo", json!({"v": 5}));
    let first = world.launcher.launch(&run, Arc::new(RecordingSink::default())).await;
    assert_eq!(first.output, Some(json!({"v": 5})));
    // The executor restarted: the run recorded EXECUTING is adopted from
    // its pod, and a second launch of it finds the same pod.
    run.last_progress = Some(OperationProgress {
        processing_state: Some(ProcessingState::Executing),
        ..Default::default()
    });
    let adopted = world.launcher.adopt(&run).await.expect("the finished pod is adopted");
    assert_eq!(adopted.output, Some(json!({"v": 5})));
    let again = world.launcher.launch(&run, Arc::new(RecordingSink::default())).await;
    assert_eq!(again.output, Some(json!({"v": 5})));
    assert_eq!(pods_of(&world.pods, "a5").await.len(), 1, "one pod for the run");
    // The next attempt (a rerun, a retry) is a new run: a new pod.
    run.attempt = 2;
    assert!(
        world.launcher.adopt(&run).await.is_none(),
        "nothing of attempt 2 to adopt"
    );
    world.launcher.launch(&run, Arc::new(RecordingSink::default())).await;
    assert_eq!(pods_of(&world.pods, "a5").await.len(), 2);
}

#[tokio::test]
async fn the_reaper_removes_finished_pods_and_keeps_running_ones() {
    let world = world().await;
    world
        .launcher
        .launch(
            &run_of("a6", "op1", "echo", json!({})),
            Arc::new(RecordingSink::default()),
        )
        .await;
    world
        .launcher
        .launch(
            &run_of("a6", "op2", "fails", json!({})),
            Arc::new(RecordingSink::default()),
        )
        .await;
    let launcher = world.launcher.clone();
    let running = tokio::spawn(async move {
        launcher
            .launch(
                &run_of("a6", "op3", "sleeps", json!({})),
                Arc::new(RecordingSink::default()),
            )
            .await
    });
    while pods_of(&world.pods, "a6").await.len() < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(
        world.launcher.reap_leftovers(now - 3_600_000).await.unwrap(),
        0,
        "none is old enough"
    );
    assert_eq!(world.launcher.reap_leftovers(now + 60_000).await.unwrap(), 2);
    let left = pods_of(&world.pods, "a6").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].metadata.labels.as_ref().unwrap()["pop.operation"], "op3");
    running.abort();
}

#[tokio::test]
async fn a_pod_whose_log_goes_quiet_past_its_stdout_timeout_fails_and_is_removed() {
    let world = world().await;
    let result = world
        .launcher
        .launch(
            &run_of("a7", "op1", "quiet", json!({})),
            Arc::new(RecordingSink::default()),
        )
        .await;
    let text = message(&result);
    assert!(
        text.contains("no log activity") && text.contains("podStdoutTimeout 1500 ms"),
        "{text}"
    );
    let log = &result.progress.diagnostic_events.unwrap()[0].payload.clone().unwrap()["log"];
    assert_eq!(log, &json!(["started"]));
    while !pods_of(&world.pods, "a7").await.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_run_placed_in_a_customer_namespace_gets_its_pod_there_and_only_there() {
    let world = world().await;
    let mut run = run_of("a8", "op1", "echo", json!({"v": 8}));
    run.placement = pop_ports::Placement {
        insight_id: "acme-insight".into(),
        resource_pool_id: "pool-1".into(),
        namespace: Some(CUSTOMER_NS.into()),
    };
    let result = world.launcher.launch(&run, Arc::new(RecordingSink::default())).await;
    assert_eq!(result.output, Some(json!({"v": 8})), "{result:?}");
    assert!(
        pods_of(&world.pods, "a8").await.is_empty(),
        "nothing in the default namespace"
    );
    let theirs: Api<Pod> = Api::namespaced(world.pods.clone().into_client(), CUSTOMER_NS);
    let pods = pods_of(&theirs, "a8").await;
    assert_eq!(pods.len(), 1);
    let labels = pods[0].metadata.labels.clone().unwrap();
    assert_eq!(labels["pop.insightId"], "acme-insight");
    assert_eq!(labels["pop.resourcePoolId"], "pool-1");
    // Adoption looks there too, and the reaper cleans it.
    run.last_progress = Some(OperationProgress {
        processing_state: Some(ProcessingState::Executing),
        ..Default::default()
    });
    assert_eq!(world.launcher.adopt(&run).await.unwrap().output, Some(json!({"v": 8})));
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 60_000;
    assert_eq!(world.launcher.reap_leftovers(later).await.unwrap(), 1);
    assert!(pods_of(&theirs, "a8").await.is_empty());
}

#[tokio::test]
async fn the_pod_launcher_passes_the_launcher_suite() {
    let world = world().await;
    launcher_conformance(LauncherFixture {
        launcher: world.launcher.clone(),
        succeeds: ("echo".into(), json!({"k": "v"}), json!({"k": "v"})),
        fails: ("fails".into(), json!({})),
        foreign: "local".into(),
    })
    .await;
}
