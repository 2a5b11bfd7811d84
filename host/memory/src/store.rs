//! `MemoryStore`: tables as ordered maps behind one lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use pop_core::ObjectKind;
use pop_ports::rules::{check_patch_id, document_id, overlay};
use pop_ports::{
    Condition, Document, DocumentLimits, Filter, Query, Result, ScanCursor, ScanPage, Store, StoreError, Write,
    field_text,
};

/// One kind's rows: insertion order by sequence number; a replaced or
/// merged row keeps its number, hence its place.
#[derive(Default, Clone)]
struct Table {
    rows: BTreeMap<u64, Document>,
    seq_of: HashMap<String, u64>,
    next: u64,
}

impl Table {
    fn get(&self, id: &str) -> Option<&Document> {
        self.seq_of.get(id).and_then(|seq| self.rows.get(seq))
    }

    fn put(&mut self, id: &str, doc: Document) {
        let seq = match self.seq_of.get(id) {
            Some(&seq) => seq,
            None => {
                self.next += 1;
                self.seq_of.insert(id.to_owned(), self.next);
                self.next
            }
        };
        self.rows.insert(seq, doc);
    }

    fn remove(&mut self, id: &str) -> Option<Document> {
        let seq = self.seq_of.remove(id)?;
        self.rows.remove(&seq)
    }
}

/// The store. Writes apply under the lock to a copy of the tables they
/// touch, swapped in only when every write of the batch applied.
#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<HashMap<ObjectKind, Table>>,
    limits: Option<DocumentLimits>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that keeps documents only within `limits` (tests of what
    /// the application does at a backend's limits).
    pub fn with_limits(limits: DocumentLimits) -> Self {
        Self {
            tables: Mutex::default(),
            limits: Some(limits),
        }
    }

    fn matching(&self, kind: ObjectKind, query: &Query, visible: Option<&Filter>) -> Vec<Document> {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let Some(table) = tables.get(&kind) else {
            return Vec::new();
        };
        table
            .rows
            .values()
            .filter(|doc| {
                query
                    .filters
                    .iter()
                    .all(|(field, value)| field_text(doc, field).as_deref() == Some(value.as_str()))
            })
            .filter(|doc| visible.is_none_or(|visible| visible.admits(kind, doc)))
            .take(query.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }

    /// One page of a scan: at most `examine` rows matching `query`'s
    /// equality filters after the sequence number `after`; the cursor is the
    /// last sequence number looked at.
    fn page(&self, kind: ObjectKind, query: &Query, filter: Option<&Filter>, after: u64, examine: usize) -> ScanPage {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let mut page = ScanPage::default();
        let Some(table) = tables.get(&kind) else {
            return page;
        };
        let examine = examine.max(1);
        let mut examined = 0;
        let mut last = after;
        let matching = table.rows.range(after + 1..).filter(|(_, doc)| {
            query
                .filters
                .iter()
                .all(|(field, value)| field_text(doc, field).as_deref() == Some(value.as_str()))
        });
        for (&seq, doc) in matching.take(examine) {
            examined += 1;
            last = seq;
            if filter.is_none_or(|keep| keep.admits(kind, doc)) {
                page.docs.push(doc.clone());
            }
        }
        if examined == examine {
            page.next = Some(ScanCursor(last.to_string()));
        }
        page
    }

    fn check_limits(&self, kind: ObjectKind, doc: &Document) -> Result<()> {
        let limits = self.document_limits(kind);
        limits.check_depth(kind, doc)?;
        let bytes = serde_json::to_vec(doc).map_err(|e| StoreError::InvalidDocument(e.to_string()))?;
        limits.check_size(kind, doc, bytes.len())
    }

    fn apply(&self, tables: &mut HashMap<ObjectKind, Table>, write: Write) -> Result<Option<Document>> {
        match write {
            Write::Put { kind, doc, condition } => {
                let id = document_id(&doc)?.to_owned();
                self.check_limits(kind, &doc)?;
                let table = tables.entry(kind).or_default();
                match (condition, table.get(&id).is_some()) {
                    (Condition::MustNotExist, true) => return Err(StoreError::AlreadyExists { kind, id }),
                    (Condition::MustExist, false) => return Err(StoreError::NotFound { kind, id }),
                    _ => {}
                }
                table.put(&id, doc.clone());
                Ok(Some(doc))
            }
            Write::Merge {
                kind,
                id,
                patch,
                expect,
            } => {
                check_patch_id(kind, &id, &patch)?;
                let table = tables.entry(kind).or_default();
                let mut doc = table
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| StoreError::NotFound { kind, id: id.clone() })?;
                if !expect.held_by(&doc) {
                    return Err(StoreError::ConditionFailed { kind, id });
                }
                overlay(&mut doc, patch);
                self.check_limits(kind, &doc)?;
                table.put(&id, doc.clone());
                Ok(Some(doc))
            }
            Write::Delete { kind, id, expect } => {
                let table = tables.entry(kind).or_default();
                if !expect.is_empty() {
                    let doc = table
                        .get(&id)
                        .ok_or_else(|| StoreError::NotFound { kind, id: id.clone() })?;
                    if !expect.held_by(doc) {
                        return Err(StoreError::ConditionFailed { kind, id });
                    }
                }
                Ok(table.remove(&id))
            }
        }
    }
}

fn kind_of(write: &Write) -> ObjectKind {
    match write {
        Write::Put { kind, .. } | Write::Merge { kind, .. } | Write::Delete { kind, .. } => *kind,
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Option<Document>> {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        Ok(tables.get(&kind).and_then(|t| t.get(id)).cloned())
    }

    async fn query(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> Result<Vec<Document>> {
        Ok(self.matching(kind, query, visible.as_ref()))
    }

    async fn count(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> Result<u64> {
        let all = Query {
            limit: None,
            ..query.clone()
        };
        Ok(self.matching(kind, &all, visible.as_ref()).len() as u64)
    }

    async fn scan(
        &self,
        kind: ObjectKind,
        query: &Query,
        filter: Option<Filter>,
        from: Option<&ScanCursor>,
        examine: usize,
    ) -> Result<ScanPage> {
        let after = match from {
            None => 0,
            Some(ScanCursor(text)) => text
                .parse()
                .map_err(|_| StoreError::InvalidDocument(format!("not a cursor of this store: {text:?}")))?,
        };
        Ok(self.page(kind, query, filter.as_ref(), after, examine))
    }

    async fn write(&self, writes: Vec<Write>) -> Result<Vec<Option<Document>>> {
        pop_ports::check_write_count(writes.len(), self.max_writes())?;
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        // Work on copies of the touched tables: a failing write leaves the
        // real ones as they were (atomicity), later writes see earlier ones.
        let mut copies: HashMap<ObjectKind, Table> = HashMap::new();
        for write in &writes {
            let kind = kind_of(write);
            copies
                .entry(kind)
                .or_insert_with(|| tables.get(&kind).cloned().unwrap_or_default());
        }
        let mut results = Vec::with_capacity(writes.len());
        for write in writes {
            results.push(self.apply(&mut copies, write)?);
        }
        tables.extend(copies);
        Ok(results)
    }

    fn document_limits(&self, _kind: ObjectKind) -> DocumentLimits {
        self.limits.unwrap_or(DocumentLimits::ITEM)
    }
}
