//! How an offloaded field looks in the stored row, and what the blob holds.
//!
//! The row keeps the field with a reference in place of its value,
//! `{"$offloaded": "<sha256 of the blob>"}`, so a sparse update that sets the
//! field again simply replaces the reference. The blob is an envelope naming
//! the document and field it belongs to and a nonce, then the value:
//!
//! * the names make a reference usable only by the field it was written for
//!   (a reference copied into another document does not resolve);
//! * the nonce makes every offloaded value a blob of its own, even when two
//!   documents (or two versions of one) hold equal values, so deleting the
//!   blob of a value that was replaced can never take one still referenced.

use pop_core::ObjectKind;
use pop_ports::{Document, StoreError, is_blob_address};
use serde_json::{Map, Value, json};

/// The key of a reference object.
pub const REFERENCE_KEY: &str = "$offloaded";

/// The blob address `value` refers to, when it is a reference.
pub fn reference_of(value: &Value) -> Option<&str> {
    let Value::Object(map) = value else { return None };
    if map.len() != 1 {
        return None;
    }
    map.get(REFERENCE_KEY)
        .and_then(Value::as_str)
        .filter(|address| is_blob_address(address))
}

/// The reference to the blob at `address`.
pub fn reference_to(address: &str) -> Value {
    json!({ REFERENCE_KEY: address })
}

/// The top-level fields of `doc` that are references, with their addresses.
pub fn references_in(doc: &Document) -> impl Iterator<Item = (&str, &str)> {
    doc.iter()
        .filter_map(|(field, value)| reference_of(value).map(|address| (field.as_str(), address)))
}

/// `Err` when a document written by a caller already holds a reference: the
/// shape is reserved, or a caller could point a field at a blob it does not own.
pub fn refuse_references(kind: ObjectKind, doc: &Document) -> Result<(), StoreError> {
    match references_in(doc).next() {
        Some((field, _)) => Err(StoreError::InvalidDocument(format!(
            "{kind} field '{field}' holds an object whose only key is \"{REFERENCE_KEY}\": the store reserves that shape"
        ))),
        None => Ok(()),
    }
}

/// The blob content for `value`, field `field` of document `id` of `kind`.
pub fn envelope(kind: ObjectKind, id: &str, field: &str, value: &Value) -> Result<Vec<u8>, StoreError> {
    let envelope = json!({
        "kind": kind.table(),
        "id": id,
        "field": field,
        "nonce": uuid::Uuid::new_v4().to_string(),
        "value": value,
    });
    serde_json::to_vec(&envelope).map_err(|e| StoreError::InvalidDocument(e.to_string()))
}

/// The value inside `bytes`, checked to belong to `field` of `id` of `kind`.
pub fn open_envelope(
    kind: ObjectKind,
    id: &str,
    field: &str,
    address: &str,
    bytes: &[u8],
) -> Result<Value, StoreError> {
    let broken = |why: &str| {
        StoreError::backend(format!(
            "{kind} {id}: field '{field}' refers to blob {address}, which {why}"
        ))
    };
    let mut envelope: Map<String, Value> =
        serde_json::from_slice(bytes).map_err(|_| broken("is not an offloaded value"))?;
    let names = |key: &str| envelope.get(key).and_then(Value::as_str).map(str::to_owned);
    if names("kind").as_deref() != Some(kind.table())
        || names("id").as_deref() != Some(id)
        || names("field").as_deref() != Some(field)
    {
        return Err(broken("belongs to another document or field"));
    }
    envelope.remove("value").ok_or_else(|| broken("holds no value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRESS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn only_a_single_key_object_with_an_address_is_a_reference() {
        assert_eq!(reference_of(&reference_to(ADDRESS)), Some(ADDRESS));
        assert_eq!(reference_of(&json!({REFERENCE_KEY: "short"})), None);
        assert_eq!(reference_of(&json!({REFERENCE_KEY: ADDRESS, "x": 1})), None);
        assert_eq!(reference_of(&json!([ADDRESS])), None);
    }

    #[test]
    fn an_envelope_opens_only_for_its_own_field() {
        let value = json!([{"name": "a"}]);
        let bytes = envelope(ObjectKind::Agenda, "a1", "operations", &value).unwrap();
        assert_eq!(
            open_envelope(ObjectKind::Agenda, "a1", "operations", ADDRESS, &bytes).unwrap(),
            value
        );
        for (kind, id, field) in [
            (ObjectKind::AgendaTemplate, "a1", "operations"),
            (ObjectKind::Agenda, "a2", "operations"),
            (ObjectKind::Agenda, "a1", "params"),
        ] {
            let err = open_envelope(kind, id, field, ADDRESS, &bytes).unwrap_err();
            assert!(err.to_string().contains("belongs to another"), "{err}");
        }
    }

    #[test]
    fn equal_values_get_blobs_of_their_own() {
        let value = json!({"big": "x"});
        let one = envelope(ObjectKind::Agenda, "a1", "f", &value).unwrap();
        let two = envelope(ObjectKind::Agenda, "a1", "f", &value).unwrap();
        assert_ne!(one, two);
    }

    #[test]
    fn caller_documents_may_not_hold_references() {
        let doc = json!({"id": "a1", "operations": reference_to(ADDRESS)});
        let err = refuse_references(ObjectKind::Agenda, doc.as_object().unwrap()).unwrap_err();
        assert!(err.to_string().contains("'operations'"), "{err}");
        let fine = json!({"id": "a1", "operations": {REFERENCE_KEY: ADDRESS, "more": 1}});
        assert!(refuse_references(ObjectKind::Agenda, fine.as_object().unwrap()).is_ok());
    }
}
