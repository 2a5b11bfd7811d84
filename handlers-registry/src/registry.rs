//! `registry.json`: parsing, the layering of spec §5.4 (as a deep merge), and lookups.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::error::RegistryError;
use crate::merge::deep_merge;
use crate::spec::{HandlerSpec, PodConfig, PodSpec, ProcessSpec, WasmConfig, WasmSource, WasmSpec};

/// The registry used when no file is configured or the configured one is missing (POP's
/// `defaultConfigMap.json`).
pub const DEFAULT_REGISTRY_JSON: &str = include_str!("../registry.json");

/// The three handler kinds: the key holding the entry's own layer, and the top-level base layer.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Pod,
    Process,
    Wasm,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Pod, Kind::Process, Kind::Wasm];

    fn entry_key(self) -> &'static str {
        match self {
            Kind::Pod => "podConfig",
            Kind::Process => "processConfig",
            Kind::Wasm => "wasmConfig",
        }
    }

    fn base_key(self) -> &'static str {
        match self {
            Kind::Pod => "basePodConfig",
            Kind::Process => "baseProcessConfig",
            Kind::Wasm => "baseWasmConfig",
        }
    }

    /// Layer 1 of §5.4. Kept here, not in serde defaults, so the whole default set is one value
    /// that later layers can override or remove (`null`) like any other.
    fn core_defaults(self) -> Value {
        match self {
            Kind::Pod => json!({
                "serviceAccountName": "pop-service",
                "endOfLogIdentifier": "HandlerComplete",
                "configMapSettings": [{
                    "volumeName": "config-volume",
                    "volumeMountPath": "/app/config",
                    "mapKeyPaths": [
                        {"key": "external-properties", "path": "external.properties"},
                        {"key": "env-properties", "path": "env.properties"}
                    ]
                }],
                "envVars": {},
                "cpuMinRequestCount": "1.0",
                "cpuMaxRequestCount": "1.0",
                "pullAlways": false,
                "reapCompletedPods": false,
                "podScheduledTimeoutMs": 300_000,
                "podStdoutTimeout": 120_000,
                "podRetryCount": 0,
                "retryDelayMilliSecs": 3000
            }),
            // POP pods had no overall limit, only the quietness one; a local process that keeps
            // chatting forever would hold an executor slot forever, so one hour caps it.
            Kind::Process => json!({
                "args": [],
                "env": {},
                "timeoutMs": 3_600_000,
                "stdoutTimeoutMs": 120_000,
                "endOfLogIdentifier": "HandlerComplete"
            }),
            Kind::Wasm => json!({ "timeoutMs": 60_000 }),
        }
    }
}

/// Keys an operation-type entry may hold besides the kind keys.
const CONFIG_MAP_NAME: &str = "configMapName";
const DESCRIPTION: &str = "description";

/// A loaded registry: every entry already layered and validated, so a bad entry fails at load
/// time rather than when the first agenda of that type runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    handlers: BTreeMap<String, HandlerSpec>,
}

impl Registry {
    /// The built-in default registry (`handlers-registry/registry.json`).
    pub fn builtin() -> Self {
        Self::from_json(DEFAULT_REGISTRY_JSON).expect("the embedded registry.json is valid (tested)")
    }

