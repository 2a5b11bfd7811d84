//! The decorator over the in-memory store and blobs: the store conformance
//! suite, then what offloading adds (whole documents beyond the row limit,
//! guards on offloaded fields, blobs never left dangling nor behind).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use pop_memory::{MemoryBlobStore, MemoryStore};
use pop_ports::store::conformance;
use serde_json::{Value, json};

use super::*;

struct Fixture {
    rows: Arc<MemoryStore>,
    blobs: Arc<MemoryBlobStore>,
    store: Arc<dyn Store>,
}

fn fixture() -> Fixture {
    let rows = Arc::new(MemoryStore::new());
    let blobs = Arc::new(MemoryBlobStore::new());
    let store: Arc<dyn Store> = Arc::new(OffloadingStore::new(
        rows.clone(),
        blobs.clone(),
        OffloadOptions::default(),
    ));
    Fixture { rows, blobs, store }
}

fn doc(value: Value) -> Document {
    value.as_object().cloned().expect("an object")
}

/// An agenda of `n` operations: ~80 bytes each, so 10,000 are ~800 KB.
fn agenda(id: &str, n: usize) -> Document {
    let operations: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("op{i}"), "type": "sample", "payload": {"n": i}}))
        .collect();
    doc(json!({"id": id, "customerId": "acme", "title": "big", "operations": operations}))
}

fn size(doc: &Document) -> usize {
    serde_json::to_vec(doc).unwrap().len()
}

#[tokio::test]
async fn passes_the_store_conformance_suite() {
    conformance::run_all(fixture().store).await;
}

#[tokio::test]
async fn a_document_beyond_the_row_limit_is_kept_whole() {
    let f = fixture();
    let big = agenda("a1", 10_000);
    assert!(
        size(&big) > DocumentLimits::ITEM.max_bytes,
        "the agenda must exceed a row"
    );
    let stored = f
        .store
        .write(vec![Write::create(ObjectKind::Agenda, big.clone())])
        .await
        .unwrap();
    assert_eq!(stored, vec![Some(big.clone())], "the write returns the whole document");

    let row = f.rows.get(ObjectKind::Agenda, "a1").await.unwrap().unwrap();
    assert!(size(&row) <= DocumentLimits::ITEM.max_bytes, "the row fits the backend");
    assert!(
        reference_of(&row["operations"]).is_some(),
        "operations are a reference: {row:?}"
    );
    assert_eq!(row["title"], json!("big"), "small and indexed fields stay in the row");
    assert_eq!(f.blobs.len(), 1);

    assert_eq!(f.store.get(ObjectKind::Agenda, "a1").await.unwrap(), Some(big.clone()));
    let listed = f
        .store
        .query(
            ObjectKind::Agenda,
            &Query::by("customerId", "acme"),
            Some(Filter::OwnedBy(Arc::new(["acme".to_string()].into()))),
        )
        .await
        .unwrap();
    assert_eq!(listed, vec![big]);
}

#[tokio::test]
async fn documents_that_fit_are_stored_as_they_are() {
    let f = fixture();
    let small = agenda("a1", 10);
    f.store
        .write(vec![Write::create(ObjectKind::Agenda, small.clone())])
        .await
        .unwrap();
    assert_eq!(f.rows.get(ObjectKind::Agenda, "a1").await.unwrap(), Some(small));
    assert!(f.blobs.is_empty());
}

