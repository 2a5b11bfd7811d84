//! The pod of one operation run (spec §5.4, §5.5, with what a real API
//! server refuses fixed): its name, labels, container, environment and
//! resources, from the registry's layered `PodConfig`.

use std::collections::BTreeMap;

use pop_handler::payload;
use pop_handlers_registry::{AliveCheckDetails, PodConfig, PodSpec};
use pop_ports::{OperationRun, sha256_hex};
use serde_json::{Value, json};

/// Annotations a handler reports through (spec §5.2).
pub const PROGRESS_ANNOTATION: &str = "pop.report.progress";
pub const PAYLOAD_ANNOTATION: &str = "pop.report.payload";

/// Labels every pod of POP carries (selectable by the reaper).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "pop");
pub const AGENDA_LABEL: &str = "pop.agendaId";
pub const OPERATION_LABEL: &str = "pop.operation";
pub const PROGRESS_LABEL: &str = "pop.progressId";
pub const INSIGHT_LABEL: &str = "pop.insightId";
pub const RESOURCE_POOL_LABEL: &str = "pop.resourcePoolId";

/// The pod's name: the configured prefix (made a valid DNS label) and a
/// hash of (progress id, operation, attempt). The same run always gets the
/// same name, so an executor that restarts finds the pod it started
/// instead of starting another; a later attempt gets a new one.
pub fn pod_name(spec: &PodSpec, run: &OperationRun) -> String {
    let prefix = dns_prefix(spec.pod_config.name_prefix.as_deref().unwrap_or("pop-"));
    let key = format!("{}\u{0}{}\u{0}{}", run.progress_id, run.name, run.attempt);
    format!("{prefix}{}", &sha256_hex(key.as_bytes())[..20])
}

/// `prefix` lowercased, other characters as `-`, at most 40 characters,
/// starting with a letter and ending with `-`.
fn dns_prefix(prefix: &str) -> String {
    let mut out: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "pop-");
    }
    if !out.ends_with('-') {
        out.push('-');
    }
    out
}

/// A label value for arbitrary text: the text when Kubernetes allows it,
/// else a hash (label values are at most 63 characters of `[A-Za-z0-9._-]`,
/// alphanumeric at both ends; POP's `app=<namePrefix>` broke this rule).
pub fn label_value(text: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let valid = text.len() <= 63
        && text.chars().all(allowed)
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid || text.is_empty() {
        text.to_owned()
    } else {
        format!("h-{}", &sha256_hex(text.as_bytes())[..32])
    }
}

/// An environment value as the kubelet will read it: `$(` would start a
/// variable reference, so it is escaped as `$$(`.
pub fn env_value(value: &str) -> String {
    value.replace("$(", "$$(")
}

/// What the launcher adds to every pod, beyond the registry's PodConfig.
#[derive(Debug, Clone, Default)]
pub struct PodSite {
    /// POP's `pop.kubernetes.zone`: pods go to nodes labelled `<zone>: "true"`.
    pub zone: Option<String>,
}

