//! `StoreQueue`: the `Queue` port on a `Store`'s `QueuedAgenda` table.
//!
//! On the embedded default the table lives in the same SQLite file as the
//! rest, so `GET /pop/queuedagenda` lists the queues as they stand. Leases
//! are fields of the row (`leaseOwner`, `leaseExpires`, `deliveries`), and
//! every transition is a compare-and-set on them as they were read: two
//! claimants never hold the same message, and a holder whose lease was
//! re-claimed cannot extend or acknowledge the newer one. `deliveries` only
//! grows, so an old delivery's guard never matches again.
//!
//! Long-polling claims wait on an in-process wake-up per insight, rung by
//! every enqueue and release made through this queue. A message enqueued by
//! another process sharing the file (or a lease running out) is found when
//! the wait ends, so waits should be short (the puller waits 1 s).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use pop_core::{EpochMillis, ObjectKind, QueuedAgenda};
use pop_ports::queue::{MAX_WAIT, message_id, same_delivery};
use pop_ports::{Clock, Document, Expect, Filter, Query, Queue, QueueDepth, QueueError, Store, StoreError, Write};
use serde_json::{Value, json};
use tokio::sync::Notify;

const KIND: ObjectKind = ObjectKind::QueuedAgenda;
/// Read-and-claim rounds per claim. Each round claims every entry it read
/// unless another claimant got there first; the rest are read afresh.
const MAX_CLAIM_ROUNDS: usize = 8;
/// The most messages one listing reads (depth, release by owner).
const MAX_SCAN: usize = 100_000;

/// The queue on a store.
pub struct StoreQueue {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    wake_ups: Mutex<HashMap<String, Arc<Notify>>>,
}

