use serde::{Deserialize, Serialize};

use super::{DiagnosticEvent, Envelope, ObjectKind, data_object};

/// What a plugin decides, i.e. which world of `wit/plugin.wit` it exports.
/// Shared by the model, the API and the runtime (`pop-wasm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    Scheduler,
    InsightMatcher,
    VisibilityPolicy,
    Handler,
}

impl PluginKind {
    pub const ALL: [PluginKind; 4] = [
        PluginKind::Scheduler,
        PluginKind::InsightMatcher,
        PluginKind::VisibilityPolicy,
        PluginKind::Handler,
    ];

    /// The WIT world name (`world scheduler`, ...), also the kind's name in the API.
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::Scheduler => "scheduler",
            PluginKind::InsightMatcher => "insight-matcher",
            PluginKind::VisibilityPolicy => "visibility-policy",
            PluginKind::Handler => "handler",
        }
    }

    /// The kind a world name designates.
    pub fn from_world(world: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.world() == world)
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.world())
    }
}

/// One uploaded version of a plugin; its binary is the blob `sha256`.
/// `id = "<owner>:<kind>:<name>@<version>"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginVersion {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_kind: Option<PluginKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// The `pop:plugin` contract version it was built against (`0.2.0`,
    /// `0.1.0`); the host serves both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract_version: Option<String>,
    /// Usable by every customer (only super users may set it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_global: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_count: Option<i64>,
    /// The latest failures of this version (traps, timeouts, bad output),
    /// newest last, so its owner can see why the host fell back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostic_events: Option<Vec<DiagnosticEvent>>,
}
data_object!(PluginVersion, ObjectKind::Plugin);

impl PluginVersion {
    pub fn slot_id(owner: &str, kind: PluginKind, name: &str) -> String {
        format!("{owner}:{}:{name}", kind.world())
    }

    pub fn id_for(owner: &str, kind: PluginKind, name: &str, version: &str) -> String {
        format!("{}@{version}", Self::slot_id(owner, kind, name))
    }
}

/// Which version of a named plugin is active; `id = "<owner>:<kind>:<name>"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginActivation {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_kind: Option<PluginKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_version: Option<String>,
    /// Versions active before, oldest first: rollback pops the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_global: Option<bool>,
}
data_object!(PluginActivation, ObjectKind::PluginActivation);
