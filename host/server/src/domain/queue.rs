//! Leases on the insight queues: at-least-once delivery (spec §9 item 2).
//!
//! POP deleted an SQS message as soon as a puller received it, so an agenda
//! whose puller died before its executor reported stayed WAITING forever.
//! Here a claim only *leases* a queued agenda to one puller until
//! `leaseExpires`; the holder extends the lease (heartbeat) and acknowledges
//! the entry once the agenda is done. A lease that runs out simply makes the
//! entry claimable again, so dequeued-but-never-started work is delivered
//! again without any background job.
//!
//! Every transition is a compare-and-set on the lease fields as they were
//! read (`leaseOwner`, `leaseExpires`, `deliveries`): two pullers never hold
//! the same entry at once, and a holder whose lease was re-claimed cannot
//! extend or acknowledge the newer one.

use std::sync::Arc;

use futures_util::future::join_all;
use pop_core::{EpochMillis, ObjectKind, QueuedAgenda};
use pop_store::{DocFilter, Document, Expect, Query, Store, StoreError, Write};
use serde_json::{Value, json};

use super::body::from_document;
use super::now_millis;
use crate::error::{ApiError, ApiResult};

const KIND: ObjectKind = ObjectKind::QueuedAgenda;

/// Lease length when the puller names none.
pub const DEFAULT_LEASE_MS: i64 = 60_000;
/// Longest lease: a day. A lost holder blocks its entry at most this long.
pub const MAX_LEASE_MS: i64 = 24 * 60 * 60 * 1000;
/// Read-and-claim rounds per request. Each round claims every entry it read
/// unless another puller got there first; the rest are read afresh.
const MAX_CLAIM_ROUNDS: usize = 8;

/// Keeps the entries that are free to claim at `now` (never leased, or the
/// lease has run out): the queue as the scheduler and the pullers see it.
pub fn claimable(now: EpochMillis) -> DocFilter {
    Arc::new(move |doc: &Document| doc_is_claimable(doc, now))
}

/// Never leased, or the lease ran out at or before `now`.
fn doc_is_claimable(doc: &Document, now: EpochMillis) -> bool {
    doc.get("leaseExpires")
        .and_then(Value::as_i64)
        .is_none_or(|expires| expires <= now)
}

/// The lease fields as read: a write guarded by them applies only if no
/// claim, extension or acknowledgement happened since. `deliveries` only
/// grows, so a lease that expired and was re-claimed never matches again.
fn as_read(entry: &QueuedAgenda) -> Expect {
    Expect::field("leaseOwner", entry.lease_owner.clone())
        .and("leaseExpires", entry.lease_expires)
        .and("deliveries", entry.deliveries)
}

fn patch(fields: Value) -> Document {
    fields.as_object().cloned().unwrap_or_default()
}

/// Claim up to `count` free entries of `insight_id` for `puller`, oldest
/// queued first, each leased until now + `lease_ms` with `deliveries`
/// incremented. Fewer (or none) when the queue holds fewer free entries.
pub async fn claim(
    store: &dyn Store,
    insight_id: &str,
    count: usize,
    puller: &str,
    lease_ms: i64,
) -> ApiResult<Vec<QueuedAgenda>> {
    let mut claimed = Vec::new();
    for _ in 0..MAX_CLAIM_ROUNDS {
        let wanted = count.saturating_sub(claimed.len());
        if wanted == 0 {
            break;
        }
        let now = now_millis();
        let query = Query::by("insightId", insight_id).limit(wanted);
        let free = store.query(KIND, &query, Some(claimable(now))).await?;
        if free.is_empty() {
            break;
        }
        // One write per entry, sent together: the store commits them in one
        // group, and an entry another puller took fails alone.
        let attempts = free.into_iter().map(|doc| claim_one(store, doc, puller, now, lease_ms));
        let mut lost = false;
        // On a store failure, entries claimed beside it stay leased but are
        // not handed out: they come back when their lease runs out.
        for outcome in join_all(attempts).await {
            match outcome? {
                Some(entry) => claimed.push(entry),
                None => lost = true,
            }
        }
        if !lost {
            // Every entry read was claimed: a short read means the queue is
            // drained, a full one that `count` is reached.
            break;
        }
    }
    Ok(claimed)
}