#[tokio::test]
async fn replacing_or_deleting_an_offloaded_value_deletes_its_blob() {
    let f = fixture();
    f.store
        .write(vec![Write::create(ObjectKind::Agenda, agenda("a1", 10_000))])
        .await
        .unwrap();

    // A merge of a new large value: one blob, the new one.
    let bigger = agenda("a1", 12_000)["operations"].clone();
    let merged = f
        .store
        .write(vec![Write::merge(
            ObjectKind::Agenda,
            "a1",
            doc(json!({"operations": bigger})),
        )])
        .await
        .unwrap();
    assert_eq!(merged[0].as_ref().unwrap()["operations"], bigger);
    assert_eq!(f.blobs.len(), 1);

    // A merge of a small value puts it back in the row.
    f.store
        .write(vec![Write::merge(
            ObjectKind::Agenda,
            "a1",
            doc(json!({"operations": []})),
        )])
        .await
        .unwrap();
    assert_eq!(
        f.rows.get(ObjectKind::Agenda, "a1").await.unwrap().unwrap()["operations"],
        json!([])
    );
    assert!(f.blobs.is_empty());

    // A replacing put, then a delete.
    f.store
        .write(vec![Write::put(ObjectKind::Agenda, agenda("a1", 10_000))])
        .await
        .unwrap();
    f.store
        .write(vec![Write::put(ObjectKind::Agenda, agenda("a1", 11_000))])
        .await
        .unwrap();
    assert_eq!(f.blobs.len(), 1);
    let removed = f
        .store
        .write(vec![Write::delete(ObjectKind::Agenda, "a1")])
        .await
        .unwrap();
    assert_eq!(
        removed,
        vec![Some(agenda("a1", 11_000))],
        "the removed document is whole"
    );
    assert!(f.blobs.is_empty());
}

#[tokio::test]
async fn a_guard_on_an_offloaded_field_compares_its_value() {
    let f = fixture();
    let big = agenda("a1", 10_000);
    f.store
        .write(vec![Write::create(ObjectKind::Agenda, big.clone())])
        .await
        .unwrap();
    let read = big["operations"].clone();

    // The compare-and-set of updateAgenda: operations still what was read.
    let stale = json!([{"name": "other"}]);
    let refused = f
        .store
        .write(vec![Write::merge_if(
            ObjectKind::Agenda,
            "a1",
            Expect::field("operations", stale),
            doc(json!({"title": "changed"})),
        )])
        .await;
    assert!(
        matches!(refused, Err(StoreError::ConditionFailed { .. })),
        "{refused:?}"
    );

    let mut appended = read.as_array().unwrap().clone();
    appended.push(json!({"name": "extra", "type": "sample"}));
    f.store
        .write(vec![Write::merge_if(
            ObjectKind::Agenda,
            "a1",
            Expect::field("operations", read.clone()),
            doc(json!({"operations": appended.clone()})),
        )])
        .await
        .unwrap();
    let stored = f.store.get(ObjectKind::Agenda, "a1").await.unwrap().unwrap();
    assert_eq!(stored["operations"], json!(appended));

    // The old value no longer holds, for merges and deletes alike.
    let again = f
        .store
        .write(vec![Write::delete_if(
            ObjectKind::Agenda,
            "a1",
            Expect::field("operations", read),
        )])
        .await;
    assert!(matches!(again, Err(StoreError::ConditionFailed { .. })), "{again:?}");
    assert_eq!(f.blobs.len(), 1);
}

#[tokio::test]
async fn a_failed_batch_leaves_no_blob() {
    let f = fixture();
    f.store
        .write(vec![Write::create(ObjectKind::Agenda, agenda("a1", 10))])
        .await
        .unwrap();
    let refused = f
        .store
        .write(vec![
            Write::create(ObjectKind::Agenda, agenda("a2", 10_000)),
            Write::create(ObjectKind::Agenda, agenda("a1", 10)),
        ])
        .await;
    assert!(matches!(refused, Err(StoreError::AlreadyExists { .. })), "{refused:?}");
    assert_eq!(f.store.get(ObjectKind::Agenda, "a2").await.unwrap(), None);
    assert!(f.blobs.is_empty());
}

