//! `ParamsMap`: the free-form string → JSON map carried by agendas, operations
//! and progress, with the typed getters of POP that also parse strings.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Free-form parameters. Values keep their JSON type; getters accept both the
/// typed value and its string form (`"3"` reads as 3, `"true"` as true).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParamsMap(pub Map<String, Value>);

impl ParamsMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.0.insert(key.into(), value.into());
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key)
    }

    /// The value as text: strings as they are, other scalars in their JSON form.
    pub fn get_string(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    pub fn get_long(&self, key: &str) -> Option<i64> {
        match self.0.get(key)? {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn get_int(&self, key: &str) -> Option<i32> {
        self.get_long(key).and_then(|v| i32::try_from(v).ok())
    }

    pub fn get_double(&self, key: &str) -> Option<f64> {
        match self.0.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn get_bool(&self, key: &str) -> Option<bool> {
        match self.0.get(key)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    /// Merge `other` into `self`; keys of `other` win.
    pub fn merge(&mut self, other: &ParamsMap) {
        for (k, v) in &other.0 {
            self.0.insert(k.clone(), v.clone());
        }
    }
}

/// Well-known parameter keys (spec §1.14).
pub mod keys {
    pub const EXTERNAL_ID: &str = "externalId";
    pub const MAXIMUM_ATTEMPTS: &str = "maximumAttempts";
    pub const DO_NOT_RUN: &str = "doNotRun";
    pub const DEFAULT_INSIGHT: &str = "defaultInsight";
    pub const DEPENDS_ON: &str = "dependsOn";
    pub const GENERATED_OPERATION_PARENT: &str = "generatedOperationParent";
    pub const OPERATION_GENERATOR: &str = "agenda.operation.generator";
    pub const ADDED: &str = "added";
    /// Agenda priority for the `Priority` scheduler (higher first).
    pub const PRIORITY: &str = "priority";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_getters_parse_strings() {
        let p: ParamsMap = serde_json::from_value(json!({
            "n": 3, "s": "42", "b": "TRUE", "bb": false, "d": "2.5", "x": "nope", "nul": null
        }))
        .unwrap();
        assert_eq!(p.get_int("n"), Some(3));
        assert_eq!(p.get_long("s"), Some(42));
        assert_eq!(p.get_bool("b"), Some(true));
        assert_eq!(p.get_bool("bb"), Some(false));
        assert_eq!(p.get_double("d"), Some(2.5));
        assert_eq!(p.get_int("x"), None);
        assert_eq!(p.get_string("n").as_deref(), Some("3"));
        assert_eq!(p.get_string("nul"), None);
        assert_eq!(p.get_string("missing"), None);
    }
}
