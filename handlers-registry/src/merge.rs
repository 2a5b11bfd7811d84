use serde_json::Value;

/// Merges `overlay` into `base`, recursively (JSON Merge Patch, RFC 7386):
/// objects merge key by key, a `null` removes the key, anything else (scalars and arrays)
/// replaces the base value.
///
/// POP replaced each top-level PodConfig field whole (§9 item 13), so a type that only wanted to
/// add one env var or label had to repeat the base's map. Arrays still replace whole: there is
/// no identity to merge list items by, and "replace" is what a reader of the file expects.
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                if value.is_null() {
                    base.remove(key);
                } else if let Some(existing) = base.get_mut(key) {
                    deep_merge(existing, value);
                } else {
                    base.insert(key.clone(), strip_nulls(value));
                }
            }
        }
        (base, overlay) => *base = strip_nulls(overlay),
    }
}

/// A value copied in whole must not carry `null`s either: they mean "remove", never "store null".
fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_nested_objects_and_replaces_the_rest() {
        let cases = [
            (json!({"a": 1}), json!({"b": 2}), json!({"a": 1, "b": 2})),
            (
                json!({"env": {"A": "1"}}),
                json!({"env": {"B": "2"}}),
                json!({"env": {"A": "1", "B": "2"}}),
            ),
            (
                json!({"env": {"A": "1"}}),
                json!({"env": {"A": "x"}}),
                json!({"env": {"A": "x"}}),
            ),
            (json!({"args": [1, 2]}), json!({"args": [3]}), json!({"args": [3]})),
            (json!({"a": 1, "b": 2}), json!({"a": null}), json!({"b": 2})),
            (json!({"a": {"x": 1}}), json!({"a": 5}), json!({"a": 5})),
            (
                json!({"a": 5}),
                json!({"a": {"x": 1, "y": null}}),
                json!({"a": {"x": 1}}),
            ),
            (
                json!({}),
                json!({"n": {"m": {"k": null, "v": 1}}}),
                json!({"n": {"m": {"v": 1}}}),
            ),
        ];
        for (mut base, overlay, expected) in cases {
            let shown = format!("{base} + {overlay}");
            deep_merge(&mut base, &overlay);
            assert_eq!(base, expected, "{shown}");
        }
    }
}
