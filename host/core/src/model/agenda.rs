use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Envelope, ObjectKind, data_object, lowercase_all};
use crate::params::ParamsMap;

/// A workflow: a DAG of operations linked by `@<op.out::/pointer>` references.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Agenda {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operations: Option<Vec<Operation>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<ParamsMap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agenda_insight: Option<AgendaInsight>,
}
data_object!(Agenda, ObjectKind::Agenda);

impl Agenda {
    pub fn operations(&self) -> &[Operation] {
        self.operations.as_deref().unwrap_or_default()
    }

    pub fn params_or_empty(&self) -> ParamsMap {
        self.params.clone().unwrap_or_default()
    }
}

/// One work item of an agenda.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub op_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<ParamsMap>,
}

impl Operation {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}

/// Where an agenda was bound at submission.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgendaInsight {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_pool_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insight_id: Option<String>,
}

/// A reusable agenda body; `run` substitutes `@<pop.payload…>` and static
/// parameters into it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgendaTemplate {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_parameters: Option<ParamsMap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<ParamsMap>,
    /// Kept as raw JSON: tokens in it may stand where the agenda expects
    /// another type (e.g. `"operations": "@<list>"`) until substitution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agenda: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_default_template: Option<bool>,
    #[serde(alias = "global", skip_serializing_if = "Option::is_none")]
    pub is_global: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_customer_ids: Option<Vec<String>>,
}
data_object!(AgendaTemplate, ObjectKind::AgendaTemplate);

impl AgendaTemplate {
    pub fn normalize(&mut self) {
        lowercase_all(&mut self.allowed_customer_ids);
    }
}
