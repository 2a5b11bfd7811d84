//! A document as an item and back: the compressed JSON, the version, the
//! place in insertion order and the indexed fields' text.

use std::collections::HashMap;
use std::io::{Read, Write};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use pop_core::ObjectKind;
use pop_ports::{Document, StoreError, field_text};

pub const ID: &str = "id";
pub const DOC: &str = "doc";
pub const SEQ: &str = "seq";
pub const VER: &str = "ver";
/// The `in_order` index's partition: the kind's table name on every item.
pub const TABLE: &str = "tbl";

/// The attribute holding the text of an indexed field.
pub fn index_attribute(field: &str) -> String {
    format!("ix_{field}")
}

/// What a stored item holds, decoded.
#[derive(Debug, Clone)]
pub struct Stored {
    pub doc: Document,
    pub seq: i64,
    pub ver: i64,
}

pub type Item = HashMap<String, AttributeValue>;

/// The item of `doc` at `seq`, version `ver`.
pub fn encode(kind: ObjectKind, id: &str, doc: &Document, seq: i64, ver: i64) -> Result<Item, StoreError> {
    let json = serde_json::to_vec(doc).map_err(|e| StoreError::InvalidDocument(e.to_string()))?;
    let mut deflater = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    deflater
        .write_all(&json)
        .and_then(|()| deflater.flush())
        .map_err(|e| StoreError::backend(format!("compressing {kind} {id}: {e}")))?;
    let compressed = deflater
        .finish()
        .map_err(|e| StoreError::backend(format!("compressing {kind} {id}: {e}")))?;
    let mut item = Item::new();
    item.insert(ID.into(), AttributeValue::S(id.to_owned()));
    item.insert(DOC.into(), AttributeValue::B(Blob::new(compressed)));
    item.insert(SEQ.into(), AttributeValue::N(seq.to_string()));
    item.insert(VER.into(), AttributeValue::N(ver.to_string()));
    item.insert(TABLE.into(), AttributeValue::S(kind.table().to_owned()));
    for field in kind.indexed_fields() {
        // An index key cannot be empty: such a value is found by the walk
        // in insertion order instead.
        if let Some(text) = field_text(doc, field).filter(|t| !t.is_empty()) {
            item.insert(index_attribute(field), AttributeValue::S(text));
        }
    }
    Ok(item)
}

/// The document, place and version of `item`.
pub fn decode(kind: ObjectKind, item: &Item) -> Result<Stored, StoreError> {
    let id = match item.get(ID) {
        Some(AttributeValue::S(id)) => id.as_str(),
        _ => "?",
    };
    let broken = |what: &str| StoreError::backend(format!("{kind} {id}: the stored item {what}"));
    let number = |name: &str| -> Result<i64, StoreError> {
        match item.get(name) {
            Some(AttributeValue::N(n)) => n.parse().map_err(|_| broken(&format!("has a bad {name}"))),
            _ => Err(broken(&format!("has no {name}"))),
        }
    };
    let Some(AttributeValue::B(blob)) = item.get(DOC) else {
        return Err(broken("has no document"));
    };
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(blob.as_ref())
        .read_to_end(&mut json)
        .map_err(|_| broken("does not inflate"))?;
    let doc: Document = serde_json::from_slice(&json).map_err(|_| broken("is not a JSON object"))?;
    Ok(Stored {
        doc,
        seq: number(SEQ)?,
        ver: number(VER)?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_item_holds_the_document_compressed_with_its_indexed_fields_as_text() {
        let doc = json!({"id": "a1", "customerId": "acme", "linkId": 7, "title": "", "big": "x".repeat(100_000)});
        let doc = doc.as_object().cloned().unwrap();
        let item = encode(ObjectKind::Agenda, "a1", &doc, 42, 3).unwrap();
        assert_eq!(item["ix_customerId"], AttributeValue::S("acme".into()));
        assert_eq!(item["ix_linkId"], AttributeValue::S("7".into()));
        assert!(!item.contains_key("ix_title"), "an empty key is not indexed");
        let AttributeValue::B(blob) = &item[DOC] else { panic!() };
        assert!(blob.as_ref().len() < 2_000, "compressed: {}", blob.as_ref().len());
        let stored = decode(ObjectKind::Agenda, &item).unwrap();
        assert_eq!((stored.doc, stored.seq, stored.ver), (doc, 42, 3));
    }
}
