//! [`OffloadingStore`]: documents beyond the backend's item limit, kept whole.
//!
//! Every store adapter keeps rows of at most [`DocumentLimits::ITEM`]
//! (DynamoDB's 400 KB item), but an agenda of 10,000 operations is ~800 KB of
//! JSON. In front of any [`Store`], this decorator moves the largest fields of
//! such a document (of the kinds it is configured for) to the [`BlobStore`]
//! and keeps a reference in the row (see [`reference`]); reads put the values
//! back, so the application and the API see the whole document. Documents
//! that fit are stored as they are, at no extra cost.
//!
//! * **Order, and what a crash leaves.** Blobs are written before the row that
//!   refers to them, and a replaced or deleted value's blob is deleted after
//!   the write that dropped it: a crash in between leaves an unreferenced blob
//!   (garbage), never a row referring to a missing one.
//! * **Guards.** An [`Expect`] on an offloaded field (e.g. "operations are
//!   still what I read") is checked against the blob's value and then sent to
//!   the backend as an expectation of the reference, which names that version
//!   exactly: the compare-and-set stays atomic in the backend.
//! * **Limits.** The document as a whole is limited by
//!   [`OffloadOptions::max_bytes`]; what stays in the row must still fit the
//!   backend's limit. Indexed fields and `id` are never offloaded, so filters
//!   and guards on them see real values.
//! * **Cost.** Creating a document reads nothing; replacing, merging into or
//!   guarded-deleting a document of an offloaded kind reads its row first (to
//!   find the references it replaces). Offloaded kinds are the rarely
//!   rewritten ones (agendas, templates), not the progress hot path.
//! * **Concurrent replacement.** Two writers replacing the same offloaded
//!   field at once may leave the blob of the value in between unreferenced:
//!   garbage, never a dangling reference (every value has a blob of its own).

pub mod reference;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use pop_core::ObjectKind;
use pop_ports::{
    BlobError, BlobStore, Condition, Document, DocumentLimits, Expect, Filter, Query, Result, ScanCursor, ScanPage,
    Store, StoreError, Write,
};
use serde_json::Value;

use crate::reference::{envelope, open_envelope, reference_of, reference_to, references_in, refuse_references};

/// Which kinds are offloaded, and how large a whole document may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffloadOptions {
    /// Kinds whose large fields go to the blob store; other kinds are passed
    /// through untouched and keep the backend's limit.
    pub kinds: Vec<ObjectKind>,
    /// The largest whole document (serialized, compact JSON) of those kinds.
    pub max_bytes: usize,
    /// Fields smaller than this stay in the row: offloading them would save
    /// less than it costs.
    pub min_field_bytes: usize,
}

impl Default for OffloadOptions {
    fn default() -> Self {
        Self {
            kinds: vec![ObjectKind::Agenda, ObjectKind::AgendaTemplate],
            max_bytes: DocumentLimits::OFFLOADED.max_bytes,
            min_field_bytes: 4 * 1024,
        }
    }
}

/// A [`Store`] that keeps documents larger than its backend's item limit by
/// offloading their large fields to a [`BlobStore`].
pub struct OffloadingStore {
    inner: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    options: OffloadOptions,
}

/// Blobs written for one batch (address → value) and blobs its writes replace.
#[derive(Default)]
struct Staged {
    created: HashMap<String, Value>,
    replaced: Vec<String>,
}

impl OffloadingStore {
    pub fn new(inner: Arc<dyn Store>, blobs: Arc<dyn BlobStore>, options: OffloadOptions) -> Self {
        Self { inner, blobs, options }
    }

    fn offloads(&self, kind: ObjectKind) -> bool {
        self.options.kinds.contains(&kind)
    }

    /// The backend's row limit for `kind`.
    fn row_bytes(&self, kind: ObjectKind) -> usize {
        self.inner.document_limits(kind).max_bytes
    }

    /// `doc` with every reference replaced by its value (`known` first, then
    /// the blob store).
    async fn restore(&self, kind: ObjectKind, mut doc: Document, known: &HashMap<String, Value>) -> Result<Document> {
        let references: Vec<(String, String)> = references_in(&doc)
            .map(|(field, address)| (field.to_owned(), address.to_owned()))
            .collect();
        for (field, address) in references {
            let value = match known.get(&address) {
                Some(value) => value.clone(),
                None => self.fetch(kind, &doc, &field, &address).await?,
            };
            doc.insert(field, value);
        }
        Ok(doc)
    }

    async fn fetch(&self, kind: ObjectKind, doc: &Document, field: &str, address: &str) -> Result<Value> {
        let id = doc.get("id").and_then(Value::as_str).unwrap_or_default();
        let bytes = self.blobs.get(address).await.map_err(blob_error)?.ok_or_else(|| {
            StoreError::backend(format!(
                "{kind} {id}: field '{field}' refers to blob {address}, which is missing"
            ))
        })?;
        open_envelope(kind, id, field, address, &bytes)
    }

