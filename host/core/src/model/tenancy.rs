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
    /// Where the pool's pods go (issue 13: namespace segregation); absent,
    /// every pod goes to the launcher's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<PoolNamespaces>,
    /// Served by external pullers only (`pop puller`, e.g. a center behind
    /// a firewall running its own cluster): the server's embedded puller
    /// claims nothing of the pool's insights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<bool>,
}
data_object!(ResourcePool, ObjectKind::ResourcePool);

/// The Kubernetes namespace of each customer's pods in a resource pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolNamespaces {
    /// The namespace of customers not named in `byCustomer`; absent, the
    /// launcher's own (`pop serve --kubernetes-namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Customer id → namespace: that customer's pods go there and nowhere else.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_customer: BTreeMap<String, String>,
}

impl PoolNamespaces {
    /// The namespace of `customer_id`'s pods (`None`: the launcher's).
    pub fn for_customer(&self, customer_id: &str) -> Option<&str> {
        self.by_customer
            .get(customer_id)
            .or(self.default.as_ref())
            .map(String::as_str)
    }

    /// The first namespace that Kubernetes would refuse, with why.
    pub fn invalid(&self) -> Option<String> {
        self.default
            .iter()
            .chain(self.by_customer.values())
            .find(|name| !is_dns_label(name))
            .map(|name| {
                format!(
                    "The namespace {name:?} is not a valid Kubernetes namespace name \
                     (at most 63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit)."
                )
            })
    }
}

/// An RFC 1123 label, what Kubernetes accepts as a namespace name.
fn is_dns_label(name: &str) -> bool {
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| edge(c) || c == '-')
        && name.starts_with(edge)
        && name.ends_with(edge)
}

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
