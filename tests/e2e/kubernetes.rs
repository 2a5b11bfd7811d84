//! `pop serve --kubernetes` on the fake cluster (`pop-kube-fake`), through
//! the real `kube` client: the README's fan-out/fan-in agenda with
//! `samplePod` operations runs to `succeeded`, each operation in a pod of
//! its own in the namespace the resource pool gives the customer, values
//! passed between them by `@<…>` references; a failing pod fails the
//! agenda with its last log lines, a pod deleted mid-run with "PodDeleted",
//! a pod no node takes after `podScheduledTimeoutMs`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use pop_kube_fake::{ClusterOptions, FakeCluster};
use serde_json::{Value, json};

use crate::execution::{fan_out_fan_in, global_insight, result_of, wait_complete};
use crate::harness::*;

/// The `pop-sample` image as the fake kubelet runs it: POP's sample
/// handler, built with `kubernetes` reporting (pop-kube enables it in the
/// workspace build), so it patches its own pod's annotations.
fn sample_image() -> std::path::PathBuf {
    Path::new(env!("CARGO_BIN_EXE_pop")).with_file_name("pop-sample-handler")
}

fn as_pods(mut agenda: Value) -> Value {
    for op in agenda["operations"].as_array_mut().unwrap() {
        op["type"] = json!("samplePod");
    }
    agenda
}

/// The namespace pool-1 gives acme's pods.
const ACME_NS: &str = "acme-pods";

/// A running server on a fake cluster with namespaces `pop` and
/// [`ACME_NS`], the built-in registry plus `samplePodGpu` (a pod only a
/// `gpu` node takes; the fake cluster has none), and a global insight for
/// the pod types.
struct PodWorld {
    // Dropped last: the cluster outlives the server.
    server: Server,
    cluster: FakeCluster,
    options: Options,
    workspace: Workspace,
}

impl PodWorld {
    async fn start() -> Self {
        Self::start_with(|_| {}, Options::running()).await
    }

    /// With `edit` applied to the registry and the server run with `options`.
    async fn start_with(edit: impl FnOnce(&mut Value), options: Options) -> Self {
        let workspace = Workspace::new();
        let mut cluster_options = ClusterOptions::new(workspace.dir.path().join("cluster"));
        cluster_options.namespaces.extend(["pop".into(), ACME_NS.into()]);
        cluster_options.images.insert("pop-sample:1.0.0".into(), sample_image());
        // The pop image, for executor pods.
        let pop = Path::new(env!("CARGO_BIN_EXE_pop")).to_path_buf();
        cluster_options.images.insert("pop:0.1.0".into(), pop);
        let cluster = FakeCluster::start(cluster_options, 0).await.unwrap();
        let mut registry: Value = serde_json::from_str(include_str!("../../handlers-registry/registry.json")).unwrap();
        registry["samplePodGpu"] = json!({"podConfig": {"namePrefix": "pop-gpu-", "imageName": "pop-sample:1.0.0",
            "useTaintedNodes": true, "taintedNodeSelector": "gpu", "taintedNodeToleration": "gpu",
            "podScheduledTimeoutMs": 1500}});
        edit(&mut registry);
        let registry_path = workspace.dir.path().join("registry.json");
        // Executor pods read the same registry.
        registry["executor"]["podConfig"]["envVars"]["POP_REGISTRY"] = json!(registry_path.display().to_string());
        std::fs::write(&registry_path, registry.to_string()).unwrap();
        let options = options
            .env("KUBECONFIG", cluster.kubeconfig.display().to_string())
            .env("POP_KUBERNETES", "true")
            .env("POP_KUBERNETES_NAMESPACE", "pop")
            .env("POP_REGISTRY", registry_path.display().to_string());
        let server = workspace.start_running(&options);
        setup_tenancy(&server).await;
        let pool = json!({"id": "pool-1", "customerId": "ops", "title": "local pool",
            "namespaces": {"byCustomer": {"acme": ACME_NS}}});
        server.client(ADMIN).put("/pop/resourcepool/pool-1", pool).await.first();
        global_insight(&server, "insight-pods", &["samplePod", "samplePodGpu"]).await;
        Self {
            server,
            cluster,
            options,
            workspace,
        }
    }