/// `None` when another puller claimed (or someone removed) the entry since
/// it was read.
async fn claim_one(
    store: &dyn Store,
    doc: Document,
    puller: &str,
    now: EpochMillis,
    lease_ms: i64,
) -> ApiResult<Option<QueuedAgenda>> {
    let entry: QueuedAgenda = from_document(doc)?;
    let id = entry.envelope.id.clone().unwrap_or_default();
    let lease = patch(json!({
        "leaseOwner": puller,
        "leaseExpires": now.saturating_add(lease_ms),
        "deliveries": entry.deliveries.unwrap_or(0) + 1,
        "updatedTime": now,
    }));
    match store
        .write(vec![Write::merge_if(KIND, id, as_read(&entry), lease)])
        .await
    {
        Ok(mut stored) => stored.pop().flatten().map(from_document).transpose(),
        Err(StoreError::ConditionFailed { .. } | StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Does `puller` hold `entry`'s lease (the delivery `deliveries`, when
/// given)? A lease that ran out still counts until someone re-claims it:
/// the work was not handed to anyone else.
fn check_holder(entry: &QueuedAgenda, puller: &str, deliveries: Option<i64>) -> ApiResult<()> {
    let id = entry.envelope.id.as_deref().unwrap_or_default();
    if entry.lease_owner.as_deref() != Some(puller) {
        return Err(ApiError::Conflict(format!(
            "The lease on queue entry {id} is not held by puller {puller}."
        )));
    }
    if deliveries.is_some_and(|d| entry.deliveries != Some(d)) {
        return Err(ApiError::Conflict(format!(
            "Queue entry {id} was delivered again since delivery {}; that lease is gone.",
            deliveries.unwrap_or_default()
        )));
    }
    Ok(())
}

/// A guarded write lost its race: the lease changed hands meanwhile.
fn lost_race(entry: &QueuedAgenda, error: StoreError) -> ApiError {
    match error {
        StoreError::ConditionFailed { .. } => ApiError::Conflict(format!(
            "The lease on queue entry {} changed meanwhile; it is no longer held.",
            entry.envelope.id.as_deref().unwrap_or_default()
        )),
        other => other.into(),
    }
}

/// Heartbeat: the holder pushes its lease to now + `lease_ms`.
pub async fn extend(
    store: &dyn Store,
    entry: &QueuedAgenda,
    puller: &str,
    deliveries: Option<i64>,
    lease_ms: i64,
) -> ApiResult<QueuedAgenda> {
    check_holder(entry, puller, deliveries)?;
    let now = now_millis();
    let id = entry.envelope.id.clone().unwrap_or_default();
    let lease = patch(json!({"leaseExpires": now.saturating_add(lease_ms), "updatedTime": now}));
    let mut stored = store
        .write(vec![Write::merge_if(KIND, id, as_read(entry), lease)])
        .await
        .map_err(|e| lost_race(entry, e))?;
    stored
        .pop()
        .flatten()
        .map(from_document)
        .transpose()?
        .ok_or_else(|| ApiError::Internal("extending a lease returned nothing".into()))
}

/// The holder is done with the agenda (succeeded, or failed for good): the
/// entry leaves the queue.
pub async fn acknowledge(
    store: &dyn Store,
    entry: &QueuedAgenda,
    puller: &str,
    deliveries: Option<i64>,
) -> ApiResult<()> {
    check_holder(entry, puller, deliveries)?;
    let id = entry.envelope.id.clone().unwrap_or_default();
    store
        .write(vec![Write::delete_if(KIND, id, as_read(entry))])
        .await
        .map_err(|e| lost_race(entry, e))?;
    Ok(())
}

/// Remove an entry just claimed whose agenda no longer exists (POP skipped
/// such messages). Losing the race to someone else's write is fine: they
/// will find the agenda gone as well.
pub async fn drop_orphan(store: &dyn Store, entry: &QueuedAgenda) -> ApiResult<()> {
    let id = entry.envelope.id.clone().unwrap_or_default();
    match store.write(vec![Write::delete_if(KIND, &id, as_read(entry))]).await {
        Ok(_) | Err(StoreError::ConditionFailed { .. } | StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A write renewing `entry`'s lease until now + `lease_ms`, applied only if
/// the lease is still as read. The embedded executor adds it to every batch
/// it writes, so a holder that lost its lease (expired and re-claimed, or
/// cleared by a rerun) cannot record anything more for the agenda.
pub fn renewal(entry: &QueuedAgenda, lease_ms: i64) -> Write {
    let now = now_millis();
    let id = entry.envelope.id.clone().unwrap_or_default();
    let lease = patch(json!({"leaseExpires": now.saturating_add(lease_ms), "updatedTime": now}));
    Write::merge_if(KIND, id, as_read(entry), lease)
}

/// A write removing `entry` if its lease is still as read: the holder's
/// acknowledgement, to batch with the agenda's final progress.
pub fn removal(entry: &QueuedAgenda) -> Write {
    Write::delete_if(KIND, entry.envelope.id.clone().unwrap_or_default(), as_read(entry))
}

/// Make `entry` claimable again at once: no holder (empty `leaseOwner`), a
/// lease that ran out long ago; the old holder's next guarded write fails. Used by rerun and by a puller taking
/// back what its previous incarnation held. `deliveries` is kept, so the
/// old holder's guard can never match again.
pub async fn unlease(store: &dyn Store, entry: &QueuedAgenda) -> ApiResult<()> {
    if entry.lease_owner.as_deref().unwrap_or_default().is_empty() {
        return Ok(());
    }
    let id = entry.envelope.id.clone().unwrap_or_default();
    // A merge ignores nulls, so "no holder" is written as an empty owner and
    // a lease that ran out at the epoch.
    let cleared = patch(json!({"leaseOwner": "", "leaseExpires": 0, "updatedTime": now_millis()}));
    match store
        .write(vec![Write::merge_if(KIND, id, as_read(entry), cleared)])
        .await
    {
        Ok(_) | Err(StoreError::ConditionFailed { .. } | StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The queue entries of one agenda (normally none or one).
pub async fn entries_of_agenda(store: &dyn Store, agenda_id: &str) -> ApiResult<Vec<QueuedAgenda>> {
    store
        .query(KIND, &Query::by("agendaId", agenda_id), None)
        .await?
        .into_iter()
        .map(from_document)
        .collect()
}

/// Clear every lease `puller` holds: at start-up, what the previous process
/// of the same puller held is not running any more. Returns how many.
pub async fn release_held_by(store: &dyn Store, puller: &str) -> ApiResult<usize> {
    let held = store.query(KIND, &Query::by("leaseOwner", puller), None).await?;
    let count = held.len();
    for doc in held {
        unlease(store, &from_document(doc)?).await?;
    }
    Ok(count)
}

/// The entry as stored, for [`extend`] and [`acknowledge`].
pub async fn load(store: &dyn Store, queue_id: &str) -> ApiResult<Option<QueuedAgenda>> {
    store.get(KIND, queue_id).await?.map(from_document).transpose()
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
        assert!(doc_is_claimable(&doc(json!({"id": "a"})), 100));
        assert!(doc_is_claimable(&doc(json!({"id": "a", "leaseExpires": null})), 100));
        assert!(doc_is_claimable(&doc(json!({"id": "a", "leaseExpires": 100})), 100));
        assert!(!doc_is_claimable(&doc(json!({"id": "a", "leaseExpires": 101})), 100));
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
    fn only_the_holder_of_that_delivery_may_extend_or_ack() {
        let held = entry(Some("p"), Some(5), Some(2));
        assert!(check_holder(&held, "p", None).is_ok());
        assert!(check_holder(&held, "p", Some(2)).is_ok());
        assert!(matches!(check_holder(&held, "p", Some(1)), Err(ApiError::Conflict(_))));
        assert!(matches!(check_holder(&held, "other", None), Err(ApiError::Conflict(_))));
        assert!(matches!(
            check_holder(&entry(None, None, None), "p", None),
            Err(ApiError::Conflict(_))
        ));
    }
}
