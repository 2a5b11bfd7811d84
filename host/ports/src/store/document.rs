use serde_json::Value;

/// A stored object: a JSON object with a string `id`.
pub type Document = serde_json::Map<String, Value>;

/// The text form used by equality filters (spec §3.3: values are compared as
/// strings): strings as they are, numbers and booleans in JSON form, objects
/// and arrays as compact JSON. `None` for null or absent fields, which match
/// no filter.
pub fn field_text(doc: &Document, field: &str) -> Option<String> {
    match doc.get(field)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}