    /// Reads a registry file.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// Reads a registry file, or the built-in default when the file does not exist (§5.4).
    /// Any other failure (unreadable, invalid) is an error: silently running with the defaults
    /// would hide a broken deployment.
    pub fn load_or_builtin(path: &Path) -> Result<Self, RegistryError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_json(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::builtin()),
            Err(source) => Err(RegistryError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    pub fn from_json(text: &str) -> Result<Self, RegistryError> {
        let document: Value = serde_json::from_str(text).map_err(RegistryError::Syntax)?;
        Self::from_value(&document)
    }

    pub fn from_value(document: &Value) -> Result<Self, RegistryError> {
        let Value::Object(top) = document else {
            return Err(RegistryError::invalid("$", "the registry must be a JSON object"));
        };
        let mut bases = BTreeMap::new();
        for kind in Kind::ALL {
            let mut layered = kind.core_defaults();
            if let Some(base) = top.get(kind.base_key()) {
                if !base.is_object() {
                    return Err(RegistryError::invalid(kind.base_key(), "must be an object"));
                }
                deep_merge(&mut layered, base);
            }
            bases.insert(kind.base_key(), layered);
        }
        let mut handlers = BTreeMap::new();
        for (op_type, entry) in top {
            if Kind::ALL.iter().any(|kind| kind.base_key() == op_type) {
                continue;
            }
            let spec = parse_entry(op_type, entry, |kind| &bases[kind.base_key()])?;
            handlers.insert(op_type.clone(), spec);
        }
        Ok(Self { handlers })
    }

    /// The handler of an operation type. Returns a copy, so a caller can adjust it for one
    /// launch without affecting the next (POP returned deep copies for the same reason).
    pub fn resolve(&self, op_type: &str) -> Result<HandlerSpec, RegistryError> {
        self.handlers
            .get(op_type)
            .cloned()
            .ok_or_else(|| RegistryError::UnknownOperationType(op_type.to_owned()))
    }

    /// The handler of an operation type, borrowed: for a look at its kind without a copy.
    pub fn get(&self, op_type: &str) -> Option<&HandlerSpec> {
        self.handlers.get(op_type)
    }

    /// The registered operation types, sorted.
    pub fn operation_types(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}

/// One operation-type entry → its layered, typed spec.
fn parse_entry<'a>(
    op_type: &str,
    entry: &Value,
    base_of: impl Fn(Kind) -> &'a Value,
) -> Result<HandlerSpec, RegistryError> {
    let Value::Object(fields) = entry else {
        return Err(RegistryError::invalid(
            op_type,
            "an operation type entry must be an object",
        ));
    };
    check_keys(op_type, fields)?;
    let present: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|kind| fields.contains_key(kind.entry_key()))
        .collect();
    // No kind key at all is a pod built from basePodConfig alone, as POP allowed.
    let kind = match present.as_slice() {
        [] => Kind::Pod,
        [one] => *one,
        _ => {
            return Err(RegistryError::invalid(
                op_type,
                "an entry holds exactly one of podConfig, processConfig, wasmConfig",
            ));
        }
    };
    let path = format!("{op_type}.{}", kind.entry_key());
    let mut layered = base_of(kind).clone();
    if let Some(own) = fields.get(kind.entry_key()) {
        if !own.is_object() {
            return Err(RegistryError::invalid(path, "must be an object"));
        }
        deep_merge(&mut layered, own);
    }
    if fields.contains_key(CONFIG_MAP_NAME) && !matches!(kind, Kind::Pod) {
        return Err(RegistryError::invalid(
            format!("{op_type}.{CONFIG_MAP_NAME}"),
            "only pod entries take a ConfigMap",
        ));
    }
    match kind {
        Kind::Pod => pod(op_type, fields, &path, layered).map(HandlerSpec::Pod),
        Kind::Process => process(&path, layered).map(HandlerSpec::Process),
        Kind::Wasm => wasm(&path, layered).map(HandlerSpec::Wasm),
    }
}

fn check_keys(op_type: &str, fields: &Map<String, Value>) -> Result<(), RegistryError> {
    for (key, value) in fields {
        let known = Kind::ALL.iter().any(|kind| kind.entry_key() == key);
        let text_field = key == CONFIG_MAP_NAME || key == DESCRIPTION;
        if text_field && !value.is_string() {
            return Err(RegistryError::invalid(format!("{op_type}.{key}"), "must be a string"));
        }
        if !known && !text_field {
            return Err(RegistryError::invalid(format!("{op_type}.{key}"), "unknown field"));
        }
    }
    Ok(())
}

fn pod(op_type: &str, fields: &Map<String, Value>, path: &str, layered: Value) -> Result<PodSpec, RegistryError> {
    let mut pod_config: PodConfig = typed(path, layered)?;
    let config_map_name = fields.get(CONFIG_MAP_NAME).and_then(Value::as_str).map(str::to_owned);
    if let Some(name) = &config_map_name {
        // §5.4 step 4: the type's ConfigMap goes on the first (the core `/app/config`) entry.
        let Some(first) = pod_config.config_map_settings.first_mut() else {
            return Err(RegistryError::invalid(
                format!("{op_type}.{CONFIG_MAP_NAME}"),
                "configMapName needs a configMapSettings entry to apply to",
            ));
        };
        first.config_map_name = Some(name.clone());
    }
    Ok(PodSpec {
        config_map_name,
        pod_config,
    })
}

fn process(path: &str, layered: Value) -> Result<ProcessSpec, RegistryError> {
    let spec: ProcessSpec = typed(path, layered)?;
    if spec.program.trim().is_empty() {
        return Err(RegistryError::invalid(format!("{path}.program"), "must not be empty"));
    }
    for (field, value) in [
        ("timeoutMs", spec.timeout_ms),
        ("stdoutTimeoutMs", spec.stdout_timeout_ms),
    ] {
        if value == 0 {
            return Err(RegistryError::invalid(
                format!("{path}.{field}"),
                "must be greater than 0",
            ));
        }
    }
    Ok(spec)
}

