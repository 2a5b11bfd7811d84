//! The process kubelet: the fake cluster's one node. It schedules each new
//! pod (or leaves it Pending, `Unschedulable`, when its `nodeSelector` or
//! required node affinity does not match the node), runs its first
//! container as a local process (the image mapped to a program; an
//! unknown image is `ErrImagePull`), with the pod's environment as a
//! kubelet builds it (`$(VAR)` expansion, `$$` escapes, the downward API,
//! ConfigMap keys), writes its log, and moves the pod's phase and container
//! statuses as it runs, exits and, by `restartPolicy`, restarts. A deleted
//! pod's process is killed.
//!
//! What it does not do: volumes (the process sees this machine's
//! filesystem), resource limits, probes, init containers, more than one
//! container. In place of the service-account mount it hands the process
//! `KUBECONFIG`, so a handler reaches the API server the standard way.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::state::Cluster;
use crate::store::{Resource, Store};
use crate::time::now_rfc3339;

pub use crate::state::NODE_NAME;
/// The pods' (and the node's) address.
const POD_IP: &str = "127.0.0.1";

pub async fn run(cluster: Cluster, kubeconfig: PathBuf) {
    let mut events = cluster.store.subscribe();
    loop {
        match events.recv().await {
            Ok(event) if event.resource == Resource::Pods => {
                let name = event.object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                match event.kind {
                    "ADDED" => {
                        tokio::spawn(run_pod(cluster.clone(), kubeconfig.clone(), event.namespace, name));
                    }
                    "DELETED" => kill(&cluster, &event.namespace, &name),
                    _ => {}
                }
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// Kills every container (the cluster is going away).
pub fn kill_all(cluster: &Cluster) {
    let pids: Vec<i32> = {
        let processes = cluster.processes.lock().unwrap_or_else(|e| e.into_inner());
        processes.values().copied().collect()
    };
    for pid in pids {
        signal_group(pid);
    }
}

fn kill(cluster: &Cluster, namespace: &str, name: &str) {
    let pid = {
        let processes = cluster.processes.lock().unwrap_or_else(|e| e.into_inner());
        processes.get(&(namespace.to_owned(), name.to_owned())).copied()
    };
    if let Some(pid) = pid {
        signal_group(pid);
    }
    cluster.logs.end(namespace, name);
}

fn signal_group(pid: i32) {
    // SAFETY: kill(2) only sends a signal; the container leads its group.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Sets the pod's status to what `change` makes of it; `false` when the
/// pod is gone.
fn set_status(store: &Store, namespace: &str, name: &str, change: impl FnOnce(&mut Value)) -> bool {
    let updated = store.update(Resource::Pods, namespace, name, |current| {
        let mut next = current.clone();
        change(&mut next);
        Ok::<_, ()>(next)
    });
    matches!(updated, Ok(Ok(_)))
}

fn condition(kind: &str, status: bool, reason: Option<&str>, message: Option<&str>) -> Value {
    let mut condition = json!({"type": kind, "status": if status { "True" } else { "False" },
        "lastTransitionTime": now_rfc3339(), "lastProbeTime": null});
    if let Some(reason) = reason {
        condition["reason"] = json!(reason);
    }
    if let Some(message) = message {
        condition["message"] = json!(message);
    }
    condition
}

/// Whether the node satisfies the pod's `nodeSelector` and required node
/// affinity.
fn fits(pod: &Value, labels: &HashMap<String, String>) -> bool {
    let selector_ok = pod["spec"]["nodeSelector"].as_object().is_none_or(|wanted| {
        wanted
            .iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
    });
    let terms = pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array);
    let affinity_ok = terms.is_none_or(|terms| {
        terms.is_empty()
            || terms.iter().any(|term| {
                term["matchExpressions"].as_array().into_iter().flatten().all(|e| {
                    let key = e["key"].as_str().unwrap_or_default();
                    let values: Vec<&str> = e["values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let label = labels.get(key).map(String::as_str);
                    match e["operator"].as_str().unwrap_or_default() {
                        "In" => label.is_some_and(|l| values.contains(&l)),
                        "NotIn" => label.is_none_or(|l| !values.contains(&l)),
                        "Exists" => label.is_some(),
                        "DoesNotExist" => label.is_none(),
                        _ => false,
                    }
                })
            })
    });
    selector_ok && affinity_ok
}

/// `$(VAR)` expanded from `defined`; `$$` is a literal `$`; an unknown
/// reference stays as written (as a kubelet does).
pub fn expand(value: &str, defined: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match defined.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The downward API: a pod field by its `fieldPath`.
fn field(pod: &Value, path: &str) -> Option<String> {
    if let Some(key) = path
        .strip_prefix("metadata.labels['")
        .and_then(|k| k.strip_suffix("']"))
    {
        return pod["metadata"]["labels"][key].as_str().map(str::to_owned);
    }
    if let Some(key) = path
        .strip_prefix("metadata.annotations['")
        .and_then(|k| k.strip_suffix("']"))
    {
        return pod["metadata"]["annotations"][key].as_str().map(str::to_owned);
    }
    match path {
        "metadata.name" | "metadata.namespace" | "metadata.uid" | "spec.nodeName" | "spec.serviceAccountName" => pod
            .pointer(&format!("/{}", path.replace('.', "/")))
            .and_then(Value::as_str)
            .map(str::to_owned),
        "status.podIP" | "status.hostIP" => Some(POD_IP.to_owned()),
        _ => None,
    }
}

/// The container's environment, in order, as the kubelet builds it.
fn environment(
    cluster: &Cluster,
    pod: &Value,
    container: &Value,
    kubeconfig: &std::path::Path,
) -> Vec<(String, String)> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut defined: HashMap<String, String> = HashMap::new();
    let mut env = vec![
        (
            "PATH".to_owned(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        ),
        (
            "HOSTNAME".to_owned(),
            pod["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
        ),
        // Stands in for the service-account mount: how a container finds
        // the API server here.
        ("KUBECONFIG".to_owned(), kubeconfig.display().to_string()),
    ];
    for entry in container["env"].as_array().into_iter().flatten() {
        let name = entry["name"].as_str().unwrap_or_default().to_owned();
        let value = if let Some(value) = entry["value"].as_str() {
            Some(expand(value, &defined))
        } else if let Some(path) = entry.pointer("/valueFrom/fieldRef/fieldPath").and_then(Value::as_str) {
            field(pod, path)
        } else if let Some(reference) = entry.pointer("/valueFrom/configMapKeyRef") {
            let map = reference["name"].as_str().unwrap_or_default();
            let key = reference["key"].as_str().unwrap_or_default();
            cluster
                .store
                .get(Resource::ConfigMaps, namespace, map)
                .and_then(|m| m["data"][key].as_str().map(str::to_owned))
        } else {
            Some(String::new())
        };
        if let Some(value) = value {
            defined.insert(name.clone(), value.clone());
            env.retain(|(n, _)| *n != name);
            env.push((name, value));
        }
    }
    env
}

async fn run_pod(cluster: Cluster, kubeconfig: PathBuf, namespace: String, name: String) {
    let store = &cluster.store;
    let Some(pod) = store.get(Resource::Pods, &namespace, &name) else {
        return;
    };
    // Schedule.
    if !fits(&pod, &cluster.options.node_labels) {
        set_status(store, &namespace, &name, |p| {
            p["status"]["conditions"] = json!([condition(
                "PodScheduled",
                false,
                Some("Unschedulable"),
                Some(
                    "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available."
                )
            )]);
        });
        return;
    }
    let scheduled = store.update(Resource::Pods, &namespace, &name, |current| {
        let mut next = current.clone();
        next["spec"]["nodeName"] = json!(NODE_NAME);
        next["status"]["conditions"] = json!([condition("PodScheduled", true, None, None)]);
        next["status"]["hostIP"] = json!(POD_IP);
        Ok::<_, ()>(next)
    });
    let Ok(Ok(pod)) = scheduled else { return };
    let container = pod["spec"]["containers"][0].clone();
    let container_name = container["name"].as_str().unwrap_or_default().to_owned();
    let image = container["image"].as_str().unwrap_or_default().to_owned();
    let Some(program) = cluster.options.images.get(&image).cloned() else {
        set_status(store, &namespace, &name, |p| {
            p["status"]["containerStatuses"] = json!([{"name": container_name, "image": image, "imageID": "",
                "ready": false, "started": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull",
                    "message": format!("failed to pull and unpack image \"{image}\": not found")}}}]);
        });
        return;
    };
    let log_path = cluster
        .options
        .work_dir
        .join("logs")
        .join(format!("{namespace}_{name}.log"));
    let _ = std::fs::create_dir_all(log_path.parent().unwrap_or(&cluster.options.work_dir));
    let restart_policy = pod["spec"]["restartPolicy"].as_str().unwrap_or("Always").to_owned();
    let mut restarts = 0u32;
    let mut last_state = Value::Null;
    loop {
        let env = environment(&cluster, &pod, &container, &kubeconfig);
        let defined: HashMap<String, String> = env.iter().cloned().collect();
        let strings = |field: &str| -> Vec<String> {
            container[field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|a| expand(a, &defined))
                .collect()
        };
        let (command, args) = (strings("command"), strings("args"));
        let (program, mut argv) = match command.split_first() {
            Some((first, rest)) => (PathBuf::from(first), rest.to_vec()),
            None => (program.clone(), Vec::new()),
        };
        argv.extend(args);
        let Ok(out) = std::fs::OpenOptions::new().create(true).append(true).open(&log_path) else {
            return;
        };
        let Ok(err) = out.try_clone() else { return };
        let mut command = tokio::process::Command::new(&program);
        command
            .args(&argv)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = container["workingDir"].as_str() {
            command.current_dir(dir);
        }
        let started_at = now_rfc3339();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                set_status(store, &namespace, &name, |p| {
                    p["status"]["phase"] = json!("Failed");
                    p["status"]["containerStatuses"] = json!([{"name": container_name, "image": image,
                        "ready": false, "restartCount": restarts, "state": {"terminated": {"exitCode": 128,
                        "reason": "StartError", "message": e.to_string(), "startedAt": started_at, "finishedAt": now_rfc3339()}}}]);
                });
                cluster.logs.end(&namespace, &name);
                return;
            }
        };
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or_default();
        cluster
            .processes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.clone(), name.clone()), pid);
        cluster.logs.started(&namespace, &name, log_path.clone());
        let running = set_status(store, &namespace, &name, |p| {
            let status = &mut p["status"];
            status["phase"] = json!("Running");
            status["podIP"] = json!(POD_IP);
            status["podIPs"] = json!([{"ip": POD_IP}]);
            if status["startTime"].is_null() {
                status["startTime"] = json!(started_at);
            }
            status["conditions"] = json!([
                condition("PodScheduled", true, None, None),
                condition("Initialized", true, None, None),
                condition("ContainersReady", true, None, None),
                condition("Ready", true, None, None)
            ]);
            status["containerStatuses"] = json!([{"name": container_name, "image": image,
                "imageID": format!("fake://{image}"), "containerID": format!("fake://{pid}"),
                "ready": true, "started": true, "restartCount": restarts,
                "lastState": last_state, "state": {"running": {"startedAt": started_at}}}]);
        });
        if !running {
            // Deleted meanwhile.
            signal_group(pid);
            cluster.logs.end(&namespace, &name);
            return;
        }
        let code = match child.wait().await {
            Ok(status) => status.code().unwrap_or(137),
            Err(_) => 137,
        };
        cluster
            .processes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(namespace.clone(), name.clone()));
        let terminated = json!({"terminated": {"exitCode": code,
            "reason": if code == 0 { "Completed" } else { "Error" },
            "startedAt": started_at, "finishedAt": now_rfc3339(), "containerID": format!("fake://{pid}")}});
        let restart = match restart_policy.as_str() {
            "Always" => true,
            "OnFailure" => code != 0,
            _ => false,
        };
        if !restart {
            set_status(store, &namespace, &name, |p| {
                let status = &mut p["status"];
                status["phase"] = json!(if code == 0 { "Succeeded" } else { "Failed" });
                status["conditions"] = json!([
                    condition("PodScheduled", true, None, None),
                    condition("Initialized", true, None, None),
                    condition("ContainersReady", false, Some("PodCompleted"), None),
                    condition("Ready", false, Some("PodCompleted"), None)
                ]);
                status["containerStatuses"] = json!([{"name": container_name, "image": image,
                    "imageID": format!("fake://{image}"), "ready": false, "started": false,
                    "restartCount": restarts, "state": terminated}]);
            });
            cluster.logs.end(&namespace, &name);
            return;
        }
        // CrashLoopBackOff: 1 s doubling to 10 s (a real kubelet: 10 s to 5 min).
        restarts += 1;
        last_state = terminated;
        let backoff = Duration::from_secs(1 << restarts.min(3)).min(Duration::from_secs(10));
        let waiting = set_status(store, &namespace, &name, |p| {
            p["status"]["containerStatuses"] = json!([{"name": container_name, "image": image,
                "ready": false, "started": false, "restartCount": restarts, "lastState": last_state,
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                    "message": format!("back-off restarting failed container {container_name}")}}}]);
        });
        if !waiting {
            cluster.logs.end(&namespace, &name);
            return;
        }
        tokio::time::sleep(backoff).await;
        if store.get(Resource::Pods, &namespace, &name).is_none() {
            cluster.logs.end(&namespace, &name);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_expansion_as_a_kubelet_does_it() {
        let defined = HashMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(expand("x$(A)y", &defined), "x1y");
        assert_eq!(expand("$(B)", &defined), "$(B)");
        assert_eq!(expand("$$(A)", &defined), "$(A)");
        assert_eq!(expand("cost $5", &defined), "cost $5");
        assert_eq!(expand("{\"a\":\"$$(x)\"}", &defined), "{\"a\":\"$(x)\"}");
    }

    #[test]
    fn scheduling_by_selector_and_affinity() {
        let labels = HashMap::from([("zone".to_string(), "a".to_string())]);
        assert!(fits(&json!({"spec": {}}), &labels));
        assert!(fits(&json!({"spec": {"nodeSelector": {"zone": "a"}}}), &labels));
        assert!(!fits(&json!({"spec": {"nodeSelector": {"zone": "b"}}}), &labels));
        let affinity = |op: &str, values: Value| {
            json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": op, "values": values}]}]}}}}})
        };
        assert!(fits(&affinity("In", json!(["a", "b"])), &labels));
        assert!(!fits(&affinity("NotIn", json!(["a"])), &labels));
        assert!(!fits(&affinity("DoesNotExist", json!([])), &labels));
    }
}