impl StoreQueue {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            wake_ups: Mutex::default(),
        }
    }

    fn wake_up(&self, insight_id: &str) -> Arc<Notify> {
        let mut wake_ups = self.wake_ups.lock().unwrap_or_else(|e| e.into_inner());
        wake_ups.entry(insight_id.to_owned()).or_default().clone()
    }

    fn ring(&self, insight_id: &str) {
        let wake_ups = self.wake_ups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = wake_ups.get(insight_id) {
            notify.notify_waiters();
        }
    }

    /// One claim without waiting.
    async fn claim_now(
        &self,
        insight_id: &str,
        max: usize,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Vec<QueuedAgenda>, QueueError> {
        let mut claimed = Vec::new();
        for _ in 0..MAX_CLAIM_ROUNDS {
            let wanted = max.saturating_sub(claimed.len());
            if wanted == 0 {
                break;
            }
            let now = self.clock.now_millis();
            let query = Query::by("insightId", insight_id).limit(wanted);
            let free = self
                .store
                .query(KIND, &query, Some(claimable(now)))
                .await
                .map_err(store_error)?;
            if free.is_empty() {
                break;
            }
            // One write per entry, sent together: the store commits them in
            // one group, and an entry another claimant took fails alone.
            let attempts = free.into_iter().map(|doc| self.claim_one(doc, owner, now, lease_ms));
            let mut lost = false;
            // On a store failure, entries claimed beside it stay leased but
            // are not handed out: they come back when their lease runs out.
            for outcome in join_all(attempts).await {
                match outcome? {
                    Some(entry) => claimed.push(entry),
                    None => lost = true,
                }
            }
            if !lost {
                break;
            }
        }
        Ok(claimed)
    }

    /// `None` when another claimant took (or someone removed) the entry
    /// since it was read.
    async fn claim_one(
        &self,
        doc: Document,
        owner: &str,
        now: EpochMillis,
        lease_ms: i64,
    ) -> Result<Option<QueuedAgenda>, QueueError> {
        let entry = decode(doc)?;
        let lease = patch(json!({
            "leaseOwner": owner,
            "leaseExpires": now.saturating_add(lease_ms),
            "deliveries": entry.deliveries.unwrap_or(0) + 1,
            "updatedTime": now,
        }));
        match self
            .store
            .write(vec![Write::merge_if(KIND, message_id(&entry), as_read(&entry), lease)])
            .await
        {
            Ok(mut stored) => stored.pop().flatten().map(decode).transpose(),
            Err(StoreError::ConditionFailed { .. } | StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn load(&self, message_id: &str) -> Result<Option<QueuedAgenda>, QueueError> {
        self.store
            .get(KIND, message_id)
            .await
            .map_err(store_error)?
            .map(decode)
            .transpose()
    }

    /// The current state of `held`'s message, if `held` is still its
    /// delivery; `Ok(None)` when the message is gone.
    async fn current(&self, held: &QueuedAgenda) -> Result<Option<QueuedAgenda>, QueueError> {
        let id = message_id(held);
        match self.load(id).await? {
            None => Ok(None),
            Some(current) if same_delivery(held, &current) => Ok(Some(current)),
            Some(_) => Err(QueueError::lease_lost(id, "it was delivered again or released since")),
        }
    }

    /// Clear the lease of `entry` as read: claimable at once, by anyone.
    async fn unlease(&self, entry: &QueuedAgenda) -> Result<bool, QueueError> {
        if entry.lease_owner.as_deref().unwrap_or_default().is_empty() {
            return Ok(false);
        }
        // A merge ignores nulls, so "no holder" is written as an empty owner
        // and a lease that ran out at the epoch; `deliveries` is kept, so the
        // old holder's guard can never match again.
        let cleared = patch(json!({"leaseOwner": "", "leaseExpires": 0, "updatedTime": self.clock.now_millis()}));
        let result = self
            .store
            .write(vec![Write::merge_if(KIND, message_id(entry), as_read(entry), cleared)])
            .await;
        match result {
            Ok(_) => {
                self.ring(entry.insight_id.as_deref().unwrap_or_default());
                Ok(true)
            }
            Err(StoreError::ConditionFailed { .. } | StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn scan(&self, query: Query) -> Result<Vec<QueuedAgenda>, QueueError> {
        self.store
            .query(KIND, &query, None)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(decode)
            .collect()
    }
}

#[async_trait]
impl Queue for StoreQueue {
    async fn enqueue(&self, messages: Vec<QueuedAgenda>) -> Result<(), QueueError> {
        let now = self.clock.now_millis();
        let mut docs = Vec::with_capacity(messages.len());
        for mut message in messages {
            if message_id(&message).is_empty() {
                return Err(QueueError::InvalidMessage("a message has no id".into()));
            }
            if message.insight_id.as_deref().unwrap_or_default().is_empty() {
                return Err(QueueError::InvalidMessage(format!(
                    "message {} has no insightId",
                    message_id(&message)
                )));
            }
            message.lease_owner = None;
            message.lease_expires = None;
            message.deliveries = None;
            message.queued_time = message.queued_time.or(Some(now));
            message.envelope.added_time = message.envelope.added_time.or(Some(now));
            message.envelope.updated_time = Some(now);
            docs.push(encode(&message)?);
        }
        let mut insights: Vec<String> = docs
            .iter()
            .filter_map(|d| d.get("insightId").and_then(Value::as_str).map(String::from))
            .collect();
        insights.sort();
        insights.dedup();
        // Enqueueing is idempotent per message id, so a batch larger than one
        // atomic write goes in chunks: a cut between them leaves some messages
        // queued, and sending the batch again adds only the others.
        let chunk = self.store.max_writes().max(1);
        for docs in docs.chunks(chunk) {
            let all = docs.iter().map(|d| Write::create(KIND, d.clone())).collect();
            match self.store.write(all).await {
                Ok(_) => {}
                // Some ids are queued already: add the others one by one.
                Err(StoreError::AlreadyExists { .. }) => {
                    for doc in docs {
                        match self.store.write(vec![Write::create(KIND, doc.clone())]).await {
                            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                            Err(e) => return Err(store_error(e)),
                        }
                    }
                }
                Err(e) => return Err(store_error(e)),
            }
        }
        for insight in &insights {
            self.ring(insight);
        }
        Ok(())
    }

    async fn claim(
        &self,
        insight_id: &str,
        max: usize,
        owner: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<QueuedAgenda>, QueueError> {
        let lease_ms = millis(lease);
        let deadline = self.clock.now_millis().saturating_add(millis(wait.min(MAX_WAIT)));
        let wake_up = self.wake_up(insight_id);
        loop {
            // Listen before looking, so an enqueue between the look and the
            // wait is not missed.
            let woken = wake_up.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let claimed = self.claim_now(insight_id, max, owner, lease_ms).await?;
            let remaining = deadline.saturating_sub(self.clock.now_millis());
            if !claimed.is_empty() || max == 0 || remaining <= 0 {
                return Ok(claimed);
            }
            let remaining = Duration::from_millis(u64::try_from(remaining).unwrap_or(0));
            tokio::select! {
                () = &mut woken => {}
                () = self.clock.sleep(remaining) => {}
            }
        }
    }

    async fn extend(&self, held: &QueuedAgenda, lease: Duration) -> Result<QueuedAgenda, QueueError> {
        let id = message_id(held);
        let current = self
            .current(held)
            .await?
            .ok_or_else(|| QueueError::lease_lost(id, "it was acknowledged or removed"))?;
        let now = self.clock.now_millis();
        let lease = patch(json!({"leaseExpires": now.saturating_add(millis(lease)), "updatedTime": now}));
        match self
            .store
            .write(vec![Write::merge_if(KIND, id, as_read(&current), lease)])
            .await
        {
            Ok(mut stored) => stored
                .pop()
                .flatten()
                .map(decode)
                .transpose()?
                .ok_or_else(|| QueueError::Backend {
                    message: "extending a lease returned nothing".into(),
                    source: None,
                }),
            Err(StoreError::ConditionFailed { .. } | StoreError::NotFound { .. }) => {
                Err(QueueError::lease_lost(id, "its lease changed meanwhile"))
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn acknowledge(&self, held: &QueuedAgenda) -> Result<(), QueueError> {
        let id = message_id(held);
        let Some(current) = self.current(held).await? else {
            return Ok(());
        };
        match self
            .store
            .write(vec![Write::delete_if(KIND, id, as_read(&current))])
            .await
        {
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(StoreError::ConditionFailed { .. }) => Err(QueueError::lease_lost(id, "its lease changed meanwhile")),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn release(&self, held: &QueuedAgenda) -> Result<(), QueueError> {
        match self.current(held).await {
            Ok(Some(current)) => self.unlease(&current).await.map(drop),
            Ok(None) | Err(QueueError::LeaseLost { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn release_any(&self, message_id: &str) -> Result<(), QueueError> {
        match self.load(message_id).await? {
            Some(entry) => self.unlease(&entry).await.map(drop),
            None => Ok(()),
        }
    }

    async fn release_held_by(&self, owner: &str) -> Result<usize, QueueError> {
        let mut released = 0;
        for entry in self.scan(Query::by("leaseOwner", owner).limit(MAX_SCAN)).await? {
            if self.unlease(&entry).await? {
                released += 1;
            }
        }
        Ok(released)
    }

    async fn depth(&self, insight_id: &str) -> Result<QueueDepth, QueueError> {
        let by_insight = Query::by("insightId", insight_id);
        let now = self.clock.now_millis();
        let waiting = self
            .store
            .count(KIND, &by_insight, Some(claimable(now)))
            .await
            .map_err(store_error)?;
        let all = self.store.count(KIND, &by_insight, None).await.map_err(store_error)?;
        Ok(QueueDepth {
            waiting,
            in_flight: all.saturating_sub(waiting),
        })
    }

    async fn get(&self, message_id: &str) -> Result<Option<QueuedAgenda>, QueueError> {
        self.load(message_id).await
    }

    async fn list(&self, insight_id: &str, limit: usize) -> Result<Vec<QueuedAgenda>, QueueError> {
        self.scan(Query::by("insightId", insight_id).limit(limit)).await
    }

    async fn of_agenda(&self, agenda_id: &str) -> Result<Vec<QueuedAgenda>, QueueError> {
        self.scan(Query::by("agendaId", agenda_id).limit(MAX_SCAN)).await
    }

    async fn remove(&self, message_id: &str) -> Result<(), QueueError> {
        self.store
            .write(vec![Write::delete(KIND, message_id)])
            .await
            .map(drop)
            .map_err(store_error)
    }
}

/// Keeps the entries that are free to claim at `now`: never leased, or the
/// lease ran out at or before `now`.
pub fn claimable(now: EpochMillis) -> Filter {
    Filter::AbsentOrAtMost("leaseExpires".into(), now)
}

/// The lease fields as read: a write guarded by them applies only if no
/// claim, extension, release or acknowledgement happened since.
fn as_read(entry: &QueuedAgenda) -> Expect {
    Expect::field("leaseOwner", entry.lease_owner.clone())
        .and("leaseExpires", entry.lease_expires)
        .and("deliveries", entry.deliveries)
}

fn patch(fields: Value) -> Document {
    fields.as_object().cloned().unwrap_or_default()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn decode(doc: Document) -> Result<QueuedAgenda, QueueError> {
    serde_json::from_value(Value::Object(doc)).map_err(|e| QueueError::Backend {
        message: "a stored queue message is not a QueuedAgenda".into(),
        source: Some(Box::new(e)),
    })
}

fn encode(message: &QueuedAgenda) -> Result<Document, QueueError> {
    match serde_json::to_value(message) {
        Ok(Value::Object(doc)) => Ok(doc),
        Ok(_) => Err(QueueError::InvalidMessage("a message is not an object".into())),
        Err(e) => Err(QueueError::InvalidMessage(e.to_string())),
    }
}

fn store_error(error: StoreError) -> QueueError {
    if error.is_transient() {
        QueueError::Unavailable {
            message: "the store is busy".into(),
            source: Some(Box::new(error)),
        }
    } else {
        QueueError::Backend {
            message: "the store failed".into(),
            source: Some(Box::new(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(owner: Option<&str>, expires: Option<i64>, deliveries: Option<i64>) -> QueuedAgenda {
        let mut entry = QueuedAgenda {
            lease_owner: owner.map(String::from),
            lease_expires: expires,
            deliveries,
            ..Default::default()
        };
        entry.envelope.id = Some("q1".into());
        entry
    }

    #[test]
    fn claimable_means_never_leased_or_expired() {
        let doc = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert!(claimable(100).admits(KIND, &doc(json!({"id": "a"}))));
        assert!(claimable(100).admits(KIND, &doc(json!({"id": "a", "leaseExpires": null}))));
        assert!(claimable(100).admits(KIND, &doc(json!({"id": "a", "leaseExpires": 100}))));
        assert!(!claimable(100).admits(KIND, &doc(json!({"id": "a", "leaseExpires": 101}))));
    }

    #[test]
    fn the_guard_pins_every_lease_field_as_read() {
        let never = as_read(&entry(None, None, None));
        let fields: Vec<_> = never.fields().iter().map(|(f, v)| (f.as_str(), v.clone())).collect();
        assert_eq!(
            fields,
            [
                ("leaseOwner", Value::Null),
                ("leaseExpires", Value::Null),
                ("deliveries", Value::Null)
            ]
        );
        let leased = patch(json!({"leaseOwner": "p", "leaseExpires": 5, "deliveries": 2}));
        assert!(as_read(&entry(Some("p"), Some(5), Some(2))).held_by(&leased));
        assert!(!as_read(&entry(Some("p"), Some(5), Some(1))).held_by(&leased));
        assert!(!never.held_by(&leased));
    }

    #[test]
    fn only_the_same_delivery_is_the_holder() {
        let held = entry(Some("p"), Some(5), Some(2));
        assert!(
            same_delivery(&held, &entry(Some("p"), Some(9), Some(2))),
            "an extension is the same delivery"
        );
        assert!(!same_delivery(&held, &entry(Some("p"), Some(5), Some(3))));
        assert!(!same_delivery(&held, &entry(Some("other"), Some(5), Some(2))));
        assert!(
            !same_delivery(&entry(None, None, None), &entry(None, None, None)),
            "nobody holds an unleased message"
        );
    }
}
