//! The `Queue` port: the insight queues, with SQS's semantics.
//!
//! A message is a [`QueuedAgenda`] (an agenda the scheduler released into
//! an insight's queue). A claim leases up to N messages to one owner for a
//! while (SQS: visibility timeout); the holder extends the lease
//! (`ChangeMessageVisibility`), acknowledges the message when the agenda is
//! done (`DeleteMessage`) or releases it early (visibility 0). A lease that
//! runs out makes the message claimable again, with its receive count one
//! higher (`ApproximateReceiveCount`): at-least-once delivery.
//!
//! The receive count is the delivery's fencing token: a holder identifies
//! its delivery by (message id, owner, receive count), and an older
//! delivery can neither extend nor acknowledge a newer one.
//!
//! A queue shares no transaction with the `Store`. What the application
//! needs from the pair (a release that is neither lost nor doubled, a
//! result recorded only by the current holder) it builds from idempotent
//! enqueues keyed by message id and conditional store writes; see
//! `ARCHITECTURE.md`, "Crash points".

#[cfg(feature = "conformance")]
pub mod conformance;
mod error;

use std::time::Duration;

use async_trait::async_trait;
pub use error::QueueError;
use pop_core::QueuedAgenda;

/// How many messages an insight's queue holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Claimable now: never leased, or the lease ran out.
    pub waiting: u64,
    /// Under a live lease.
    pub in_flight: u64,
}

/// The longest long-poll wait a caller may ask for (SQS: 20 s).
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// The insight queues. Every implementation must pass
/// [`conformance::run_all`].
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Add messages, each under its `id` (required) to the queue of its
    /// `insightId` (required); lease fields are ignored. Idempotent: a
    /// message whose id is already in a queue is left as it is, so a
    /// release that is re-driven after a crash never doubles an agenda.
    /// Wakes the claims waiting on those queues.
    async fn enqueue(&self, messages: Vec<QueuedAgenda>) -> Result<(), QueueError>;

    /// Lease up to `max` claimable messages of `insight_id` to `owner` for
    /// `lease`, oldest first, each with `deliveries` (the receive count)
    /// one higher. When none is claimable, waits up to `wait` (at most
    /// [`MAX_WAIT`]) and returns as soon as one is enqueued or released;
    /// an empty answer means none came.
    async fn claim(
        &self,
        insight_id: &str,
        max: usize,
        owner: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<QueuedAgenda>, QueueError>;

    /// Push the lease of the delivery `held` (as `claim` or a previous
    /// `extend` returned it) to now + `lease`; [`QueueError::LeaseLost`]
    /// when that delivery is no longer the current one.
    async fn extend(&self, held: &QueuedAgenda, lease: Duration) -> Result<QueuedAgenda, QueueError>;

    /// Remove the message of the delivery `held`. Idempotent: a message
    /// already gone is `Ok`; [`QueueError::LeaseLost`] when it was
    /// delivered again since (the newer holder owns it now).
    async fn acknowledge(&self, held: &QueuedAgenda) -> Result<(), QueueError>;

    /// Make the message of `held` claimable at once (the holder gives the
    /// work back). A message gone or delivered again since is `Ok`: either
    /// way it is no longer this holder's.
    async fn release(&self, held: &QueuedAgenda) -> Result<(), QueueError>;

    /// Make `message_id` claimable at once whoever holds it (a rerun takes
    /// the agenda back from a stale run). Absent is `Ok`.
    async fn release_any(&self, message_id: &str) -> Result<(), QueueError>;

    /// Release every lease `owner` holds: what a previous process of the
    /// same owner held is not running any more. Returns how many.
    async fn release_held_by(&self, owner: &str) -> Result<usize, QueueError>;

    /// Waiting and in-flight messages of `insight_id`.
    async fn depth(&self, insight_id: &str) -> Result<QueueDepth, QueueError>;

    /// The message `message_id`, with its lease as it stands.
    async fn get(&self, message_id: &str) -> Result<Option<QueuedAgenda>, QueueError>;

    /// Up to `limit` messages of `insight_id`, waiting or in flight, oldest
    /// first (the scheduler counts them per customer).
    async fn list(&self, insight_id: &str, limit: usize) -> Result<Vec<QueuedAgenda>, QueueError>;

    /// The messages of `agenda_id` (normally none or one).
    async fn of_agenda(&self, agenda_id: &str) -> Result<Vec<QueuedAgenda>, QueueError>;

    /// Remove `message_id` whoever holds it (an operator taking work out of
    /// a queue, or an agenda that no longer exists). Absent is `Ok`.
    async fn remove(&self, message_id: &str) -> Result<(), QueueError>;
}

/// The id of a message, which every message must carry.
pub fn message_id(message: &QueuedAgenda) -> &str {
    message.envelope.id.as_deref().unwrap_or_default()
}

/// Does the delivery `held` still name the current delivery of `current`?
/// (Same owner, same receive count.) Adapters use it to refuse stale
/// holders.
pub fn same_delivery(held: &QueuedAgenda, current: &QueuedAgenda) -> bool {
    held.lease_owner.is_some() && held.lease_owner == current.lease_owner && held.deliveries == current.deliveries
}