    /// `kill -9` the server (the executor), and start it again on the same
    /// data; the cluster and its pods live on.
    fn crash_and_restart(self) -> Self {
        let Self {
            server,
            cluster,
            options,
            workspace,
        } = self;
        server.kill();
        let server = workspace.start_running(&options);
        Self {
            server,
            cluster,
            options,
            workspace,
        }
    }

    fn pods(&self, namespace: &str) -> Api<Pod> {
        let mut config = kube::Config::new(self.cluster.url().parse().unwrap());
        config.default_namespace = namespace.into();
        Api::namespaced(kube::Client::try_from(config).unwrap(), namespace)
    }

    async fn pods_of(&self, namespace: &str, agenda_id: &str) -> Vec<Pod> {
        self.pods(namespace)
            .list(&ListParams::default().labels(&format!("pop.agendaId={agenda_id}")))
            .await
            .unwrap()
            .items
    }

    /// Submits a one-operation agenda of acme; its id and progress id.
    async fn submit_one(&self, op_type: &str, payload: Value) -> (String, String) {
        let agenda = json!({"customerId": "acme", "title": "one pod",
            "operations": [{"name": "only", "type": op_type, "payload": payload}]});
        let agenda = self.server.client(ALICE).post("/pop/agenda", agenda).await.first();
        (
            agenda["id"].as_str().unwrap().to_owned(),
            agenda["progressId"].as_str().unwrap().to_owned(),
        )
    }

    async fn wait_complete(&self, progress_id: &str) -> Value {
        wait_complete(&self.server.client(ALICE), progress_id, Duration::from_secs(60)).await
    }
}

/// The agenda's diagnostic messages, and every log line they carry.
fn diagnostics(progress: &Value) -> (Vec<String>, Vec<String>) {
    let events = progress["diagnosticEvents"].as_array().cloned().unwrap_or_default();
    let messages = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .map(str::to_owned)
        .collect();
    let lines = events
        .iter()
        .filter_map(|e| e["payload"]["log"].as_array())
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    (messages, lines)
}

