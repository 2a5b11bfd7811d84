//! The rules a real API server enforces that a launcher can break (see
//! `shared/research/engines.md`): object names, label keys and values,
//! the 256 KiB annotation budget, required pod fields, the restart policy
//! default, and that a pod's spec cannot change after creation.

use serde_json::{Value, json};

/// One problem, as a `Status` cause: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    pub field: String,
    pub message: String,
}

impl Cause {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Annotations of one object, keys and values together, at most this.
pub const ANNOTATIONS_LIMIT: usize = 256 * 1024;

/// A DNS-1123 subdomain (object names): lowercase alphanumerics, `-` and
/// `.`, starting and ending alphanumeric, at most 253 characters.
pub fn is_dns_subdomain(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| alnum(c) || c == '-' || c == '.')
        && name.starts_with(alnum)
        && name.ends_with(alnum)
}

/// A DNS-1123 label (namespace and container names): as a subdomain
/// without dots, at most 63 characters.
pub fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_dns_subdomain(name)
}

/// A label value: empty, or at most 63 characters of alphanumerics, `-`,
/// `_` and `.`, starting and ending alphanumeric.
pub fn is_label_value(value: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    value.is_empty()
        || (value.len() <= 63
            && value.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
            && value.starts_with(alnum)
            && value.ends_with(alnum))
}

/// A label or annotation key: an optional DNS-subdomain prefix and `/`,
/// then a name of at most 63 characters (as a label value, not empty).
pub fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

/// What is wrong with the metadata of a new or changed object.
pub fn metadata(object: &Value, resource_label: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let valid_name = if resource_label {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    };
    if !valid_name {
        causes.push(Cause::new(
            "metadata.name",
            format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 {} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                if resource_label { "label" } else { "subdomain" }
            ),
        ));
    }
    if let Some(labels) = object["metadata"]["labels"].as_object() {
        for (key, value) in labels {
            if !is_qualified_name(key) {
                causes.push(Cause::new(
                    "metadata.labels",
                    format!(
                        "Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.'"
                    ),
                ));
            }
            match value.as_str() {
                Some(v) if is_label_value(v) => {}
                _ => causes.push(Cause::new(
                    "metadata.labels",
                    format!(
                        "Invalid value: {value}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)"
                    ),
                )),
            }
        }
    }
    if let Some(annotations) = object["metadata"]["annotations"].as_object() {
        let mut total = 0;
        for (key, value) in annotations {
            if !is_qualified_name(key) {
                causes.push(Cause::new(
                    "metadata.annotations",
                    format!("Invalid value: \"{key}\": not a qualified name"),
                ));
            }
            match value.as_str() {
                Some(v) => total += key.len() + v.len(),
                None => causes.push(Cause::new(
                    "metadata.annotations",
                    format!("Invalid value: {value}: annotation values must be strings"),
                )),
            }
        }
        if total > ANNOTATIONS_LIMIT {
            causes.push(Cause::new(
                "metadata.annotations",
                format!("Too long: must have at most {ANNOTATIONS_LIMIT} bytes"),
            ));
        }
    }
    causes
}

