//! Leases on the insight queues as the ResourcePool API exposes them
//! (spec §9 item 2): at-least-once delivery through the [`Queue`] port.
//!
//! POP deleted an SQS message as soon as a puller received it, so an agenda
//! whose puller died before its executor reported stayed WAITING forever.
//! Here a claim only *leases* a queued agenda to one puller; the holder
//! extends the lease (heartbeat) and acknowledges the entry once the agenda
//! is done. A lease that runs out makes the entry claimable again, with its
//! delivery count one higher: the count names the delivery, so a holder
//! whose lease was re-claimed cannot extend or acknowledge the newer one.

use std::time::Duration;

use pop_core::QueuedAgenda;
use pop_ports::{Queue, QueueError};

use crate::error::{AppError, AppResult};

/// Lease length when the puller names none.
pub const DEFAULT_LEASE_MS: i64 = 60_000;
/// Longest lease: a day. A lost holder blocks its entry at most this long.
pub const MAX_LEASE_MS: i64 = 24 * 60 * 60 * 1000;

/// A lease length in milliseconds as a duration (negative reads as zero).
pub fn lease_duration(lease_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(lease_ms).unwrap_or(0))
}

/// Does `puller` hold `entry`'s lease (the delivery `deliveries`, when
/// given)? A lease that ran out still counts until someone re-claims it:
/// the work was not handed to anyone else. Returns the delivery to act on.
fn as_held(entry: &QueuedAgenda, puller: &str, deliveries: Option<i64>) -> AppResult<QueuedAgenda> {
    let id = entry.envelope.id.as_deref().unwrap_or_default();
    if entry.lease_owner.as_deref() != Some(puller) {
        return Err(AppError::Conflict(format!(
            "The lease on queue entry {id} is not held by puller {puller}."
        )));
    }
    if deliveries.is_some_and(|d| entry.deliveries != Some(d)) {
        return Err(AppError::Conflict(format!(
            "Queue entry {id} was delivered again since delivery {}; that lease is gone.",
            deliveries.unwrap_or_default()
        )));
    }
    Ok(entry.clone())
}

/// A lease lost between reading the entry and acting on it is a conflict.
fn lost_race(error: QueueError) -> AppError {
    match error {
        QueueError::LeaseLost { message_id, .. } => AppError::Conflict(format!(
            "The lease on queue entry {message_id} changed meanwhile; it is no longer held."
        )),
        other => other.into(),
    }
}

/// Heartbeat: the holder pushes its lease to now + `lease_ms`.
pub async fn extend(
    queue: &dyn Queue,
    entry: &QueuedAgenda,
    puller: &str,
    deliveries: Option<i64>,
    lease_ms: i64,
) -> AppResult<QueuedAgenda> {
    let held = as_held(entry, puller, deliveries)?;
    queue.extend(&held, lease_duration(lease_ms)).await.map_err(lost_race)
}

/// The holder is done with the agenda (succeeded, or failed for good): the
/// entry leaves the queue.
pub async fn acknowledge(
    queue: &dyn Queue,
    entry: &QueuedAgenda,
    puller: &str,
    deliveries: Option<i64>,
) -> AppResult<()> {
    let held = as_held(entry, puller, deliveries)?;
    queue.acknowledge(&held).await.map_err(lost_race)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(owner: Option<&str>, deliveries: Option<i64>) -> QueuedAgenda {
        let mut entry = QueuedAgenda {
            lease_owner: owner.map(String::from),
            lease_expires: Some(5),
            deliveries,
            ..Default::default()
        };
        entry.envelope.id = Some("q1".into());
        entry
    }

    #[test]
    fn only_the_holder_of_that_delivery_may_extend_or_ack() {
        let held = entry(Some("p"), Some(2));
        assert!(as_held(&held, "p", None).is_ok());
        assert!(as_held(&held, "p", Some(2)).is_ok());
        assert!(matches!(as_held(&held, "p", Some(1)), Err(AppError::Conflict(_))));
        assert!(matches!(as_held(&held, "other", None), Err(AppError::Conflict(_))));
        assert!(matches!(
            as_held(&entry(None, None), "p", None),
            Err(AppError::Conflict(_))
        ));
    }

    #[test]
    fn a_lost_lease_is_a_conflict_and_an_outage_is_not() {
        assert!(matches!(
            lost_race(QueueError::lease_lost("q1", "gone")),
            AppError::Conflict(_)
        ));
        assert!(!matches!(
            lost_race(QueueError::Unavailable {
                message: "down".into(),
                source: None
            }),
            AppError::Conflict(_)
        ));
    }
}
