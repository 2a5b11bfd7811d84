//! What one stored document may be. Every [`crate::Store`] declares its
//! limits, the domain checks new documents against them when it builds
//! them (so a request that would exceed one is refused with a 422 naming
//! it), and the adapter checks again on write as the last line.

use pop_core::ObjectKind;
use serde_json::Value;

use crate::{Document, StoreError};

/// The largest and deepest document a store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    /// Serialized size in bytes (compact JSON).
    pub max_bytes: usize,
    /// Nesting of objects and arrays, the document itself being level 1.
    /// Kept well below `serde_json`'s parse limit of 128 so that a stored
    /// document inside a response envelope still parses for every client.
    pub max_depth: usize,
}

impl DocumentLimits {
    /// What every store adapter keeps in one row: DynamoDB's item limit
    /// (400 KB), declared by the embedded adapters too so that what works on
    /// one machine works on AWS.
    pub const ITEM: Self = Self {
        max_bytes: 400 * 1024,
        max_depth: 100,
    };

    /// What the application keeps whole when large fields are offloaded to
    /// the blob store (`pop-offload`): 16 MiB, the HTTP body limit, holds a
    /// 10,000-operation agenda many times over.
    pub const OFFLOADED: Self = Self {
        max_bytes: 16 * 1024 * 1024,
        max_depth: 100,
    };

    /// `Err` naming the limit when `doc` (of `kind`) nests too deep.
    pub fn check_depth(&self, kind: ObjectKind, doc: &Document) -> Result<(), StoreError> {
        let depth = document_depth(doc);
        if depth > self.max_depth {
            return Err(exceeded(kind, doc, depth, self.max_depth, "levels deep"));
        }
        Ok(())
    }

    /// `Err` naming the limit when the serialized form of `doc` is too large.
    pub fn check_size(&self, kind: ObjectKind, doc: &Document, serialized_bytes: usize) -> Result<(), StoreError> {
        if serialized_bytes > self.max_bytes {
            return Err(exceeded(kind, doc, serialized_bytes, self.max_bytes, "bytes"));
        }
        Ok(())
    }

    /// Both checks, serializing `doc` to measure it.
    pub fn check(&self, kind: ObjectKind, doc: &Document) -> Result<(), StoreError> {
        self.check_depth(kind, doc)?;
        let bytes = serde_json::to_vec(doc).map_err(|e| StoreError::InvalidDocument(e.to_string()))?;
        self.check_size(kind, doc, bytes.len())
    }
}

fn exceeded(kind: ObjectKind, doc: &Document, actual: usize, limit: usize, unit: &'static str) -> StoreError {
    StoreError::LimitExceeded {
        kind,
        id: doc.get("id").and_then(Value::as_str).unwrap_or("(new)").to_string(),
        actual,
        limit,
        unit,
    }
}

/// How deeply objects and arrays nest in `doc` (the document is level 1).
/// An explicit stack, so a hostile document cannot overflow ours.
pub fn document_depth(doc: &Document) -> usize {
    let mut deepest = 1;
    let mut stack: Vec<(&Value, usize)> = doc.values().map(|v| (v, 2)).collect();
    while let Some((value, level)) = stack.pop() {
        match value {
            Value::Object(map) => {
                deepest = deepest.max(level);
                stack.extend(map.values().map(|v| (v, level + 1)));
            }
            Value::Array(items) => {
                deepest = deepest.max(level);
                stack.extend(items.iter().map(|v| (v, level + 1)));
            }
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(value: Value) -> Document {
        value.as_object().cloned().unwrap()
    }

    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!(1), |inner, _| json!([inner]))
    }

    #[test]
    fn depth_counts_objects_and_arrays() {
        assert_eq!(document_depth(&doc(json!({}))), 1);
        assert_eq!(document_depth(&doc(json!({"a": 1, "b": "x"}))), 1);
        assert_eq!(document_depth(&doc(json!({"a": {"b": [1]}}))), 3);
        assert_eq!(document_depth(&doc(json!({"a": [], "b": {"c": {}}}))), 3);
        assert_eq!(document_depth(&doc(json!({"p": nested(120)}))), 121);
    }

    #[test]
    fn limits_name_what_was_exceeded() {
        let limits = DocumentLimits {
            max_bytes: 40,
            max_depth: 3,
        };
        assert!(
            limits
                .check(ObjectKind::Agenda, &doc(json!({"id": "a", "p": [[1]]})))
                .is_ok()
        );
        let deep = limits
            .check(ObjectKind::Agenda, &doc(json!({"id": "a", "p": [[[1]]]})))
            .unwrap_err();
        assert_eq!(
            deep.to_string(),
            "Agenda a would be 4 levels deep; the store keeps documents of at most 3 levels deep"
        );
        let large = limits
            .check(ObjectKind::Agenda, &doc(json!({"id": "a", "p": "x".repeat(40)})))
            .unwrap_err();
        assert!(
            matches!(
                large,
                StoreError::LimitExceeded {
                    unit: "bytes",
                    limit: 40,
                    ..
                }
            ),
            "{large}"
        );
    }
}
