//! What a query keeps beyond its equality fields, as data.
//!
//! A store that can, turns a filter into key conditions (DynamoDB: a query
//! per owner on the `customerId` index instead of a scan); the embedded
//! stores evaluate it per document with [`Filter::admits`]. Either way the
//! rule is the same value, not an opaque closure only one backend can run.

use std::collections::BTreeSet;
use std::sync::Arc;

use pop_core::ObjectKind;
use pop_core::visibility::{Caller, can_read_document};
use serde_json::Value;

use crate::Document;

/// A condition on stored documents.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// What `caller` may read of the queried kind by POP's rules (owner,
    /// global, allowed customers: `pop_core::visibility`).
    ReadableBy(Caller),
    /// Documents whose `customerId` is one of these.
    OwnedBy(Arc<BTreeSet<String>>),
    /// `field` holds exactly `value`.
    Equals(String, Value),
    /// `field` is absent or null.
    Missing(String),
    /// `field` is absent, null, or a number at most `limit` (a lease that
    /// has run out by `limit`).
    AbsentOrAtMost(String, i64),
    /// `field` is a number at most `limit` (a time that has come).
    AtMost(String, i64),
    Not(Box<Filter>),
    All(Vec<Filter>),
    Any(Vec<Filter>),
}

impl Filter {
    /// What `caller` may read; `None` when that is everything (a global
    /// caller), so the store needs no filter at all.
    pub fn readable_by(caller: &Caller) -> Option<Self> {
        (!caller.is_global()).then(|| Self::ReadableBy(caller.clone()))
    }

    pub fn equals(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::Equals(field.into(), value.into())
    }

    /// Whether `doc`, a document of `kind`, passes.
    pub fn admits(&self, kind: ObjectKind, doc: &Document) -> bool {
        match self {
            Self::ReadableBy(caller) => can_read_document(caller, kind, doc),
            Self::OwnedBy(owners) => doc
                .get("customerId")
                .and_then(Value::as_str)
                .is_some_and(|owner| owners.contains(owner)),
            Self::Equals(field, value) => doc.get(field) == Some(value),
            Self::Missing(field) => doc.get(field).is_none_or(Value::is_null),
            Self::AbsentOrAtMost(field, limit) => match doc.get(field) {
                None | Some(Value::Null) => true,
                Some(value) => value.as_i64().is_some_and(|n| n <= *limit),
            },
            Self::AtMost(field, limit) => doc.get(field).and_then(Value::as_i64).is_some_and(|n| n <= *limit),
            Self::Not(inner) => !inner.admits(kind, doc),
            Self::All(all) => all.iter().all(|f| f.admits(kind, doc)),
            Self::Any(any) => any.iter().any(|f| f.admits(kind, doc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(value: Value) -> Document {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn filters_combine_as_written() {
        let acme = Caller::new("u", ["acme".to_string()], false);
        let own = doc(json!({"customerId": "acme", "leaseExpires": 5}));
        let other = doc(json!({"customerId": "globex"}));
        let kind = ObjectKind::Agenda;
        assert!(Filter::ReadableBy(acme.clone()).admits(kind, &own));
        assert!(!Filter::ReadableBy(acme.clone()).admits(kind, &other));
        assert!(Filter::readable_by(&Caller::new("root", [], true)).is_none());
        let owners = Arc::new(BTreeSet::from(["globex".to_string()]));
        let either = Filter::Any(vec![Filter::OwnedBy(owners.clone()), Filter::ReadableBy(acme.clone())]);
        assert!(either.admits(kind, &own) && either.admits(kind, &other));
        let sure = Filter::All(vec![
            Filter::Not(Box::new(Filter::OwnedBy(owners))),
            Filter::ReadableBy(acme),
        ]);
        assert!(sure.admits(kind, &own) && !sure.admits(kind, &other));
        assert!(Filter::AbsentOrAtMost("leaseExpires".into(), 5).admits(kind, &own));
        assert!(!Filter::AbsentOrAtMost("leaseExpires".into(), 4).admits(kind, &own));
        assert!(Filter::AbsentOrAtMost("leaseExpires".into(), 0).admits(kind, &other));
        assert!(Filter::AtMost("leaseExpires".into(), 5).admits(kind, &own));
        assert!(!Filter::AtMost("leaseExpires".into(), 4).admits(kind, &own));
        assert!(
            !Filter::AtMost("leaseExpires".into(), 9).admits(kind, &other),
            "absent is not at most"
        );
        assert!(Filter::equals("customerId", "acme").admits(kind, &own));
        assert!(Filter::Missing("owner".into()).admits(kind, &own));
        assert!(!Filter::Missing("customerId".into()).admits(kind, &own));
    }
}
