//! Where one delivery's records go: the [`Ledger`] a [`super::recorder`]
//! writes through.
//!
//! Inside `pop serve` the ledger is the store and the queue themselves
//! ([`StoreLedger`]): batches guarded by the delivery's fencing token, the
//! lease extended and acknowledged on the queue. A remote executor (`pop
//! executor`, `pop puller`) has neither: its ledger is the ResourcePool
//! service over HTTP (`updateAgendaProgress` with the fencing token,
//! `extendLease`, `ackAgenda`), with the same guarantees, so the executor
//! runs the same code in both places.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use pop_core::QueuedAgenda;
use pop_ports::{Queue, QueueError, Store, StoreError, Write};
use serde_json::Value;
use std::sync::Arc;

use crate::domain::fence;

/// Why a ledger call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    /// Another delivery (or a rerun) holds the agenda now: this run must
    /// record nothing more.
    #[error("the lease on the agenda was lost (it expired and was delivered again, or a rerun cleared it)")]
    LeaseLost,
    /// Worth retrying (an engine or a server briefly unavailable).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help.
    #[error("{0}")]
    Permanent(String),
}

/// One delivery's records: its progress writes and its lease.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Most writes one [`Ledger::commit`] takes.
    fn max_writes(&self) -> usize;

    /// Make this delivery the progress's current one (its fencing token),
    /// unless a newer one took over meanwhile.
    async fn take_over(&self) -> Result<(), LedgerError>;

    /// Apply `writes` (AgendaProgress merges, OperationProgress merges and
    /// puts of this delivery's progress) atomically, and only while this
    /// delivery is the progress's current one.
    async fn commit(&self, writes: Vec<Write>) -> Result<(), LedgerError>;

    /// The lease's heartbeat.
    async fn extend_lease(&self) -> Result<(), LedgerError>;

    /// The delivery is done: its queue entry goes (idempotent).
    async fn acknowledge(&self) -> Result<(), LedgerError>;
}

/// The ledger of a delivery claimed by `pop serve` itself.
pub struct StoreLedger {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    /// The delivery as the queue last confirmed it.
    lease: Mutex<QueuedAgenda>,
    lease_time: Duration,
    progress_id: String,
    token: String,
    /// The token the progress held when the delivery was read.
    stored_token: Option<Value>,
}

impl StoreLedger {
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        lease: QueuedAgenda,
        lease_time: Duration,
        progress_id: String,
        stored_token: Option<Value>,
    ) -> Self {
        Self {
            store,
            queue,
            token: fence::token_of(&lease),
            lease: Mutex::new(lease),
            lease_time,
            progress_id,
            stored_token,
        }
    }

    fn lease(&self) -> QueuedAgenda {
        self.lease.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn write(&self, writes: Vec<Write>) -> Result<(), LedgerError> {
        match self.store.write(writes).await {
            Ok(_) => Ok(()),
            Err(StoreError::ConditionFailed { .. } | StoreError::NotFound { .. }) => Err(LedgerError::LeaseLost),
            Err(e) if e.is_transient() => Err(LedgerError::Transient(format!("the store failed: {e}"))),
            Err(e) => Err(LedgerError::Permanent(format!("the store failed: {e}"))),
        }
    }
}

fn queue_error(error: QueueError) -> LedgerError {
    match error {
        QueueError::LeaseLost { .. } => LedgerError::LeaseLost,
        e if e.is_transient() => LedgerError::Transient(format!("the queue failed: {e}")),
        e => LedgerError::Permanent(format!("the queue failed: {e}")),
    }
}

#[async_trait]
impl Ledger for StoreLedger {
    fn max_writes(&self) -> usize {
        // One place is the guard's.
        self.store.max_writes().saturating_sub(1).max(1)
    }

    async fn take_over(&self) -> Result<(), LedgerError> {
        let write = fence::take_over(&self.progress_id, self.stored_token.as_ref(), &self.token);
        self.write(vec![write]).await
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<(), LedgerError> {
        let mut guarded = Vec::with_capacity(writes.len() + 1);
        guarded.push(fence::guard(&self.progress_id, &self.token));
        guarded.extend(writes);
        self.write(guarded).await
    }

    async fn extend_lease(&self) -> Result<(), LedgerError> {
        let extended = self
            .queue
            .extend(&self.lease(), self.lease_time)
            .await
            .map_err(queue_error)?;
        *self.lease.lock().unwrap_or_else(|e| e.into_inner()) = extended;
        Ok(())
    }

    async fn acknowledge(&self) -> Result<(), LedgerError> {
        self.queue.acknowledge(&self.lease()).await.map_err(queue_error)
    }
}
