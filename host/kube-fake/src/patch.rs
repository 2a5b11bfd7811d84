//! Patches: JSON merge patch (RFC 7386) and strategic merge patch, which
//! for what POP patches (annotations, labels, status fields) merges maps
//! the same way. Lists are replaced whole by both here; a real server
//! merges some lists of a strategic patch by key, which POP never relies on.

use serde_json::Value;

/// Applies `patch` to `target` as a JSON merge patch: objects merge key by
/// key, `null` removes a key, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        // Strategic-merge directives are not data.
        if key.starts_with("$patch") || key.starts_with("$setElementOrder") || key.starts_with("$retainKeys") {
            continue;
        }
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn rfc_7386_examples() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        super::merge(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"a": [1, 2]});
        super::merge(&mut doc, &json!({"a": [3], "b": {"x": 1}}));
        assert_eq!(doc, json!({"a": [3], "b": {"x": 1}}));
    }
}
