//! Building the contract's records from pop-core's model, so the server
//! does not have to know the WIT shapes.

use serde_json::{Map, Value};

use pop_core::visibility::Caller;
use pop_core::{Agenda, Insight, ObjectKind, ParamsMap};

use crate::bindings::v0_1::types;

impl From<&Caller> for types::Caller {
    fn from(caller: &Caller) -> Self {
        types::Caller {
            user_id: caller.user_id.clone(),
            accounts: caller.accounts.iter().cloned().collect(),
            super_user: caller.super_user,
        }
    }
}

/// The contract's name for a kind of object, if visibility policies decide
/// about it (internal tables are not shown to tenants' policies).
pub fn object_kind(kind: ObjectKind) -> Option<types::ObjectKind> {
    Some(match kind {
        ObjectKind::Agenda => types::ObjectKind::Agenda,
        ObjectKind::AgendaTemplate => types::ObjectKind::AgendaTemplate,
        ObjectKind::Customer => types::ObjectKind::Customer,
        ObjectKind::Insight => types::ObjectKind::Insight,
        ObjectKind::ResourcePool => types::ObjectKind::ResourcePool,
        ObjectKind::AgendaProgress => types::ObjectKind::AgendaProgress,
        ObjectKind::OperationProgress => types::ObjectKind::OperationProgress,
        // The scheduler's and the plugin registry's own tables.
        _ => return None,
    })
}

/// What a visibility policy sees of a stored document: its id and the
/// sharing fields (`customerId`, `isGlobal`, `allowedCustomerIds`).
pub fn object_summary(kind: ObjectKind, doc: &Map<String, Value>) -> Option<types::ObjectSummary> {
    let text = |field: &str| doc.get(field).and_then(Value::as_str).unwrap_or_default().to_string();
    Some(types::ObjectSummary {
        kind: object_kind(kind)?,
        id: text("id"),
        customer_id: text("customerId"),
        is_global: doc.get("isGlobal").and_then(Value::as_bool).unwrap_or(false),
        allowed_customer_ids: doc
            .get("allowedCustomerIds")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
    })
}

/// What an insight matcher sees of an agenda submitted by `customer_id`.
pub fn agenda_summary(agenda: &Agenda, customer_id: &str) -> types::AgendaSummary {
    types::AgendaSummary {
        customer_id: customer_id.to_string(),
        params: params(agenda.params.as_ref()),
        operations: agenda
            .operations()
            .iter()
            .map(|op| types::OperationSummary {
                name: op.name.clone().unwrap_or_default(),
                op_type: op.op_type.clone().unwrap_or_default(),
                params: params(op.params.as_ref()),
            })
            .collect(),
    }
}

/// What an insight matcher sees of a candidate insight.
pub fn insight_summary(insight: &Insight) -> types::InsightSummary {
    types::InsightSummary {
        id: insight.envelope.id.clone().unwrap_or_default(),
        title: insight.envelope.title.clone().unwrap_or_default(),
        owner: insight.envelope.customer_id.clone().unwrap_or_default(),
        mappers: insight
            .mappers
            .iter()
            .flatten()
            .map(|(key, values)| types::Mapper {
                key: key.clone(),
                values: values.clone(),
            })
            .collect(),
    }
}

/// Parameters as key/text pairs: strings as they are, anything else as
/// JSON text (the contract's `param.value`).
fn params(map: Option<&ParamsMap>) -> Vec<types::Param> {
    map.map(|p| {
        p.0.iter()
            .map(|(key, value)| types::Param {
                key: key.clone(),
                value: match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            })
            .collect()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_become_summaries() {
        let doc = json!({"id": "a1", "customerId": "acme", "isGlobal": true, "allowedCustomerIds": ["x", 3]});
        let summary = object_summary(ObjectKind::Agenda, doc.as_object().unwrap()).unwrap();
        assert_eq!(summary.kind, types::ObjectKind::Agenda);
        assert_eq!((summary.id.as_str(), summary.customer_id.as_str()), ("a1", "acme"));
        assert!(summary.is_global);
        assert_eq!(summary.allowed_customer_ids, vec!["x".to_string()]);
        assert!(object_summary(ObjectKind::ReadyAgenda, doc.as_object().unwrap()).is_none());
    }

    #[test]
    fn agendas_and_insights_become_summaries() {
        let agenda: Agenda = serde_json::from_value(json!({
            "params": {"priority": 3, "defaultInsight": "gpu"},
            "operations": [{"name": "train", "type": "ml", "params": {"epochs": "5"}}]
        }))
        .unwrap();
        let summary = agenda_summary(&agenda, "acme");
        assert_eq!(summary.customer_id, "acme");
        assert!(summary.params.iter().any(|p| p.key == "priority" && p.value == "3"));
        assert!(
            summary
                .params
                .iter()
                .any(|p| p.key == "defaultInsight" && p.value == "gpu")
        );
        assert_eq!(summary.operations[0].op_type, "ml");
        assert_eq!(summary.operations[0].params[0].value, "5");

        let insight: Insight = serde_json::from_value(json!({
            "id": "i1", "title": "GPU", "customerId": "acme", "mappers": {"operationType": ["ml"]}
        }))
        .unwrap();
        let summary = insight_summary(&insight);
        assert_eq!(
            (summary.id.as_str(), summary.title.as_str(), summary.owner.as_str()),
            ("i1", "GPU", "acme")
        );
        assert_eq!(summary.mappers[0].key, "operationType");
    }
}