    /// Move the largest eligible fields of `doc` to blobs until what stays
    /// is at most `fits` bytes (`size` is its current serialized size).
    async fn offload_fields(
        &self,
        kind: ObjectKind,
        id: &str,
        doc: &mut Document,
        mut size: usize,
        fits: usize,
        staged: &mut Staged,
    ) -> Result<()> {
        let indexed = kind.indexed_fields();
        let mut candidates: Vec<(usize, String)> = doc
            .iter()
            .filter(|(field, value)| {
                field.as_str() != "id"
                    && !indexed.contains(&field.as_str())
                    && !value.is_null()
                    && reference_of(value).is_none()
            })
            .map(|(field, value)| (serialized_len(value), field.clone()))
            .filter(|(bytes, _)| *bytes >= self.options.min_field_bytes)
            .collect();
        candidates.sort_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
        for (bytes, field) in candidates {
            if size <= fits {
                break;
            }
            let Some(value) = doc.get(&field) else { continue };
            let address = self
                .blobs
                .put(envelope(kind, id, &field, value)?)
                .await
                .map_err(blob_error)?;
            let reference = reference_to(&address);
            size = size + serialized_len(&reference) - bytes;
            if let Some(value) = doc.insert(field, reference) {
                staged.created.insert(address, value);
            }
        }
        Ok(())
    }

    /// `expect` with each expectation on an offloaded field of `stored`
    /// checked against the blob's value and turned into an expectation of
    /// the reference. `Err(ConditionFailed)` when the value differs.
    async fn translate_expect(
        &self,
        kind: ObjectKind,
        id: &str,
        stored: Option<&Document>,
        expect: Expect,
    ) -> Result<Expect> {
        let Some(stored) = stored else { return Ok(expect) };
        let mut translated = Expect::nothing();
        for (field, expected) in expect.fields() {
            match stored.get(field).and_then(reference_of) {
                Some(address) => {
                    let value = self.fetch(kind, stored, field, address).await?;
                    let mut current = Document::new();
                    current.insert(field.clone(), value);
                    if !Expect::field(field.clone(), expected.clone()).held_by(&current) {
                        return Err(StoreError::ConditionFailed {
                            kind,
                            id: id.to_owned(),
                        });
                    }
                    translated = translated.and(field.clone(), reference_to(address));
                }
                None => translated = translated.and(field.clone(), expected.clone()),
            }
        }
        Ok(translated)
    }

    /// The write to send to the backend for `write`, blobs written and
    /// replaced references noted in `staged`.
    async fn prepare(&self, write: Write, staged: &mut Staged) -> Result<Write> {
        match write {
            Write::Put {
                kind,
                mut doc,
                condition,
            } if self.offloads(kind) => {
                refuse_references(kind, &doc)?;
                let size = self.checked_size(kind, &doc)?;
                let id = doc.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
                if condition != Condition::MustNotExist
                    && !id.is_empty()
                    && let Some(stored) = self.inner.get(kind, &id).await?
                {
                    staged
                        .replaced
                        .extend(references_in(&stored).map(|(_, a)| a.to_owned()));
                }
                if size > self.row_bytes(kind) && !id.is_empty() {
                    self.offload_fields(kind, &id, &mut doc, size, self.row_bytes(kind), staged)
                        .await?;
                }
                Ok(Write::Put { kind, doc, condition })
            }
            Write::Merge {
                kind,
                id,
                mut patch,
                expect,
            } if self.offloads(kind) => {
                refuse_references(kind, &patch)?;
                self.checked_size(kind, &patch)?;
                let stored = self.inner.get(kind, &id).await?;
                let expect = self.translate_expect(kind, &id, stored.as_ref(), expect).await?;
                if let Some(stored) = &stored {
                    let mut merged = stored.clone();
                    for (field, value) in patch.iter().filter(|(_, v)| !v.is_null()) {
                        if let Some(address) = stored.get(field).and_then(reference_of) {
                            staged.replaced.push(address.to_owned());
                        }
                        merged.insert(field.clone(), value.clone());
                    }
                    let merged_size = serialized_len_doc(&merged);
                    if merged_size > self.row_bytes(kind) {
                        // Only the patch's own fields move: what the row held
                        // already fit, and the patch is what is written.
                        let patch_size = serialized_len_doc(&patch);
                        let fits = self
                            .row_bytes(kind)
                            .saturating_sub(merged_size - patch_size.min(merged_size));
                        self.offload_fields(kind, &id, &mut patch, patch_size, fits, staged)
                            .await?;
                    }
                }
                Ok(Write::Merge {
                    kind,
                    id,
                    patch,
                    expect,
                })
            }
            Write::Delete { kind, id, expect } if self.offloads(kind) && !expect.is_empty() => {
                let stored = self.inner.get(kind, &id).await?;
                let expect = self.translate_expect(kind, &id, stored.as_ref(), expect).await?;
                Ok(Write::Delete { kind, id, expect })
            }
            other => Ok(other),
        }
    }

