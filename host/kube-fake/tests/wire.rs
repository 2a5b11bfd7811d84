//! The fake cluster through the real `kube` client over loopback HTTP:
//! what POP's launcher relies on behaves as on a real API server.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, Config};
use pop_kube_fake::{ClusterOptions, FakeCluster};
use serde_json::{Value, json};

const NS: &str = "pop";

async fn cluster(dir: &std::path::Path) -> (FakeCluster, Client) {
    let mut options = ClusterOptions::new(dir.join("cluster"));
    options.namespaces.push(NS.into());
    options.images.insert("shell:1".into(), PathBuf::from("/bin/sh"));
    options.node_labels.insert("zone".into(), "a".into());
    let cluster = FakeCluster::start(options, 0).await.expect("fake cluster");
    let mut config = Config::new(cluster.url().parse().unwrap());
    config.default_namespace = NS.into();
    let client = Client::try_from(config).expect("client");
    (cluster, client)
}

fn pod(name: &str, script: &str, extra: Value) -> Pod {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "pop", "pop.agendaId": name}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "handler", "image": "shell:1",
            "args": ["-c", script]}]}});
    merge(&mut pod, &extra);
    serde_json::from_value(pod).unwrap()
}

fn merge(target: &mut Value, extra: &Value) {
    match (target, extra) {
        (Value::Object(target), Value::Object(extra)) => {
            for (key, value) in extra {
                let slot = target.entry(key.clone()).or_insert(Value::Null);
                if slot.is_object() && value.is_object() {
                    merge(slot, value);
                } else {
                    *slot = value.clone();
                }
            }
        }
        (target, extra) => *target = extra.clone(),
    }
}

/// Whether a live process has `var` (NAME=value) in its environment.
fn carrying(var: &str) -> bool {
    std::fs::read_dir("/proc").into_iter().flatten().flatten().any(|entry| {
        std::fs::read(entry.path().join("environ"))
            .is_ok_and(|environ| environ.split(|b| *b == 0).any(|v| v == var.as_bytes()))
    })
}

