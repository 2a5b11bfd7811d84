//! registry.json layering (§5.4) as a deep merge, and POP's unknown-type error.

use pop_handlers_registry::{HandlerSpec, PodSpec, ProcessSpec, Registry, RegistryError};
use serde_json::json;

fn registry() -> Registry {
    Registry::from_value(&json!({
        "basePodConfig": {
            "imageName": "base:1",
            "envVars": {"REGION": "us-east", "TIER": "base"},
            "labels": {"team": "media"},
            "podStdoutTimeout": 60000,
            "memoryRequestCount": "1Gi"
        },
        "baseProcessConfig": {"env": {"A": "base", "B": "base"}, "stdoutTimeoutMs": 5000},
        "transcode": {
            "configMapName": "transcode-config",
            "podConfig": {
                "imageName": "transcode:2",
                "envVars": {"TIER": "gpu"},
                "labels": {"gpu": "true"},
                "memoryRequestCount": null
            }
        },
        "plain": {},
        "local": {"processConfig": {"program": "./run.sh", "env": {"B": "own"}, "endOfLogIdentifier": null}}
    }))
    .unwrap()
}

fn pod(op_type: &str) -> PodSpec {
    match registry().resolve(op_type).unwrap() {
        HandlerSpec::Pod(pod) => pod,
        other => panic!("{op_type} is not a pod: {other:?}"),
    }
}

#[test]
fn pod_layers_merge_deeply_over_core_defaults() {
    let spec = pod("transcode");
    let config = &spec.pod_config;
    assert_eq!(config.image_name, "transcode:2");
    // Deep: the type adds/overrides single keys of the base's maps instead of replacing them.
    assert_eq!(config.env_vars.get("REGION").map(String::as_str), Some("us-east"));
    assert_eq!(config.env_vars.get("TIER").map(String::as_str), Some("gpu"));
    assert_eq!(config.labels.len(), 2);
    // null removes a base value.
    assert_eq!(config.memory_request_count, None);
    // basePodConfig over core defaults; core defaults where nobody said anything.
    assert_eq!(config.pod_stdout_timeout, 60000);
    assert_eq!(config.pod_scheduled_timeout_ms, 300_000);
    assert_eq!(config.service_account_name, "pop-service");
    assert_eq!(config.end_of_log_identifier.as_deref(), Some("HandlerComplete"));
    assert_eq!(config.cpu_min_request_count, "1.0");
    // Step 4: configMapName lands on the first (core) configMapSettings entry.
    let settings = &config.config_map_settings[0];
    assert_eq!(settings.config_map_name.as_deref(), Some("transcode-config"));
    assert_eq!(settings.volume_mount_path, "/app/config");
    assert_eq!(settings.map_key_paths.len(), 2);
}

#[test]
fn an_entry_without_kind_is_a_pod_of_the_base_layers() {
    let spec = pod("plain");
    assert_eq!(spec.pod_config.image_name, "base:1");
    assert_eq!(spec.pod_config.env_vars.get("TIER").map(String::as_str), Some("base"));
    assert_eq!(spec.config_map_name, None);
    assert_eq!(spec.pod_config.config_map_settings[0].config_map_name, None);
}

#[test]
fn process_layers_merge_deeply_too() {
    let HandlerSpec::Process(spec) = registry().resolve("local").unwrap() else {
        panic!("local is a process")
    };
    let expected = ProcessSpec {
        program: "./run.sh".into(),
        args: vec![],
        env: [("A".to_owned(), "base".to_owned()), ("B".to_owned(), "own".to_owned())].into(),
        working_dir: None,
        timeout_ms: 3_600_000,
        stdout_timeout_ms: 5000,
        end_of_log_identifier: None,
    };
    assert_eq!(spec, expected);
}

#[test]
fn unknown_operation_type_error_text() {
    let err = registry().resolve("mystery").unwrap_err();
    assert!(matches!(err, RegistryError::UnknownOperationType(ref t) if t == "mystery"));
    assert_eq!(err.to_string(), "Unknown operation type found: mystery");
}

#[test]
fn resolve_returns_independent_copies() {
    let registry = registry();
    let HandlerSpec::Pod(mut first) = registry.resolve("transcode").unwrap() else {
        panic!()
    };
    first.pod_config.env_vars.insert("X".into(), "changed".into());
    let HandlerSpec::Pod(second) = registry.resolve("transcode").unwrap() else {
        panic!()
    };
    assert!(!second.pod_config.env_vars.contains_key("X"));
}

#[test]
fn the_shipped_registry_file_is_the_builtin_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/registry.json");
    let loaded = Registry::load(std::path::Path::new(path)).unwrap();
    assert_eq!(loaded, Registry::builtin());
    let types: Vec<_> = loaded.operation_types().collect();
    assert_eq!(types, ["executor", "sample", "samplePod", "sampleWasm"]);
}
