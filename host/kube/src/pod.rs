//! The pod of one operation run (spec §5.4, §5.5, with what a real API
//! server refuses fixed): its name, labels, container, environment and
//! resources, from the registry's layered `PodConfig`.

use std::collections::BTreeMap;

use pop_handlers_registry::PodSpec;
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

/// The whole pod object for `run`.
pub fn build(spec: &PodSpec, run: &OperationRun, name: &str) -> Value {
    let config = &spec.pod_config;
    let mut labels: BTreeMap<String, String> = config.labels.iter().map(|(k, v)| (k.clone(), label_value(v))).collect();
    // POP's `app=<namePrefix>`, without the trailing '-' a real server refuses.
    let prefix = dns_prefix(config.name_prefix.as_deref().unwrap_or("pop-"));
    labels.insert("app".into(), label_value(prefix.trim_end_matches('-')));
    labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    labels.insert(AGENDA_LABEL.into(), label_value(&run.agenda_id));
    labels.insert(OPERATION_LABEL.into(), label_value(&run.name));
    labels.insert(PROGRESS_LABEL.into(), label_value(&run.progress_id));

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
    for (key, value) in [
        ("PAYLOAD", run.payload.to_string()),
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
    let mut pod_spec = json!({
        "restartPolicy": "Never",
        "serviceAccountName": config.service_account_name,
        "containers": [container],
    });
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

    #[test]
    fn env_values_do_not_expand() {
        assert_eq!(env_value("{\"cmd\":\"$(rm -rf)\"}"), "{\"cmd\":\"$$(rm -rf)\"}");
    }
}
