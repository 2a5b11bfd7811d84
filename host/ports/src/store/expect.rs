//! [`Expect`]: field values a guarded write requires of the stored row.
//!
//! A read-modify-write over the store (claiming a queue entry, extending a
//! lease, appending to an agenda) is only safe if the write can tell that
//! nobody wrote the row since it was read. Guarding the write with the values
//! it read turns it into a compare-and-set: it applies in full, or the batch
//! fails with [`crate::StoreError::ConditionFailed`] and nothing applies.
//! Every backend can honour this inside its atomic write (SQLite in the
//! writer's transaction, DynamoDB as a `ConditionExpression`).

use serde_json::{Number, Value};

use crate::Document;

/// Top-level fields and the values they must hold, all of them, for a
/// guarded [`crate::Write::Merge`] or [`crate::Write::Delete`] to apply.
///
/// * `Value::Null` expects the field absent or null.
/// * Numbers compare by value (`5` holds `5.0`); everything else compares as
///   JSON (a string `"5"` does not hold `5`, unlike query filters).
/// * No fields (the default) is no guard at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expect {
    fields: Vec<(String, Value)>,
}

impl Expect {
    /// No guard: the write applies whatever the row holds.
    pub fn nothing() -> Self {
        Self::default()
    }

    /// `field` must equal `value` (`None`/null: be absent or null).
    pub fn field(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::nothing().and(field, value)
    }

    /// Also require `field` to equal `value`.
    pub fn and(mut self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields.push((field.into(), value.into()));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The `(field, value)` pairs, in the order they were given.
    pub fn fields(&self) -> &[(String, Value)] {
        &self.fields
    }

    /// Does the stored `doc` hold every expected value?
    pub fn held_by(&self, doc: &Document) -> bool {
        self.fields
            .iter()
            .all(|(field, expected)| holds(doc.get(field), expected))
    }
}

fn holds(stored: Option<&Value>, expected: &Value) -> bool {
    match (stored, expected) {
        (None | Some(Value::Null), Value::Null) => true,
        (Some(Value::Number(stored)), Value::Number(expected)) => same_number(stored, expected),
        (Some(stored), expected) => stored == expected,
        (None, _) => false,
    }
}

/// Integers exactly (an i64 beyond 2^53 must not pass for its neighbour),
/// anything else as f64.
fn same_number(a: &Number, b: &Number) -> bool {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return a == b;
    }
    a.as_f64() == b.as_f64()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(value: Value) -> Document {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn holds_table() {
        let stored = doc(json!({"s": "5", "n": 5, "f": 5.5, "big": i64::MAX, "nul": null, "b": true, "o": {"a": [1]}}));
        let cases: &[(&str, Value, bool)] = &[
            ("s", json!("5"), true),
            ("s", json!(5), false),
            ("n", json!(5), true),
            ("n", json!(5.0), true),
            ("n", json!("5"), false),
            ("n", json!(6), false),
            ("f", json!(5.5), true),
            ("big", json!(i64::MAX), true),
            ("big", json!(i64::MAX - 1), false),
            ("nul", Value::Null, true),
            ("missing", Value::Null, true),
            ("missing", json!(""), false),
            ("s", Value::Null, false),
            ("b", json!(true), true),
            ("b", json!("true"), false),
            ("o", json!({"a": [1]}), true),
            ("o", json!({"a": [2]}), false),
        ];
        for (field, value, expected) in cases {
            let expect = Expect::field(*field, value.clone());
            assert_eq!(expect.held_by(&stored), *expected, "{field} = {value}");
        }
    }

    #[test]
    fn all_fields_must_hold_and_nothing_always_holds() {
        let stored = doc(json!({"a": 1, "b": 2}));
        assert!(Expect::nothing().held_by(&stored));
        assert!(Expect::field("a", 1).and("b", 2).held_by(&stored));
        assert!(!Expect::field("a", 1).and("b", 3).held_by(&stored));
        assert!(Expect::field("c", None::<i64>).held_by(&stored));
        assert!(!Expect::field("a", None::<i64>).held_by(&stored));
    }
}
