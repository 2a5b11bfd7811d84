//! What an operation type resolves to. The structs mirror the JSON of `registry.json`
//! (camelCase, unknown fields rejected so a typo fails at load time instead of being ignored).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How one operation type is run.
// Unboxed on purpose: a spec is built once per launch and matched on, never stored in bulk, so
// the size difference costs nothing and `Pod(PodSpec)` keeps patterns simple.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum HandlerSpec {
    /// A Kubernetes pod (POP's only kind; launcher not in this crate yet).
    Pod(PodSpec),
    /// A local command under the launch contract; see [`crate::run_process`].
    Process(ProcessSpec),
    /// A component of the `handler` world of `wit/plugin.wit`, run in-process.
    Wasm(WasmSpec),
}

/// A pod handler: the layered PodConfig, with `configMapName` already applied to the first
/// `configMapSettings` entry (§5.4 step 4).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub config_map_name: Option<String>,
    pub pod_config: PodConfig,
}

/// POP's PodConfig (§5.4 table). Defaults come from the core layer of the registry, not from
/// serde, so the defaults live in one visible place (`registry::core_pod_defaults`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodConfig {
    #[serde(default)]
    pub name_prefix: Option<String>,
    pub image_name: String,
    #[serde(default)]
    pub arguments: Vec<String>,
    #[serde(default)]
    pub env_vars: BTreeMap<String, String>,
    pub cpu_min_request_count: String,
    pub cpu_max_request_count: String,
    #[serde(default)]
    pub memory_request_count: Option<String>,
    pub pull_always: bool,
    pub reap_completed_pods: bool,
    pub pod_scheduled_timeout_ms: u64,
    /// Log-quietness timeout, milliseconds (POP's name has no unit).
    pub pod_stdout_timeout: u64,
    pub pod_retry_count: u32,
    pub retry_delay_milli_secs: u64,
    #[serde(default)]
    pub end_of_log_identifier: Option<String>,
    #[serde(default)]
    pub log_line_expectation: Option<String>,
    #[serde(default)]
    pub enable_output_scraping: bool,
    pub service_account_name: String,
    #[serde(default)]
    pub use_tainted_nodes: bool,
    #[serde(default)]
    pub tainted_node_selector: Option<String>,
    #[serde(default)]
    pub tainted_node_toleration: Option<String>,
    #[serde(default)]
    pub docker_privileged: bool,
    #[serde(default)]
    pub default_empty_dir_logging: bool,
    #[serde(default)]
    pub config_map_settings: Vec<ConfigMapSettings>,
    #[serde(default)]
    pub nfs_settings: Vec<NfsSettings>,
    /// A liveness probe on the handler's own health endpoint.
    #[serde(default)]
    pub alive_check_details: Option<AliveCheckDetails>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapSettings {
    #[serde(default)]
    pub config_map_name: Option<String>,
    pub volume_name: String,
    pub volume_mount_path: String,
    #[serde(default)]
    pub map_key_paths: Vec<KeyPath>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyPath {
    pub key: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NfsSettings {
    pub nfs_server: String,
    pub nfs_server_path: String,
    #[serde(default)]
    pub nfs_mount_paths: Vec<String>,
    #[serde(default)]
    pub nfs_read_only: bool,
}

/// POP's alive check: the kubelet calls `http://host:port/path` every `aliveCheckInterval`
/// seconds and restarts the container after `aliveCheckFailureThreshold` failures in a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AliveCheckDetails {
    /// The host to call; absent, the pod's own IP (the kubelet's default).
    #[serde(default)]
    pub alive_check_host: Option<String>,
    pub alive_path: String,
    pub alive_port: u16,
    /// Declared by POP, never used by it (kept so POP registries load).
    #[serde(default)]
    pub alive_check_linking: Option<Value>,
    #[serde(default = "default_alive_interval")]
    pub alive_check_interval: u32,
    #[serde(default = "default_alive_failures")]
    pub alive_check_failure_threshold: u32,
}

fn default_alive_interval() -> u32 {
    2
}

fn default_alive_failures() -> u32 {
    10
}

/// A local command run under the launch contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessSpec {
    /// A path, or a bare name looked up next to the running executable, then on `PATH`
    /// (see [`ProcessSpec::resolved_program`]).
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment; the contract variables (`PAYLOAD`, `CID`, …) are set after these and win.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// Overall wall-clock limit; the process is killed when it expires.
    pub timeout_ms: u64,
    /// Log-quietness limit: no stdout/stderr line for this long kills the process
    /// (POP's `podStdoutTimeout`).
    pub stdout_timeout_ms: u64,
    /// The line that marks a complete log; `null` in the registry turns the check off.
    #[serde(default)]
    pub end_of_log_identifier: Option<String>,
}

impl ProcessSpec {
    /// The program to execute. A bare name is first looked for next to the running executable
    /// because POP's binaries ship together (`pop` next to `pop-sample-handler`); cargo puts test
    /// executables one level down in `deps/`, so its parent is tried too. Otherwise the bare
    /// name is returned and the OS searches `PATH`.
    pub fn resolved_program(&self) -> PathBuf {
        let program = PathBuf::from(&self.program);
        if program.components().count() != 1 || program.is_absolute() {
            return program;
        }
        let Ok(exe) = std::env::current_exe() else {
            return program;
        };
        exe.ancestors()
            .skip(1)
            .take(2)
            .map(|dir| dir.join(&program))
            .find(|candidate| candidate.is_file())
            .unwrap_or(program)
    }
}

/// A WASM handler component.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmSpec {
    pub source: WasmSource,
    /// Deadline of one `run` call.
    pub timeout_ms: u64,
}

/// Where the component comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum WasmSource {
    /// An uploaded plugin, by name (resolved through the plugin registry's slots at launch).
    Plugin(String),
    /// A component embedded in the binary (`pop-builtin-plugins`).
    Builtin(String),
}

/// The JSON form of a wasm entry: exactly one of `plugin` / `builtin`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct WasmConfig {
    #[serde(default)]
    pub plugin: Option<String>,
    #[serde(default)]
    pub builtin: Option<String>,
    pub timeout_ms: u64,
}