    /// The serialized size of `doc`, `Err(LimitExceeded)` when it is beyond
    /// the whole-document limits.
    fn checked_size(&self, kind: ObjectKind, doc: &Document) -> Result<usize> {
        let limits = self.document_limits(kind);
        limits.check_depth(kind, doc)?;
        let size = serialized_len_doc(doc);
        limits.check_size(kind, doc, size)?;
        Ok(size)
    }

    /// Delete blobs nothing refers to any more. A failure leaves garbage,
    /// never a dangling reference, so it is logged, not returned.
    async fn discard(&self, addresses: impl IntoIterator<Item = String>) {
        for address in addresses {
            if let Err(e) = self.blobs.delete(&address).await {
                tracing::warn!(%address, error = %e, "an unreferenced offloaded blob was not deleted");
            }
        }
    }
}

#[async_trait]
impl Store for OffloadingStore {
    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Option<Document>> {
        let doc = self.inner.get(kind, id).await?;
        match doc {
            Some(doc) if self.offloads(kind) => Ok(Some(self.restore(kind, doc, &HashMap::new()).await?)),
            other => Ok(other),
        }
    }

    async fn query(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> Result<Vec<Document>> {
        let docs = self.inner.query(kind, query, visible).await?;
        if !self.offloads(kind) {
            return Ok(docs);
        }
        let mut restored = Vec::with_capacity(docs.len());
        for doc in docs {
            restored.push(self.restore(kind, doc, &HashMap::new()).await?);
        }
        Ok(restored)
    }

    async fn count(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> Result<u64> {
        self.inner.count(kind, query, visible).await
    }

    async fn scan(
        &self,
        kind: ObjectKind,
        query: &Query,
        filter: Option<Filter>,
        from: Option<&ScanCursor>,
        examine: usize,
    ) -> Result<ScanPage> {
        let mut page = self.inner.scan(kind, query, filter, from, examine).await?;
        if self.offloads(kind) {
            let mut restored = Vec::with_capacity(page.docs.len());
            for doc in page.docs {
                restored.push(self.restore(kind, doc, &HashMap::new()).await?);
            }
            page.docs = restored;
        }
        Ok(page)
    }

    async fn write(&self, writes: Vec<Write>) -> Result<Vec<Option<Document>>> {
        if !writes.iter().any(|w| self.offloads(kind_of(w))) {
            return self.inner.write(writes).await;
        }
        pop_ports::check_write_count(writes.len(), self.inner.max_writes())?;
        let mut staged = Staged::default();
        let mut prepared = Vec::with_capacity(writes.len());
        for write in writes {
            match self.prepare(write, &mut staged).await {
                Ok(write) => prepared.push(write),
                Err(e) => {
                    self.discard(staged.created.into_keys()).await;
                    return Err(e);
                }
            }
        }
        let shapes: Vec<(ObjectKind, bool)> = prepared
            .iter()
            .map(|w| (kind_of(w), matches!(w, Write::Delete { .. })))
            .collect();
        let results = match self.inner.write(prepared).await {
            Ok(results) => results,
            Err(e) => {
                self.discard(staged.created.into_keys()).await;
                return Err(e);
            }
        };
        let mut garbage = staged.replaced;
        let mut restored = Vec::with_capacity(results.len());
        for ((kind, deleted), result) in shapes.into_iter().zip(results) {
            match result {
                Some(doc) if self.offloads(kind) => {
                    if deleted {
                        garbage.extend(references_in(&doc).map(|(_, a)| a.to_owned()));
                    }
                    restored.push(Some(self.restore(kind, doc, &staged.created).await?));
                }
                other => restored.push(other),
            }
        }
        self.discard(garbage).await;
        Ok(restored)
    }

    fn document_limits(&self, kind: ObjectKind) -> DocumentLimits {
        let row = self.inner.document_limits(kind);
        if self.offloads(kind) {
            DocumentLimits {
                max_bytes: self.options.max_bytes.max(row.max_bytes),
                ..row
            }
        } else {
            row
        }
    }

    fn max_writes(&self) -> usize {
        self.inner.max_writes()
    }
}

fn kind_of(write: &Write) -> ObjectKind {
    match write {
        Write::Put { kind, .. } | Write::Merge { kind, .. } | Write::Delete { kind, .. } => *kind,
    }
}

fn serialized_len(value: &Value) -> usize {
    serde_json::to_vec(value).map(|bytes| bytes.len()).unwrap_or(usize::MAX)
}

fn serialized_len_doc(doc: &Document) -> usize {
    serde_json::to_vec(doc).map(|bytes| bytes.len()).unwrap_or(usize::MAX)
}

fn blob_error(e: BlobError) -> StoreError {
    let message = format!("offloaded field: {e}");
    if e.is_transient() {
        StoreError::unavailable(message, e)
    } else {
        StoreError::backend_caused_by(message, e)
    }
}

#[cfg(test)]
mod tests;