/// Whether `condition` holds within a bound (checked every 20 ms).
async fn eventually(condition: impl Fn() -> bool) -> bool {
    for _ in 0..500 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Waits (bounded) until `pod` satisfies `done`.
async fn until(api: &Api<Pod>, name: &str, done: impl Fn(&Pod) -> bool) -> Pod {
    for _ in 0..500 {
        if let Ok(pod) = api.get(name).await
            && done(&pod)
        {
            return pod;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("pod {name} never got there: {:?}", api.get(name).await);
}

fn phase(pod: &Pod) -> String {
    pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default()
}

fn api_error(error: kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn objects_are_stored_listed_and_refused_as_by_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, client) = cluster(dir.path()).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let created = pods
        .create(&PostParams::default(), &pod("p1", "exit 0", json!({})))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.resource_version.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.namespace.as_deref(), Some(NS));
    let (code, reason) = api_error(
        pods.create(&PostParams::default(), &pod("p1", "", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    let (code, reason) = api_error(pods.get("nope").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    // POP's `app=<namePrefix>` label ends with '-': a real server refuses it.
    let bad = pod("p2", "", json!({"metadata": {"labels": {"app": "pop-sample-"}}}));
    let (code, reason) = api_error(pods.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    let elsewhere: Api<Pod> = Api::namespaced(client.clone(), "missing");
    let (code, _) = api_error(
        elsewhere
            .create(&PostParams::default(), &pod("p3", "", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404, "no such namespace");

    for n in 0..5 {
        let labels = json!({"metadata": {"labels": {"tier": if n % 2 == 0 { "even" } else { "odd" }}}});
        pods.create(&PostParams::default(), &pod(&format!("q{n}"), "exit 0", labels))
            .await
            .unwrap();
    }
    let even = pods.list(&ListParams::default().labels("tier=even")).await.unwrap();
    assert_eq!(even.items.len(), 3);
    let named = pods
        .list(&ListParams::default().fields("metadata.name=q1"))
        .await
        .unwrap();
    assert_eq!(named.items.len(), 1);
    let (code, _) = api_error(
        pods.list(&ListParams::default().fields("spec.containers=x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);
    // Pages of two, by `continue`.
    let mut seen = Vec::new();
    let mut params = ListParams::default().labels("tier").limit(2);
    loop {
        let page = pods.list(&params).await.unwrap();
        seen.extend(page.items.iter().filter_map(|p| p.metadata.name.clone()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(seen, ["q0", "q1", "q2", "q3", "q4"]);

    // Patches: annotations merge; a spec change is refused; a stale
    // resourceVersion conflicts.
    let patched = pods
        .patch(
            "q0",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"pop.report.progress": "{\"percentComplete\":50}"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.metadata.annotations.unwrap()["pop.report.progress"],
        "{\"percentComplete\":50}"
    );
    let (code, _) = api_error(
        pods.patch(
            "q0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"restartPolicy": "Always"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422, "a pod's spec is immutable");
    let stale = json!({"metadata": {"resourceVersion": "1", "labels": {"x": "y"}}});
    let (code, _) = api_error(
        pods.patch("q0", &PatchParams::default(), &Patch::Merge(stale))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 409);
    let huge = "x".repeat(300 * 1024);
    let (code, _) = api_error(
        pods.patch(
            "q0",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"big": huge}}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422, "annotations are limited to 256 KiB");
    // Without restartPolicy a pod restarts forever (the default is Always).
    let defaulted: Pod = serde_json::from_value(json!({"metadata": {"name": "d1"},
        "spec": {"containers": [{"name": "c", "image": "shell:1", "args": ["-c", "exit 0"]}]}}))
    .unwrap();
    let defaulted = pods.create(&PostParams::default(), &defaulted).await.unwrap();
    assert_eq!(defaulted.spec.unwrap().restart_policy.as_deref(), Some("Always"));
    let restarted = until(&pods, "d1", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|c| c[0].restart_count >= 1)
    })
    .await;
    assert_ne!(phase(&restarted), "Succeeded");
    pods.delete("d1", &DeleteParams::default()).await.unwrap();
    let maps: Api<ConfigMap> = Api::default_namespaced(client);
    let map: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "registry"}, "data": {"k": "v"}})).unwrap();
    maps.create(&PostParams::default(), &map).await.unwrap();
    assert_eq!(maps.get("registry").await.unwrap().data.unwrap()["k"], "v");
}

#[tokio::test]
async fn the_kubelet_runs_a_pod_with_its_environment_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, client) = cluster(dir.path()).await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let script =
        "echo \"pod=$MY_POD_NAME ns=$POD_NAMESPACE greeting=$GREETING payload=$PAYLOAD\"; echo HandlerComplete";
    let env = json!({"spec": {"containers": [{"name": "handler", "image": "shell:1", "args": ["-c", script], "env": [
        {"name": "WHO", "value": "world"},
        {"name": "GREETING", "value": "hello $(WHO)"},
        {"name": "PAYLOAD", "value": "{\"x\":\"$$(not expanded)\"}"},
        {"name": "MY_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]}]}});
    pods.create(&PostParams::default(), &pod("runs", "", env))
        .await
        .unwrap();
    let done = until(&pods, "runs", |p| phase(p) == "Succeeded").await;
    let status = done.status.unwrap();
    let terminated = status.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(terminated.exit_code, 0);
    assert_eq!(
        done.spec.unwrap().node_name.as_deref(),
        Some(pop_kube_fake::kubelet::NODE_NAME)
    );
    let log = pods.logs("runs", &LogParams::default()).await.unwrap();
    assert_eq!(
        log,
        "pod=runs ns=pop greeting=hello world payload={\"x\":\"$(not expanded)\"}\nHandlerComplete\n"
    );
    let tail = pods
        .logs(
            "runs",
            &LogParams {
                tail_lines: Some(1),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail, "HandlerComplete\n");

    // Following a running pod's log streams until it ends.
    pods.create(
        &PostParams::default(),
        &pod("follow", "for i in 1 2 3; do echo line $i; sleep 0.05; done", json!({})),
    )
    .await
    .unwrap();
    until(&pods, "follow", |p| phase(p) != "Pending").await;
    let stream = pods
        .log_stream(
            "follow",
            &LogParams {
                follow: true,
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    let lines: Vec<String> = stream.lines().try_collect().await.unwrap();
    assert_eq!(lines, ["line 1", "line 2", "line 3"]);

    // A failing container fails the pod with its exit code.
    pods.create(
        &PostParams::default(),
        &pod("fails", "echo broken >&2; exit 3", json!({})),
    )
    .await
    .unwrap();
    let failed = until(&pods, "fails", |p| phase(p) == "Failed").await;
    let state = failed.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap();
    assert_eq!(state.terminated.unwrap().exit_code, 3);
    assert_eq!(pods.logs("fails", &LogParams::default()).await.unwrap(), "broken\n");

    // Not schedulable here: stays Pending with the scheduler's reason.
    let elsewhere = pod("elsewhere", "exit 0", json!({"spec": {"nodeSelector": {"zone": "b"}}}));
    pods.create(&PostParams::default(), &elsewhere).await.unwrap();
    let pending = until(&pods, "elsewhere", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| !c.is_empty())
    })
    .await;
    let condition = &pending.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
    assert_eq!(
        (condition.type_.as_str(), condition.status.as_str()),
        ("PodScheduled", "False")
    );
    assert_eq!(condition.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(phase(&pending), "Pending");

    // An image nobody has: ErrImagePull, still Pending (and scheduled).
    let unknown = pod(
        "no-image",
        "",
        json!({"spec": {"containers": [{"name": "handler", "image": "nowhere:1"}]}}),
    );
    pods.create(&PostParams::default(), &unknown).await.unwrap();
    let waiting = until(&pods, "no-image", |p| {
        p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).is_some()
    })
    .await;
    let reason = waiting.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap()
        .reason;
    assert_eq!(reason.as_deref(), Some("ErrImagePull"));
    assert_eq!(phase(&waiting), "Pending");

    // Deleting a running pod kills its process: wait (bounded) for no
    // process to carry the pod's marker any more.
    let marker = format!("POP_TEST_MARKER={}", dir.path().display());
    let env = json!({"spec": {"containers": [{"name": "handler", "image": "shell:1", "args": ["-c", "exec sleep 60"],
        "env": [{"name": "POP_TEST_MARKER", "value": dir.path().display().to_string()}]}]}});
    pods.create(&PostParams::default(), &pod("deleted", "", env))
        .await
        .unwrap();
    until(&pods, "deleted", |p| phase(p) == "Running").await;
    assert!(
        eventually(|| carrying(&marker)).await,
        "the container runs as a process"
    );
    pods.delete("deleted", &DeleteParams::default()).await.unwrap();
    assert!(
        eventually(|| !carrying(&marker)).await,
        "the process of a deleted pod was killed"
    );
}

#[tokio::test]
async fn watches_resume_from_a_resource_version_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, client) = cluster(dir.path()).await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let created = pods
        .create(&PostParams::default(), &pod("w1", "exit 0", json!({})))
        .await
        .unwrap();
    let from = created.metadata.resource_version.clone().unwrap();
    let mut events = pods
        .watch(&WatchParams::default().labels("pop.agendaId=w1").timeout(10), &from)
        .await
        .unwrap()
        .boxed();
    let mut phases = Vec::new();
    while let Some(event) = events.try_next().await.unwrap() {
        match event {
            WatchEvent::Modified(pod) => {
                let phase = phase(&pod);
                if phases.last() != Some(&phase) {
                    phases.push(phase.clone());
                }
                if phase == "Succeeded" {
                    break;
                }
            }
            WatchEvent::Added(_) => panic!("resumed after the creation: no ADDED"),
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(phases.last().map(String::as_str), Some("Succeeded"), "{phases:?}");
    // From "0": the current state first.
    let mut from_now = pods
        .watch(&WatchParams::default().timeout(5), "0")
        .await
        .unwrap()
        .boxed();
    match from_now.try_next().await.unwrap() {
        Some(WatchEvent::Added(pod)) => assert_eq!(pod.metadata.name.as_deref(), Some("w1")),
        other => panic!("expected the pod as ADDED, got {other:?}"),
    }
    // Too old a resourceVersion: an ERROR event carrying 410, as from a
    // compacted server.
    for n in 0..(pop_kube_fake::HISTORY + 10) {
        pods.patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"n": n.to_string()}}})),
        )
        .await
        .unwrap();
    }
    let mut expired = pods.watch(&WatchParams::default(), &from).await.unwrap().boxed();
    match expired.try_next().await.unwrap() {
        Some(WatchEvent::Error(status)) => assert_eq!(status.code, 410),
        other => panic!("expected 410 Expired, got {other:?}"),
    }
}