/// The whole pod object for `run`.
pub fn build(spec: &PodSpec, run: &OperationRun, name: &str, site: &PodSite) -> Value {
    let config = &spec.pod_config;
    let mut labels: BTreeMap<String, String> = config.labels.iter().map(|(k, v)| (k.clone(), label_value(v))).collect();
    // POP's `app=<namePrefix>`, without the trailing '-' a real server refuses.
    let prefix = dns_prefix(config.name_prefix.as_deref().unwrap_or("pop-"));
    labels.insert("app".into(), label_value(prefix.trim_end_matches('-')));
    labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    labels.insert(AGENDA_LABEL.into(), label_value(&run.agenda_id));
    labels.insert(OPERATION_LABEL.into(), label_value(&run.name));
    labels.insert(PROGRESS_LABEL.into(), label_value(&run.progress_id));
    labels.insert(INSIGHT_LABEL.into(), label_value(&run.placement.insight_id));
    labels.insert(RESOURCE_POOL_LABEL.into(), label_value(&run.placement.resource_pool_id));

    let mut env: Vec<Value> = config
        .env_vars
        .iter()
        .map(|(k, v)| json!({"name": k, "value": env_value(v)}))
        .collect();
    let last_progress = run
        .last_progress
        .as_ref()
        .and_then(|p| serde_json::to_string(p).ok())
        .unwrap_or_default();
    for (key, value) in payload_env(&run.payload.to_string()) {
        env.retain(|e| e["name"] != key);
        env.push(json!({"name": key, "value": env_value(&value)}));
    }
    for (key, value) in [
        ("LAST_PROGRESS", last_progress),
        ("CID", run.cid.clone()),
        ("AGENDA_ID", run.agenda_id.clone()),
        ("OPERATION_NAME", run.name.clone()),
        ("OPERATION_ID", format!("{}-{}", run.progress_id, run.name)),
        ("CUSTOMER_ID", run.customer_id.clone()),
        ("PROGRESS_ID", run.progress_id.clone()),
        ("LOG_LEVEL", "INFO".into()),
    ] {
        env.retain(|e| e["name"] != key);
        env.push(json!({"name": key, "value": env_value(&value)}));
    }
    for (key, path) in [
        ("MY_POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        env.push(json!({"name": key, "valueFrom": {"fieldRef": {"fieldPath": path}}}));
    }

    let mut requests = json!({"cpu": config.cpu_min_request_count});
    if let Some(memory) = &config.memory_request_count {
        requests["memory"] = json!(memory);
    }
    let mut container = json!({
        "name": "handler",
        "image": config.image_name,
        "args": config.arguments,
        "env": env,
        "imagePullPolicy": if config.pull_always { "Always" } else { "IfNotPresent" },
        "resources": {"requests": requests, "limits": {"cpu": config.cpu_max_request_count}},
    });
    if config.docker_privileged {
        container["securityContext"] = json!({"privileged": true});
    }
    if let Some(alive) = &config.alive_check_details {
        container["livenessProbe"] = liveness_probe(alive);
    }
    let (volumes, mounts) = volumes(config);
    if !volumes.is_empty() {
        container["volumeMounts"] = json!(mounts);
    }
    let mut pod_spec = json!({
        "restartPolicy": "Never",
        "serviceAccountName": config.service_account_name,
        "containers": [container],
    });
    if !volumes.is_empty() {
        pod_spec["volumes"] = json!(volumes);
    }
    if let Some(zone) = &site.zone {
        pod_spec["nodeSelector"] = json!({ zone: "true" });
    }
    if config.use_tainted_nodes
        && let Some(selector) = &config.tainted_node_selector
    {
        pod_spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": selector, "operator": "Exists"}]}]}}});
        let toleration = config.tainted_node_toleration.as_deref().unwrap_or(selector);
        pod_spec["tolerations"] = json!([{"key": toleration, "operator": "Exists", "effect": "NoSchedule"}]);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": pod_spec,
    })
}

/// Sets `env` on the pod's container, replacing variables of the same name.
pub fn set_env(pod: &mut Value, env: &[(String, String)]) {
    let Some(list) = pod["spec"]["containers"][0]["env"].as_array_mut() else {
        return;
    };
    for (name, value) in env {
        list.retain(|e| e["name"] != name.as_str());
        list.push(json!({"name": name, "value": env_value(value)}));
    }
}

/// The payload's variables (spec §5.2): `PAYLOAD` as it is, or, past
/// [`payload::MAX_SEGMENT`] characters (a single variable above 128 KiB
/// cannot even be passed to `exec`), zlib + base64 in
/// `POP_COMPRESSED_PAYLOAD_0..N` with `POP_PAYLOAD_TYPE=compressedEnvVar`.
fn payload_env(text: &str) -> Vec<(String, String)> {
    if text.len() <= payload::MAX_SEGMENT {
        return vec![("PAYLOAD".into(), text.to_owned())];
    }
    let mut env = vec![(
        payload::PAYLOAD_TYPE_ENV.to_owned(),
        payload::COMPRESSED_ENV_VAR.to_owned(),
    )];
    for (index, segment) in payload::compress(text, payload::MAX_SEGMENT).into_iter().enumerate() {
        env.push((format!("{}{index}", payload::SEGMENT_PREFIX), segment));
    }
    env
}

