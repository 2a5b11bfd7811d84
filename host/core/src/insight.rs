//! Binding an agenda to an Insight at submission (spec §4.1).

use serde_json::Value;

use crate::params::keys;
use crate::visibility::{Caller, Ownership, ReadRule, can_read};
use crate::{Agenda, Insight, ParamsMap};

/// Mapper keys of `Insight.mappers`.
pub const MAPPER_OPERATION_TYPE: &str = "operationType";
pub const MAPPER_OPERATION_NAME: &str = "operationName";
pub const MAPPER_PARAM_MAP: &str = "paramMap";

/// May `customer_id`'s agendas map to this insight? (global, owned, or allowed)
pub fn insight_visible_to_customer(insight: &Insight, customer_id: &str) -> bool {
    let allowed: Vec<Value> = insight
        .allowed_customer_ids
        .iter()
        .flatten()
        .map(|id| Value::String(id.to_lowercase()))
        .collect();
    let ownership = Ownership {
        customer_id: insight.envelope.customer_id.as_deref(),
        is_global: insight.is_global.unwrap_or(false),
        allowed_customer_ids: Some(&allowed),
    };
    can_read(&Caller::customer(customer_id), ReadRule::Shared, ownership)
}

/// Does any mapper entry of `insight` match `agenda`? An insight without
/// mappers matches nothing.
pub fn insight_matches(insight: &Insight, agenda: &Agenda) -> bool {
    let Some(mappers) = &insight.mappers else { return false };
    mappers.iter().any(|(key, values)| match key.as_str() {
        MAPPER_OPERATION_TYPE => agenda.operations().iter().any(|op| {
            op.op_type
                .as_deref()
                .is_some_and(|t| values.iter().any(|v| v.eq_ignore_ascii_case(t)))
        }),
        MAPPER_OPERATION_NAME => agenda.operations().iter().any(|op| {
            op.name
                .as_deref()
                .is_some_and(|n| values.iter().any(|v| v.eq_ignore_ascii_case(n)))
        }),
        MAPPER_PARAM_MAP => values.iter().filter_map(|entry| entry.split_once('=')).any(|(k, v)| {
            let (k, v) = (k.to_lowercase(), v.to_lowercase());
            let has_pair = |params: &Option<ParamsMap>| {
                params.as_ref().is_some_and(|p| {
                    p.0.iter()
                        .any(|(pk, pv)| pk.to_lowercase() == k && value_text(pv).to_lowercase() == v)
                })
            };
            has_pair(&agenda.params) || agenda.operations().iter().any(|op| has_pair(&op.params))
        }),
        _ => false,
    })
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Choose the insight for `agenda` among `candidates` (the insights of the
/// customer's resource pool, in store order): the first visible match, or the
/// first visible match named by `params.defaultInsight` (title or id,
/// case-insensitive) when there is one.
pub fn select_insight<'a>(agenda: &Agenda, customer_id: &str, candidates: &'a [Insight]) -> Option<&'a Insight> {
    let mut matches = candidates
        .iter()
        .filter(|i| insight_visible_to_customer(i, customer_id) && insight_matches(i, agenda));
    let preferred = agenda.params.as_ref().and_then(|p| p.get_string(keys::DEFAULT_INSIGHT));
    let Some(preferred) = preferred else {
        return matches.next();
    };
    let mut first = None;
    for insight in matches {
        let named = |s: &Option<String>| s.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(&preferred));
        if named(&insight.envelope.title) || named(&insight.envelope.id) {
            return Some(insight);
        }
        first.get_or_insert(insight);
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn insight(v: Value) -> Insight {
        serde_json::from_value(v).unwrap()
    }

    fn agenda(v: Value) -> Agenda {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn mapper_kinds_match_case_insensitively() {
        let a = agenda(json!({"customerId": "acme", "params": {"Tier": "Gold", "n": 5},
            "operations": [{"name": "Encode.1", "type": "FFmpeg", "params": {"zone": "east"}}]}));
        let cases = [
            (json!({"operationType": ["ffmpeg"]}), true),
            (json!({"operationType": ["sample"]}), false),
            (json!({"operationName": ["encode.1"]}), true),
            (json!({"paramMap": ["tier=gold"]}), true),
            (json!({"paramMap": ["n=5"]}), true),
            (json!({"paramMap": ["ZONE=EAST"]}), true),
            (json!({"paramMap": ["zone"]}), false),
            (json!({"unknown": ["x"]}), false),
            (json!({"operationType": ["x"], "operationName": ["ENCODE.1"]}), true),
            (json!({}), false),
        ];
        for (mappers, expected) in cases {
            let i = insight(json!({"customerId": "acme", "mappers": mappers}));
            assert_eq!(insight_matches(&i, &a), expected, "{mappers}");
        }
        assert!(!insight_matches(&insight(json!({"customerId": "acme"})), &a));
    }

    #[test]
    fn selection_respects_visibility_order_and_default_insight() {
        let candidates = vec![
            insight(
                json!({"id": "i0", "title": "Other", "customerId": "globex", "mappers": {"operationType": ["sample"]}}),
            ),
            insight(
                json!({"id": "i1", "title": "First", "customerId": "acme", "mappers": {"operationType": ["sample"]}}),
            ),
            insight(
                json!({"id": "i2", "title": "Shared", "customerId": "globex", "allowedCustomerIds": ["ACME"], "mappers": {"operationType": ["sample"]}}),
            ),
            insight(
                json!({"id": "i3", "title": "Global", "customerId": "globex", "isGlobal": true, "mappers": {"operationType": ["sample"]}}),
            ),
        ];
        let plain = agenda(json!({"operations": [{"name": "a", "type": "sample"}]}));
        assert_eq!(
            select_insight(&plain, "acme", &candidates)
                .unwrap()
                .envelope
                .id
                .as_deref(),
            Some("i1")
        );
        for (preferred, expected) in [("global", "i3"), ("I2", "i2"), ("Other", "i1"), ("nope", "i1")] {
            let a = agenda(
                json!({"params": {"defaultInsight": preferred}, "operations": [{"name": "a", "type": "sample"}]}),
            );
            assert_eq!(
                select_insight(&a, "acme", &candidates).unwrap().envelope.id.as_deref(),
                Some(expected),
                "{preferred}"
            );
        }
        let unmatched = agenda(json!({"operations": [{"name": "a", "type": "zzz"}]}));
        assert!(select_insight(&unmatched, "acme", &candidates).is_none());
        assert!(select_insight(&plain, "hooli", &candidates[..3]).is_none());
    }
}