fn wasm(path: &str, layered: Value) -> Result<WasmSpec, RegistryError> {
    let config: WasmConfig = typed(path, layered)?;
    let source = match (config.plugin, config.builtin) {
        (Some(name), None) => WasmSource::Plugin(name),
        (None, Some(name)) => WasmSource::Builtin(name),
        _ => return Err(RegistryError::invalid(path, "needs exactly one of plugin, builtin")),
    };
    Ok(WasmSpec {
        source,
        timeout_ms: config.timeout_ms,
    })
}

/// Deserializes a layered value, naming the failing field by its JSON path.
fn typed<T: DeserializeOwned>(path: &str, layered: Value) -> Result<T, RegistryError> {
    serde_path_to_error::deserialize(layered).map_err(|e| {
        let inner = e.path().to_string();
        let full = if inner == "." {
            path.to_owned()
        } else {
            format!("{path}.{inner}")
        };
        RegistryError::invalid(full, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(doc: Value) -> String {
        Registry::from_value(&doc).unwrap_err().to_string()
    }

    #[test]
    fn builtin_registry_loads_and_maps_sample_to_the_native_process() {
        let registry = Registry::builtin();
        let HandlerSpec::Process(sample) = registry.resolve("sample").unwrap() else {
            panic!("sample is a process")
        };
        assert_eq!(sample.program, "pop-sample-handler");
        assert_eq!(sample.end_of_log_identifier.as_deref(), Some("HandlerComplete"));
    }

    #[test]
    fn unknown_type_has_pops_message() {
        let err = Registry::builtin().resolve("nope").unwrap_err();
        assert_eq!(err.to_string(), "Unknown operation type found: nope");
    }

    #[test]
    fn errors_name_the_json_path() {
        let cases = [
            (json!([]), "invalid registry entry at $:"),
            (json!({"basePodConfig": 3}), "at basePodConfig:"),
            (json!({"t": 3}), "at t:"),
            (
                json!({"t": {"processConfig": {"program": "x", "timeoutMs": "soon"}}}),
                "at t.processConfig.timeoutMs:",
            ),
            (json!({"t": {"processConfig": {}}}), "missing field `program`"),
            (
                json!({"t": {"processConfig": {"program": "x", "tiemoutMs": 1}}}),
                "unknown field `tiemoutMs`",
            ),
            (
                json!({"t": {"processConfig": {"program": " "}}}),
                "at t.processConfig.program:",
            ),
            (
                json!({"t": {"processConfig": {"program": "x", "stdoutTimeoutMs": 0}}}),
                "t.processConfig.stdoutTimeoutMs",
            ),
            (json!({"t": {"podConfig": {}}}), "missing field `imageName`"),
            (
                json!({"t": {"podConfig": {"imageName": "i", "nfsSettings": [{"nfsServer": 1}]}}}),
                "at t.podConfig.nfsSettings[0].nfsServer:",
            ),
            (
                json!({"t": {"wasmConfig": {}}}),
                "at t.wasmConfig: needs exactly one of plugin, builtin",
            ),
            (
                json!({"t": {"wasmConfig": {"plugin": "a", "builtin": "b"}}}),
                "exactly one of plugin, builtin",
            ),
            (
                json!({"t": {"podConfig": {}, "wasmConfig": {}}}),
                "at t: an entry holds exactly one",
            ),
            (
                json!({"t": {"processConfig": {"program": "x"}, "configMapName": "c"}}),
                "at t.configMapName:",
            ),
            (json!({"t": {"imageName": "x"}}), "at t.imageName: unknown field"),
        ];
        for (doc, expected) in cases {
            let shown = doc.to_string();
            let message = error_of(doc);
            assert!(message.contains(expected), "{shown}: {message}");
        }
    }

    #[test]
    fn wasm_entries_by_plugin_or_builtin() {
        let registry = Registry::from_value(&json!({
            "baseWasmConfig": {"timeoutMs": 5000},
            "a": {"wasmConfig": {"plugin": "acme-transcode"}},
            "b": {"wasmConfig": {"builtin": "sample", "timeoutMs": 10}}
        }))
        .unwrap();
        assert_eq!(
            registry.resolve("a").unwrap(),
            HandlerSpec::Wasm(WasmSpec {
                source: WasmSource::Plugin("acme-transcode".into()),
                timeout_ms: 5000
            })
        );
        assert_eq!(
            registry.resolve("b").unwrap(),
            HandlerSpec::Wasm(WasmSpec {
                source: WasmSource::Builtin("sample".into()),
                timeout_ms: 10
            })
        );
        assert_eq!(registry.operation_types().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn missing_file_falls_back_to_the_builtin_registry() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::load_or_builtin(&dir.path().join("registry.json")).unwrap();
        assert_eq!(registry, Registry::builtin());
        std::fs::write(dir.path().join("bad.json"), "{").unwrap();
        assert!(matches!(
            Registry::load_or_builtin(&dir.path().join("bad.json")),
            Err(RegistryError::Syntax(_))
        ));
    }
}