/// POP's alive check as an HTTP liveness probe (POP ran `curl` in the
/// container, which needs curl in every handler image; the kubelet's own
/// `httpGet` does the same call without it).
fn liveness_probe(alive: &AliveCheckDetails) -> Value {
    let mut call = json!({"path": alive.alive_path, "port": alive.alive_port});
    if let Some(host) = &alive.alive_check_host {
        call["host"] = json!(host);
    }
    json!({
        "httpGet": call,
        "periodSeconds": alive.alive_check_interval.max(1),
        "failureThreshold": alive.alive_check_failure_threshold.max(1),
        "timeoutSeconds": 5,
    })
}

/// The pod's volumes and the container's mounts (spec §5.4): ConfigMaps
/// (those with a name: the core layer's entry has none until the type sets
/// `configMapName`), one NFS volume per mount path, the `log` emptyDir at
/// `/app/dumps`.
fn volumes(config: &PodConfig) -> (Vec<Value>, Vec<Value>) {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for settings in &config.config_map_settings {
        let Some(map) = settings.config_map_name.as_deref().filter(|n| !n.is_empty()) else {
            continue;
        };
        let mut source = json!({"name": map});
        if !settings.map_key_paths.is_empty() {
            let items: Vec<Value> = settings
                .map_key_paths
                .iter()
                .map(|k| json!({"key": k.key, "path": k.path}))
                .collect();
            source["items"] = json!(items);
        }
        volumes.push(json!({"name": settings.volume_name, "configMap": source}));
        mounts.push(json!({"name": settings.volume_name, "mountPath": settings.volume_mount_path}));
    }
    let mut nfs_index = 0;
    for nfs in &config.nfs_settings {
        for path in &nfs.nfs_mount_paths {
            let name = format!("nfs-{nfs_index}");
            nfs_index += 1;
            volumes.push(json!({"name": name, "nfs": {
                "server": nfs.nfs_server, "path": nfs.nfs_server_path, "readOnly": nfs.nfs_read_only}}));
            mounts.push(json!({"name": name, "mountPath": path, "readOnly": nfs.nfs_read_only}));
        }
    }
    if config.default_empty_dir_logging {
        volumes.push(json!({"name": "log", "emptyDir": {}}));
        mounts.push(json!({"name": "log", "mountPath": "/app/dumps"}));
    }
    (volumes, mounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_what_kubernetes_accepts() {
        assert_eq!(label_value("0190-abc"), "0190-abc");
        assert_eq!(label_value(""), "");
        for bad in ["acme:agenda-1", "pop-sample-", &"x".repeat(70)] {
            let value = label_value(bad);
            assert!(value.starts_with("h-") && value.len() <= 63, "{bad} → {value}");
        }
    }

    #[test]
    fn prefixes_become_dns_labels() {
        assert_eq!(dns_prefix("pop-sample-"), "pop-sample-");
        assert_eq!(dns_prefix("Sample_Handler"), "sample-handler-");
        assert_eq!(dns_prefix("9lives"), "pop-9lives-");
    }

    fn spec_of(pod_config: Value, config_map: Option<&str>) -> PodSpec {
        let mut entry = json!({"podConfig": pod_config});
        if let Some(name) = config_map {
            entry["configMapName"] = json!(name);
        }
        let registry = pop_handlers_registry::Registry::from_value(&json!({"t": entry})).unwrap();
        match registry.resolve("t").unwrap() {
            pop_handlers_registry::HandlerSpec::Pod(spec) => spec,
            other => panic!("not a pod: {other:?}"),
        }
    }

    fn run() -> OperationRun {
        OperationRun {
            name: "op1".into(),
            operation: Default::default(),
            payload: json!({"a": 1}),
            last_progress: None,
            agenda_id: "agenda-1".into(),
            progress_id: "progress-1".into(),
            customer_id: "acme".into(),
            cid: "cid-1".into(),
            attempt: 1,
            placement: pop_ports::Placement {
                insight_id: "acme:insight".into(),
                resource_pool_id: "pool-1".into(),
                namespace: Some("acme-pods".into()),
            },
        }
    }

    #[test]
    fn every_pod_config_field_reaches_the_pod_as_kubernetes_reads_it() {
        let spec = spec_of(
            json!({"imageName": "pop-sample:1", "namePrefix": "sample-", "defaultEmptyDirLogging": true,
                "nfsSettings": [{"nfsServer": "nfs.local", "nfsServerPath": "/exports", "nfsReadOnly": true,
                    "nfsMountPaths": ["/data/a", "/data/b"]}],
                "aliveCheckDetails": {"alivePath": "/health", "alivePort": 8081, "aliveCheckInterval": 3},
                "labels": {"team": "media"}, "memoryRequestCount": "512Mi"}),
            Some("sample-config"),
        );
        let site = PodSite {
            zone: Some("zone-a".into()),
        };
        let pod = build(&spec, &run(), "sample-x", &site);
        let container = &pod["spec"]["containers"][0];
        let labels = &pod["metadata"]["labels"];
        assert_eq!(
            labels[INSIGHT_LABEL],
            "h-".to_owned() + &sha256_hex(b"acme:insight")[..32]
        );
        assert_eq!(labels[RESOURCE_POOL_LABEL], "pool-1");
        assert_eq!(labels["team"], "media");
        assert_eq!(labels["app"], "sample");
        assert_eq!(pod["spec"]["nodeSelector"], json!({"zone-a": "true"}));
        let volumes = pod["spec"]["volumes"].as_array().unwrap();
        let names: Vec<&str> = volumes.iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["config-volume", "nfs-0", "nfs-1", "log"]);
        assert_eq!(volumes[0]["configMap"]["name"], "sample-config");
        assert_eq!(
            volumes[1]["nfs"],
            json!({"server": "nfs.local", "path": "/exports", "readOnly": true})
        );
        let mounts: Vec<&str> = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        assert_eq!(mounts, ["/app/config", "/data/a", "/data/b", "/app/dumps"]);
        assert_eq!(
            container["livenessProbe"],
            json!({"httpGet": {"path": "/health", "port": 8081}, "periodSeconds": 3, "failureThreshold": 10,
                "timeoutSeconds": 5})
        );
        assert_eq!(container["resources"]["requests"]["memory"], "512Mi");
        // It is a pod the typed client accepts.
        serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(pod).unwrap();
    }

    #[test]
    fn a_large_payload_goes_compressed_in_segments_the_handler_reads_back() {
        let spec = spec_of(json!({"imageName": "pop-sample:1"}), None);
        let mut large = run();
        // Incompressible enough to need two segments.
        let noise: Vec<String> = (0..40_000u64)
            .map(|i| format!("{:x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        large.payload = json!({"noise": noise});
        let pod = build(&spec, &large, "x", &PodSite::default());
        let env = pod["spec"]["containers"][0]["env"].as_array().unwrap().clone();
        let value = |name: &str| env.iter().find(|e| e["name"] == name).map(|e| e["value"].clone());
        assert_eq!(value("PAYLOAD"), None);
        assert_eq!(value("POP_PAYLOAD_TYPE"), Some(json!("compressedEnvVar")));
        let segments: Vec<String> = (0..)
            .map_while(|i| value(&format!("POP_COMPRESSED_PAYLOAD_{i}")))
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert!(segments.len() >= 2, "{} segments", segments.len());
        assert!(segments.iter().all(|s| s.len() <= payload::MAX_SEGMENT));
        let text = payload::decompress(&segments).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), large.payload);
        // A small one stays plain.
        let pod = build(&spec, &run(), "x", &PodSite::default());
        let env = pod["spec"]["containers"][0]["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e["name"] == "PAYLOAD" && e["value"] == "{\"a\":1}"));
    }

    #[test]
    fn a_config_map_without_a_name_mounts_nothing() {
        let spec = spec_of(json!({"imageName": "pop-sample:1"}), None);
        let pod = build(&spec, &run(), "x", &PodSite::default());
        assert!(pod["spec"].get("volumes").is_none(), "{pod}");
        assert!(pod["spec"].get("nodeSelector").is_none());
    }

    #[test]
    fn env_values_do_not_expand() {
        assert_eq!(env_value("{\"cmd\":\"$(rm -rf)\"}"), "{\"cmd\":\"$$(rm -rf)\"}");
    }
}
