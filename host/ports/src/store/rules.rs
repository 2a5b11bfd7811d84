//! The write rules of the `Store` contract as functions, so every adapter
//! applies the same ones (the conformance suite checks the outcome).

use pop_core::ObjectKind;
use serde_json::Value;

use super::{Document, StoreError};

/// The string `id` a stored document must carry.
pub fn document_id(doc: &Document) -> Result<&str, StoreError> {
    match doc.get("id") {
        Some(Value::String(id)) => Ok(id),
        Some(other) => Err(StoreError::InvalidDocument(format!("id must be a string, not {other}"))),
        None => Err(StoreError::InvalidDocument("a stored document needs an id".into())),
    }
}

/// A merge patch may repeat the row's id but not change it.
pub fn check_patch_id(kind: ObjectKind, id: &str, patch: &Document) -> Result<(), StoreError> {
    match patch.get("id").filter(|v| !v.is_null()) {
        Some(patch_id) if patch_id.as_str() != Some(id) => Err(StoreError::InvalidDocument(format!(
            "merge into {kind} {id} cannot change its id to {patch_id}"
        ))),
        _ => Ok(()),
    }
}

/// Sparse update (spec §3.4): each non-null patch field replaces the stored
/// one whole (nested objects included); an existing field keeps its place.
pub fn overlay(doc: &mut Document, patch: Document) {
    for (field, value) in patch {
        if !value.is_null() {
            doc.insert(field, value);
        }
    }
}