#[tokio::test]
async fn a_fan_out_fan_in_agenda_runs_as_pods_in_the_customers_namespace() {
    let world = PodWorld::start().await;
    let alice = world.server.client(ALICE);
    let agenda = alice.post("/pop/agenda", as_pods(fan_out_fan_in("acme"))).await.first();
    let progress_id = agenda["progressId"].as_str().unwrap();
    let done = world.wait_complete(progress_id).await;
    assert_eq!(done["processingStateMessage"], json!("succeeded"), "{done}");
    assert_eq!(result_of(&done, "join"), json!({"pair": ["alpha", "beta"], "count": 2}));

    let agenda_id = agenda["id"].as_str().unwrap();
    assert!(
        world.pods_of("pop", agenda_id).await.is_empty(),
        "no pod of acme outside its namespace"
    );
    let ours = world.pods_of(ACME_NS, agenda_id).await;
    let mut operations: Vec<String> = ours
        .iter()
        .map(|p| p.metadata.labels.as_ref().unwrap()["pop.operation"].clone())
        .collect();
    operations.sort();
    assert_eq!(operations, ["fetch", "join", "left", "right"], "one pod per operation");
    let labels = ours[0].metadata.labels.as_ref().unwrap();
    assert_eq!(labels["pop.insightId"], "insight-pods");
    assert_eq!(labels["pop.resourcePoolId"], "pool-1");

    // globex has no namespace of its own: the shared one.
    let bob = world.server.client(BOB);
    let theirs = bob.post("/pop/agenda", as_pods(fan_out_fan_in("globex"))).await.first();
    let done = wait_complete(&bob, theirs["progressId"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(done["processingStateMessage"], json!("succeeded"), "{done}");
    assert_eq!(world.pods_of("pop", theirs["id"].as_str().unwrap()).await.len(), 4);
}

#[tokio::test]
async fn a_resource_pool_naming_an_invalid_namespace_is_refused() {
    let world = PodWorld::start().await;
    let pool = json!({"id": "pool-1", "customerId": "ops", "title": "local pool",
        "namespaces": {"byCustomer": {"acme": "Acme_Pods"}}});
    let reply = world.server.client(ADMIN).put("/pop/resourcepool/pool-1", pool).await;
    assert!(reply.status.is_client_error(), "{} {}", reply.status, reply.body);
    let text = reply.body["errorResponse"].to_string();
    assert!(text.contains("Acme_Pods") && text.contains("namespace"), "{text}");
}

#[tokio::test]
async fn a_failing_pod_fails_the_agenda_with_its_last_log_lines() {
    let world = PodWorld::start().await;
    let payload = json!({"actions": [
        {"action": "log", "paramsMap": {"logMessage": "about to break"}},
        {"action": "exception", "paramsMap": {"exceptionMessage": "the disk is full"}}]});
    let (_, progress_id) = world.submit_one("samplePod", payload).await;
    let done = world.wait_complete(&progress_id).await;
    assert_eq!(done["processingStateMessage"], json!("failed"), "{done}");
    let (messages, lines) = diagnostics(&done);
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Kubernetes pod failed: pop-sample-")),
        "{messages:?}"
    );
    assert!(lines.iter().any(|l| l.contains("about to break")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("the disk is full")), "{lines:?}");
}

#[tokio::test]
async fn a_pod_deleted_mid_run_fails_its_operation_with_pod_deleted() {
    let world = PodWorld::start().await;
    let payload = json!({"actions": [{"action": "log", "paramsMap": {"sleepMilliseconds": 60000}}]});
    let (agenda_id, progress_id) = world.submit_one("samplePod", payload).await;
    let name = loop {
        let pods = world.pods_of(ACME_NS, &agenda_id).await;
        if let Some(pod) = pods.first()
            && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        {
            break pod.metadata.name.clone().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    world
        .pods(ACME_NS)
        .delete(&name, &kube::api::DeleteParams::default())
        .await
        .unwrap();
    let done = world.wait_complete(&progress_id).await;
    assert_eq!(done["processingStateMessage"], json!("failed"), "{done}");
    let (messages, _) = diagnostics(&done);
    assert!(messages.iter().any(|m| m.contains("PodDeleted")), "{messages:?}");
}

#[tokio::test]
async fn a_pod_no_node_takes_fails_after_its_scheduling_timeout() {
    let world = PodWorld::start().await;
    let (agenda_id, progress_id) = world.submit_one("samplePodGpu", json!({})).await;
    let done = world.wait_complete(&progress_id).await;
    assert_eq!(done["processingStateMessage"], json!("failed"), "{done}");
    let (messages, _) = diagnostics(&done);
    assert!(
        messages
            .iter()
            .any(|m| m.contains("not scheduled") && m.contains("gpu")),
        "{messages:?}"
    );
    assert!(
        world.pods_of(ACME_NS, &agenda_id).await.is_empty(),
        "the unschedulable pod was removed"
    );
}

/// `kill -9` of the executor (the server) while 50 agendas of pod
/// operations run; after the restart every agenda succeeds, and every
/// operation got exactly one pod (the cluster's audit of creations) and
/// ran exactly once (the handlers' run log): the restarted executor found
/// the pods it had started, running or finished, instead of starting more.
#[tokio::test]
async fn a_crash_of_the_executor_starts_no_second_pod() {
    const AGENDAS: usize = 50;
    let run_log = tempfile::NamedTempFile::new().unwrap();
    let run_log_path = run_log.path().display().to_string();
    let edit = |registry: &mut Value| {
        registry["samplePod"]["podConfig"]["envVars"]["POP_SAMPLE_RUN_LOG"] = json!(run_log_path);
    };
    let world = PodWorld::start_with(edit, Options::running().env("POP_EXECUTION_LIMIT", "16")).await;
    world
        .server
        .client(ADMIN)
        .put("/pop/insight/insight-pods", json!({"queueSize": 50}))
        .await
        .first();
    let alice = world.server.client(ALICE);
    let step = |name: &str, input: &str| {
        json!({"name": name, "type": "samplePod", "payload": {
            "actions": [{"action": "log", "paramsMap": {"logMessage": name, "sleepMilliseconds": 300}}],
            "resultPayload": {"from": name, "input": input}}})
    };
    let mut agendas = Vec::with_capacity(AGENDAS);
    for i in 0..AGENDAS {
        let agenda = json!({"customerId": "acme", "linkId": "pod-crash", "title": format!("pods {i}"),
            "operations": [step("one", "start"), step("two", "@<one.out::/from>")]});
        let agenda = alice.post("/pop/agenda", agenda).await.first();
        agendas.push((
            agenda["id"].as_str().unwrap().to_owned(),
            agenda["progressId"].as_str().unwrap().to_owned(),
        ));
    }
    // Kill once some agendas finished while pods of others are running.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let all = alice
            .get("/pop/progress/agenda?bylinkId=pod-crash&bylimit=1000")
            .await
            .all();
        let complete = all.iter().filter(|p| p["processingState"] == json!("COMPLETE")).count();
        let running = world
            .pods(ACME_NS)
            .list(&ListParams::default().fields("status.phase=Running"))
            .await
            .unwrap()
            .items
            .len();
        if complete >= AGENDAS / 5 && running > 0 {
            assert!(complete < AGENDAS, "everything finished before the crash");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "agendas do not progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let world = world.crash_and_restart();

    let alice = world.server.client(ALICE);
    for (_, progress_id) in &agendas {
        let progress = wait_complete(&alice, progress_id, Duration::from_secs(180)).await;
        assert_eq!(progress["processingStateMessage"], json!("succeeded"), "{progress}");
    }
    let mut pods_per_operation: HashMap<(String, String), usize> = HashMap::new();
    for creation in world.cluster.cluster.audit.creations() {
        if creation.resource == "pods" {
            let key = (
                creation.labels["pop.agendaId"].clone(),
                creation.labels["pop.operation"].clone(),
            );
            *pods_per_operation.entry(key).or_default() += 1;
        }
    }
    assert_eq!(pods_per_operation.len(), AGENDAS * 2, "every operation got a pod");
    let twice: Vec<_> = pods_per_operation.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "operations with a second pod: {twice:?}");
    let mut runs: HashMap<String, usize> = HashMap::new();
    for line in std::fs::read_to_string(run_log.path()).unwrap().lines() {
        if let Some(operation) = line.strip_suffix(" started") {
            *runs.entry(operation.to_owned()).or_default() += 1;
        }
    }
    assert_eq!(runs.len(), AGENDAS * 2, "every operation ran");
    let again: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(again.is_empty(), "operations that ran twice: {again:?}");
}

/// The remote puller of a firewalled center: a second process, `pop puller
/// --executor-pods`, pointed at the server over HTTP with a token scoped to
/// one insight of an external resource pool, runs that insight's agendas as
/// executor pods (each `pop executor`, creating its operations' pods in the
/// customer's namespace) and never has more than the insight's
/// `executionLimit` of them running; the server's own puller takes none.
#[tokio::test]
async fn a_remote_puller_runs_an_insights_agendas_as_executor_pods_up_to_its_execution_limit() {
    const AGENDAS: usize = 6;
    const LIMIT: usize = 2;
    let edit = |registry: &mut Value| {
        registry["remotePod"] = registry["samplePod"].clone();
    };
    let world = PodWorld::start_with(edit, Options::running()).await;
    let admin = world.server.client(ADMIN);
    // initech's work runs at its own center, in its own namespace there.
    let pool = json!({"id": "pool-remote", "customerId": "ops", "title": "a center's cluster", "external": true,
        "namespaces": {"byCustomer": {"initech": ACME_NS}}});
    admin.post("/pop/resourcepool", pool).await.first();
    let customer = json!({"customerId": "initech", "title": "initech", "resourcePoolId": "pool-remote"});
    admin.post("/pop/customer", customer).await.first();
    let insight = json!({"id": "insight-remote", "customerId": "ops", "title": "remote", "resourcePoolId": "pool-remote",
        "isGlobal": true, "executionLimit": LIMIT, "queueSize": 10, "mappers": {"operationType": ["remotePod"]}});
    admin.post("/pop/insight", insight).await.first();

    // The scoped token serves its insight and nothing else.
    let scoped = world.server.client(PULLER);
    let refused = scoped.get("/pop/agenda").await;
    assert_eq!(refused.status.as_u16(), 403, "{}", refused.body);
    let other = scoped
        .post(
            "/pop/resourcepool/service/getAgenda",
            json!({"insightId": "insight-pods", "count": 1}),
        )
        .await;
    assert_eq!(other.status.as_u16(), 404, "{}", other.body);

    let registry_path = world.workspace.dir.path().join("registry.json");
    let _puller = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_pop"))
            .args([
                "puller",
                "--insight",
                "insight-remote",
                "--executor-pods",
                "--poll-ms",
                "100",
            ])
            .env("POP_SERVER", &world.server.base)
            .env("POP_TOKEN", PULLER)
            .env("POP_REGISTRY", &registry_path)
            .env("POP_KUBERNETES_NAMESPACE", "pop")
            .env("KUBECONFIG", &world.cluster.kubeconfig)
            .spawn()
            .unwrap(),
    );

    let max = world.server.client(MULTI);
    let mut progress_ids = Vec::new();
    for i in 0..AGENDAS {
        let agenda = json!({"customerId": "initech", "title": format!("remote {i}"), "operations": [
            {"name": "only", "type": "remotePod", "payload": {
                "actions": [{"action": "log", "paramsMap": {"logMessage": "far away", "sleepMilliseconds": 1200}}],
                "resultPayload": {"n": i}}}]});
        let agenda = max.post("/pop/agenda", agenda).await.first();
        assert_eq!(
            agenda["agendaInsight"]["insightId"],
            json!("insight-remote"),
            "{agenda}"
        );
        progress_ids.push(agenda["progressId"].as_str().unwrap().to_owned());
    }
    let executors = world.pods(ACME_NS);
    let selector = "pop.role=executor,pop.insightId=insight-remote";
    let mut most_running = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let pods = executors
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items;
        let running = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending"),
                    "Pending" | "Running"
                )
            })
            .count();
        assert!(
            running <= LIMIT,
            "{running} executor pods run at once; the limit is {LIMIT}"
        );
        most_running = most_running.max(running);
        let all = max.get("/pop/progress/agenda?bylimit=100").await.all();
        let done = all
            .iter()
            .filter(|p| progress_ids.contains(&p["id"].as_str().unwrap_or_default().to_owned()))
            .filter(|p| p["processingState"] == json!("COMPLETE"))
            .count();
        if done == AGENDAS {
            break;
        }
        if std::time::Instant::now() > deadline {
            for pod in &pods {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let log = executors.logs(&name, &Default::default()).await.unwrap_or_default();
                eprintln!(
                    "--- {name}: {}\n{log}",
                    serde_json::to_string(&pod.status).unwrap_or_default()
                );
            }
            panic!("the remote puller does not get through");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(most_running, LIMIT, "the puller ran as many as the insight allows");
    for (i, progress_id) in progress_ids.iter().enumerate() {
        let done = wait_complete(&max, progress_id, Duration::from_secs(10)).await;
        assert_eq!(done["processingStateMessage"], json!("succeeded"), "{done}");
        assert_eq!(result_of(&done, "only"), json!({"n": i}));
    }
    // One executor pod per agenda and one pod per operation, all in
    // initech's namespace, none by the server's own puller.
    let creations = world.cluster.cluster.audit.creations();
    let pods_in = |role: Option<&str>| {
        creations
            .iter()
            .filter(|c| c.resource == "pods" && c.labels.get("pop.role").map(String::as_str) == role)
            .map(|c| c.namespace.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(pods_in(Some("executor")), vec![ACME_NS.to_owned(); AGENDAS]);
    assert_eq!(pods_in(None), vec![ACME_NS.to_owned(); AGENDAS]);
    // Executor pods delete themselves when done.
    while !executors
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "executor pods are left behind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
