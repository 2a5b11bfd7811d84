//! Fault injection: wrappers around any `Store` or `Queue` that fail chosen
//! calls the way an engine does (an outage that retrying may fix, or a
//! permanent refusal), so the application's handling of each can be tested
//! without a broken disk or network.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pop_core::{ObjectKind, QueuedAgenda};
use pop_ports::{
    Document, DocumentLimits, Filter, Query, Queue, QueueDepth, QueueError, ScanCursor, ScanPage, Store, StoreError,
    Write,
};

/// How an injected failure looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `Unavailable`: transient, retrying may succeed.
    Transient,
    /// `Backend`: permanent.
    Permanent,
}

#[derive(Default)]
struct Plan {
    faults: Mutex<VecDeque<Fault>>,
    attempts: AtomicUsize,
}

impl Plan {
    fn add(&self, faults: impl IntoIterator<Item = Fault>) {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).extend(faults);
    }

    /// Count an attempt and take the fault planned for it, if any.
    fn next(&self) -> Option<Fault> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }
}

fn store_error(fault: Fault) -> StoreError {
    match fault {
        Fault::Transient => StoreError::Unavailable {
            message: "injected outage".into(),
            source: None,
        },
        Fault::Permanent => StoreError::backend("injected permanent failure"),
    }
}

fn queue_error(fault: Fault) -> QueueError {
    let message = "injected".to_owned();
    match fault {
        Fault::Transient => QueueError::Unavailable { message, source: None },
        Fault::Permanent => QueueError::Backend { message, source: None },
    }
}

/// A `Store` whose next writes fail as planned; reads pass through.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    writes: Plan,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            writes: Plan::default(),
        }
    }

    /// The next writes fail with these faults, in order (each failing
    /// write changes nothing).
    pub fn fail_next_writes(&self, faults: impl IntoIterator<Item = Fault>) {
        self.writes.add(faults);
    }

    /// Writes attempted so far, failed ones included.
    pub fn write_attempts(&self) -> usize {
        self.writes.attempts.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Option<Document>, StoreError> {
        self.inner.get(kind, id).await
    }

    async fn query(
        &self,
        kind: ObjectKind,
        query: &Query,
        visible: Option<Filter>,
    ) -> Result<Vec<Document>, StoreError> {
        self.inner.query(kind, query, visible).await
    }

    async fn count(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> Result<u64, StoreError> {
        self.inner.count(kind, query, visible).await
    }
    async fn scan(
        &self,
        kind: ObjectKind,
        query: &Query,
        filter: Option<Filter>,
        from: Option<&ScanCursor>,
        examine: usize,
    ) -> Result<ScanPage, StoreError> {
        self.inner.scan(kind, query, filter, from, examine).await
    }

    async fn write(&self, writes: Vec<Write>) -> Result<Vec<Option<Document>>, StoreError> {
        match self.writes.next() {
            Some(fault) => Err(store_error(fault)),
            None => self.inner.write(writes).await,
        }
    }

    fn document_limits(&self, kind: ObjectKind) -> DocumentLimits {
        self.inner.document_limits(kind)
    }

    fn max_writes(&self) -> usize {
        self.inner.max_writes()
    }
}

/// A `Queue` whose next enqueues fail as planned; everything else passes
/// through.
pub struct FaultyQueue {
    inner: Arc<dyn Queue>,
    enqueues: Plan,
}

impl FaultyQueue {
    pub fn new(inner: Arc<dyn Queue>) -> Self {
        Self {
            inner,
            enqueues: Plan::default(),
        }
    }

    /// The next enqueues fail with these faults, in order (a failing
    /// enqueue adds nothing).
    pub fn fail_next_enqueues(&self, faults: impl IntoIterator<Item = Fault>) {
        self.enqueues.add(faults);
    }
}

#[async_trait]
impl Queue for FaultyQueue {
    async fn enqueue(&self, messages: Vec<QueuedAgenda>) -> Result<(), QueueError> {
        match self.enqueues.next() {
            Some(fault) => Err(queue_error(fault)),
            None => self.inner.enqueue(messages).await,
        }
    }

    async fn claim(
        &self,
        insight_id: &str,
        max: usize,
        owner: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<QueuedAgenda>, QueueError> {
        self.inner.claim(insight_id, max, owner, lease, wait).await
    }

    async fn extend(&self, held: &QueuedAgenda, lease: Duration) -> Result<QueuedAgenda, QueueError> {
        self.inner.extend(held, lease).await
    }

    async fn acknowledge(&self, held: &QueuedAgenda) -> Result<(), QueueError> {
        self.inner.acknowledge(held).await
    }

    async fn release(&self, held: &QueuedAgenda) -> Result<(), QueueError> {
        self.inner.release(held).await
    }

    async fn release_any(&self, message_id: &str) -> Result<(), QueueError> {
        self.inner.release_any(message_id).await
    }

    async fn release_held_by(&self, owner: &str) -> Result<usize, QueueError> {
        self.inner.release_held_by(owner).await
    }

    async fn depth(&self, insight_id: &str) -> Result<QueueDepth, QueueError> {
        self.inner.depth(insight_id).await
    }

    async fn get(&self, message_id: &str) -> Result<Option<QueuedAgenda>, QueueError> {
        self.inner.get(message_id).await
    }

    async fn list(&self, insight_id: &str, limit: usize) -> Result<Vec<QueuedAgenda>, QueueError> {
        self.inner.list(insight_id, limit).await
    }

    async fn of_agenda(&self, agenda_id: &str) -> Result<Vec<QueuedAgenda>, QueueError> {
        self.inner.of_agenda(agenda_id).await
    }

    async fn remove(&self, message_id: &str) -> Result<(), QueueError> {
        self.inner.remove(message_id).await
    }
}
