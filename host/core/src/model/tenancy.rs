use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Envelope, ObjectKind, data_object, lowercase_all};

/// An account. By convention `id == customerId`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_pool_id: Option<String>,
    /// Name of the insight-matcher plugin binding this customer's agendas
    /// (the built-in POP mappers when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insight_matcher: Option<String>,
    /// Name of the visibility-policy plugin deciding who sees this
    /// customer's objects (POP's rules when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility_policy: Option<String>,
}
data_object!(Customer, ObjectKind::Customer);

/// Where agendas run. `insightIds` is derived on read, never stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePool {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insight_ids: Option<Vec<String>>,
}
data_object!(ResourcePool, ObjectKind::ResourcePool);

/// One queue of a resource pool, with its scheduling algorithm and the
/// mappers that bind agendas to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Insight {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_pool_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_size: Option<i64>,
    /// `FirstInFirstOut`, `RoundRobin`, … (kept as text: tenants may name
    /// their own scheduler plugin here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduling_algorithm: Option<String>,
    /// Configuration handed to the scheduler (e.g. WeightedFair weights).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler_config: Option<serde_json::Value>,
    /// Most agendas of this insight the server's own puller runs at once
    /// (POP's puller property `insight.execution.limit`). `0`: the server runs
    /// none, external pullers serve the insight through `getAgenda`. Absent:
    /// the server's default (`--execution-limit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_limit: Option<i64>,
    /// Attempts an agenda of this insight gets when it does not say
    /// (`params.maximumAttempts`); absent: one, no automatic retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_attempts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mappers: Option<BTreeMap<String, Vec<String>>>,
    #[serde(alias = "global", skip_serializing_if = "Option::is_none")]
    pub is_global: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_customer_ids: Option<Vec<String>>,
}
data_object!(Insight, ObjectKind::Insight);

impl Insight {
    pub fn normalize(&mut self) {
        lowercase_all(&mut self.allowed_customer_ids);
    }
}