#[tokio::test]
async fn limits_name_the_whole_document_and_other_kinds_keep_the_row_limit() {
    let f = fixture();
    assert_eq!(f.store.document_limits(ObjectKind::Agenda), DocumentLimits::OFFLOADED);
    assert_eq!(
        f.store.document_limits(ObjectKind::OperationProgress),
        DocumentLimits::ITEM
    );
    let huge = doc(json!({"id": "a1", "operations": "x".repeat(DocumentLimits::OFFLOADED.max_bytes)}));
    match f.store.write(vec![Write::create(ObjectKind::Agenda, huge)]).await {
        Err(StoreError::LimitExceeded { limit, .. }) => assert_eq!(limit, DocumentLimits::OFFLOADED.max_bytes),
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    // Operation progress is not offloaded: the backend's 400 KB holds.
    let result = doc(json!({"id": "o1", "resultPayload": "x".repeat(DocumentLimits::ITEM.max_bytes)}));
    match f
        .store
        .write(vec![Write::create(ObjectKind::OperationProgress, result)])
        .await
    {
        Err(StoreError::LimitExceeded { limit, .. }) => assert_eq!(limit, DocumentLimits::ITEM.max_bytes),
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    assert!(f.blobs.is_empty());
}

#[tokio::test]
async fn caller_documents_holding_references_are_refused() {
    let f = fixture();
    f.store
        .write(vec![Write::create(ObjectKind::Agenda, agenda("a1", 10_000))])
        .await
        .unwrap();
    let row = f.rows.get(ObjectKind::Agenda, "a1").await.unwrap().unwrap();
    // Another document pointing at a1's blob must not read a1's operations.
    let copy = doc(json!({"id": "a2", "customerId": "mallory", "operations": row["operations"]}));
    let refused = f.store.write(vec![Write::create(ObjectKind::Agenda, copy)]).await;
    assert!(matches!(refused, Err(StoreError::InvalidDocument(_))), "{refused:?}");
    let merge = f
        .store
        .write(vec![Write::merge(
            ObjectKind::Agenda,
            "a1",
            doc(json!({"params": row["operations"]})),
        )])
        .await;
    assert!(matches!(merge, Err(StoreError::InvalidDocument(_))), "{merge:?}");
}

#[tokio::test]
async fn a_reference_copied_behind_the_decorator_does_not_resolve() {
    let f = fixture();
    f.store
        .write(vec![Write::create(ObjectKind::Agenda, agenda("a1", 10_000))])
        .await
        .unwrap();
    let row = f.rows.get(ObjectKind::Agenda, "a1").await.unwrap().unwrap();
    let copy = doc(json!({"id": "a2", "operations": row["operations"]}));
    f.rows
        .write(vec![Write::create(ObjectKind::Agenda, copy)])
        .await
        .unwrap();
    let err = f.store.get(ObjectKind::Agenda, "a2").await.unwrap_err();
    assert!(err.to_string().contains("belongs to another"), "{err}");
}

/// Blobs that fail to store: the crash point "before the blob is durable".
struct FailingBlobs {
    inner: MemoryBlobStore,
    failing: AtomicBool,
}

#[async_trait]
impl BlobStore for FailingBlobs {
    async fn put(&self, bytes: Vec<u8>) -> std::result::Result<String, BlobError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(BlobError::Unavailable {
                message: "disk gone".into(),
                source: None,
            });
        }
        self.inner.put(bytes).await
    }
    async fn get(&self, address: &str) -> std::result::Result<Option<Vec<u8>>, BlobError> {
        self.inner.get(address).await
    }
    async fn delete(&self, address: &str) -> std::result::Result<(), BlobError> {
        self.inner.delete(address).await
    }
}

#[tokio::test]
async fn a_blob_that_cannot_be_stored_writes_no_row_and_is_transient() {
    let rows = Arc::new(MemoryStore::new());
    let blobs = Arc::new(FailingBlobs {
        inner: MemoryBlobStore::new(),
        failing: AtomicBool::new(true),
    });
    let store = OffloadingStore::new(rows.clone(), blobs.clone(), OffloadOptions::default());
    let err = store
        .write(vec![Write::create(ObjectKind::Agenda, agenda("a1", 10_000))])
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(rows.get(ObjectKind::Agenda, "a1").await.unwrap(), None);
    blobs.failing.store(false, Ordering::SeqCst);
    store
        .write(vec![Write::create(ObjectKind::Agenda, agenda("a1", 10_000))])
        .await
        .unwrap();
    assert_eq!(
        store.get(ObjectKind::Agenda, "a1").await.unwrap(),
        Some(agenda("a1", 10_000))
    );
}