/// Fills the defaults a real API server writes into a new pod.
pub fn default_pod(pod: &mut Value) {
    let spec = &mut pod["spec"];
    if spec.get("restartPolicy").is_none_or(Value::is_null) {
        spec["restartPolicy"] = json!("Always");
    }
    for (field, value) in [
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("serviceAccountName", json!("default")),
    ] {
        if spec.get(field).is_none_or(Value::is_null) {
            spec[field] = value;
        }
    }
    if let Some(containers) = spec["containers"].as_array_mut() {
        for container in containers {
            if container.get("imagePullPolicy").is_none_or(Value::is_null) {
                let image = container["image"].as_str().unwrap_or_default();
                let latest = !image.contains(':') || image.ends_with(":latest");
                container["imagePullPolicy"] = json!(if latest { "Always" } else { "IfNotPresent" });
            }
            if container.get("terminationMessagePolicy").is_none_or(Value::is_null) {
                container["terminationMessagePolicy"] = json!("File");
            }
        }
    }
    pod["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
}

/// What is wrong with a new pod's spec.
pub fn pod_spec(pod: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &pod["spec"];
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        causes.push(Cause::new("spec.containers", "Required value"));
    }
    let mut names = std::collections::HashSet::new();
    for (i, container) in containers.iter().enumerate() {
        let name = container["name"].as_str().unwrap_or_default();
        if !is_dns_label(name) {
            causes.push(Cause::new(
                format!("spec.containers[{i}].name"),
                format!("Invalid value: \"{name}\""),
            ));
        } else if !names.insert(name.to_owned()) {
            causes.push(Cause::new(
                format!("spec.containers[{i}].name"),
                format!("Duplicate value: \"{name}\""),
            ));
        }
        if container["image"].as_str().is_none_or(str::is_empty) {
            causes.push(Cause::new(format!("spec.containers[{i}].image"), "Required value"));
        }
        for (j, env) in container["env"].as_array().into_iter().flatten().enumerate() {
            if env["name"].as_str().is_none_or(str::is_empty) {
                causes.push(Cause::new(
                    format!("spec.containers[{i}].env[{j}].name"),
                    "Required value",
                ));
            }
        }
    }
    if let Some(policy) = spec["restartPolicy"].as_str()
        && !matches!(policy, "Always" | "OnFailure" | "Never")
    {
        causes.push(Cause::new(
            "spec.restartPolicy",
            format!("Unsupported value: \"{policy}\": supported values: \"Always\", \"OnFailure\", \"Never\""),
        ));
    }
    causes
}

/// A pod's spec after creation may change only in its containers' images,
/// `activeDeadlineSeconds` and added tolerations.
pub fn pod_update(old: &Value, new: &Value) -> Vec<Cause> {
    let strip = |spec: &Value| {
        let mut spec = spec.clone();
        if let Some(object) = spec.as_object_mut() {
            object.remove("activeDeadlineSeconds");
            object.remove("tolerations");
        }
        for container in spec["containers"].as_array_mut().into_iter().flatten() {
            if let Some(object) = container.as_object_mut() {
                object.remove("image");
            }
        }
        spec
    };
    if strip(&old["spec"]) == strip(&new["spec"]) {
        return Vec::new();
    }
    vec![Cause::new(
        "spec",
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_as_a_real_server_checks_them() {
        for ok in ["", "pop", "pop-sample", "a.b_c", "A1"] {
            assert!(is_label_value(ok), "{ok:?}");
        }
        // POP's own `app=<namePrefix>` label ends with '-': refused.
        for bad in ["pop-sample-", "-x", "x y", &"a".repeat(64)] {
            assert!(!is_label_value(bad), "{bad:?}");
        }
        assert!(is_qualified_name("pop.agendaId"));
        assert!(is_qualified_name("app.kubernetes.io/part-of"));
        assert!(!is_qualified_name("bad key"));
    }

    #[test]
    fn names_and_specs() {
        assert!(is_dns_subdomain("pop-op-1.x"));
        assert!(!is_dns_subdomain("Pop"));
        assert!(!is_dns_label("a.b"));
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "pop-sample-"}},
            "spec": {"containers": [{"name": "c", "image": "i"}, {"name": "c"}], "restartPolicy": "Sometimes"}});
        let causes: Vec<String> = metadata(&pod, false)
            .into_iter()
            .chain(pod_spec(&pod))
            .map(|c| c.field)
            .collect();
        assert_eq!(
            causes,
            [
                "metadata.labels",
                "spec.containers[1].name",
                "spec.containers[1].image",
                "spec.restartPolicy"
            ]
        );
        let mut defaulted = json!({"spec": {"containers": [{"name": "c", "image": "pop-sample"}]}});
        default_pod(&mut defaulted);
        assert_eq!(defaulted["spec"]["restartPolicy"], "Always");
        assert_eq!(defaulted["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(defaulted["status"]["phase"], "Pending");
    }

    #[test]
    fn a_pod_spec_is_immutable_but_for_images() {
        let old = json!({"spec": {"containers": [{"name": "c", "image": "a:1"}], "restartPolicy": "Never"}});
        let image = json!({"spec": {"containers": [{"name": "c", "image": "a:2"}], "restartPolicy": "Never"}});
        let policy = json!({"spec": {"containers": [{"name": "c", "image": "a:1"}], "restartPolicy": "Always"}});
        assert!(pod_update(&old, &image).is_empty());
        assert_eq!(pod_update(&old, &policy).len(), 1);
    }
}
