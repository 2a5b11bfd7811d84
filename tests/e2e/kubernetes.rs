//! `pop serve --kubernetes` on the fake cluster (`pop-kube-fake`), through
//! the real `kube` client: the README's fan-out/fan-in agenda with
//! `samplePod` operations runs to `succeeded`, each operation in a pod of
//! its own, values passed between them by `@<…>` references.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use pop_kube_fake::{ClusterOptions, FakeCluster};
use serde_json::{Value, json};

use crate::execution::{fan_out_fan_in, global_insight, wait_complete};
use crate::harness::*;

/// The `pop-sample` image as the fake kubelet runs it: POP's sample
/// handler, its result reported through the pod's annotations with
/// `pop-pod-report` (what a handler in a pod does).
fn sample_image(dir: &Path) -> std::path::PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_pop"));
    let script = format!(
        "#!/bin/sh\n\
         out=$('{sample}' 2>&1); code=$?\n\
         printf '%s\\n' \"$out\"\n\
         if [ $code -eq 0 ]; then\n\
           payload=$(printf '%s\\n' \"$out\" | sed -n 's/.*conclusionStatus=succeeded .* payload=//p')\n\
           '{report}' result \"$payload\" || exit 5\n\
         fi\n\
         exit $code\n",
        sample = bin.with_file_name("pop-sample-handler").display(),
        report = bin.with_file_name("pop-pod-report").display(),
    );
    let path = dir.join("pop-sample-image.sh");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn as_pods(mut agenda: Value) -> Value {
    for op in agenda["operations"].as_array_mut().unwrap() {
        op["type"] = json!("samplePod");
    }
    agenda
}

#[tokio::test]
async fn a_fan_out_fan_in_agenda_runs_as_pods_on_the_cluster() {
    let workspace = Workspace::new();
    let mut options = ClusterOptions::new(workspace.dir.path().join("cluster"));
    options.namespaces.push("pop".into());
    options
        .images
        .insert("pop-sample:1.0.0".into(), sample_image(workspace.dir.path()));
    let cluster = FakeCluster::start(options, 0).await.unwrap();
    let server = workspace.start_running(
        &Options::running()
            .env("KUBECONFIG", cluster.kubeconfig.display().to_string())
            .env("POP_KUBERNETES", "true")
            .env("POP_KUBERNETES_NAMESPACE", "pop"),
    );
    setup_tenancy(&server).await;
    global_insight(&server, "insight-pods", &["samplePod"]).await;
    let alice = server.client(ALICE);
    let agenda = alice.post("/pop/agenda", as_pods(fan_out_fan_in("acme"))).await.first();
    let progress_id = agenda["progressId"].as_str().unwrap();
    let done = wait_complete(&alice, progress_id, Duration::from_secs(60)).await;
    assert_eq!(done["processingStateMessage"], json!("succeeded"), "{done}");
    let join = done["operationProgress"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operation"] == json!("join"))
        .unwrap();
    let result: Value = serde_json::from_str(join["resultPayload"].as_str().unwrap()).unwrap();
    assert_eq!(result, json!({"pair": ["alpha", "beta"], "count": 2}));

    let mut config = kube::Config::new(cluster.url().parse().unwrap());
    config.default_namespace = "pop".into();
    let pods: Api<Pod> = Api::namespaced(kube::Client::try_from(config).unwrap(), "pop");
    let agenda_id = agenda["id"].as_str().unwrap();
    let ours = pods
        .list(&ListParams::default().labels(&format!("pop.agendaId={agenda_id}")))
        .await
        .unwrap();
    let mut operations: Vec<String> = ours
        .items
        .iter()
        .map(|p| p.metadata.labels.as_ref().unwrap()["pop.operation"].clone())
        .collect();
    operations.sort();
    assert_eq!(operations, ["fetch", "join", "left", "right"], "one pod per operation");
}
