use serde::{Deserialize, Serialize};

use super::{Envelope, EpochMillis, ObjectKind, data_object};

/// One backlog row per runnable agenda, waiting for its insight's scheduler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyAgenda {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insight_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agenda_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<EpochMillis>,
    /// The agenda's `params.priority`, copied for the schedulers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// When a scheduler released the row (its decision is saved, its queue
    /// message is being enqueued). A released row is no longer pending; it
    /// is deleted once the message is in the queue, and a row still here
    /// long after its release (the process died in between) is enqueued
    /// again by the next turn (the enqueue is idempotent by id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_at: Option<EpochMillis>,
    /// The scheduler version that released it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
}
data_object!(ReadyAgenda, ObjectKind::ReadyAgenda);

/// Per-insight scheduler state; `id = "<resourcePoolId>-<insightId>"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InsightScheduleInfo {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_executed: Option<EpochMillis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_customer_ids: Option<Vec<String>>,
    /// The scheduler plugin's opaque state (base64 is avoided: it is the
    /// UTF-8 text the built-ins write, or a JSON array of bytes otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler_state: Option<serde_json::Value>,
    /// Which scheduler (and version) made the last decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_scheduler: Option<String>,
}
data_object!(InsightScheduleInfo, ObjectKind::InsightScheduleInfo);

/// An agenda the scheduler released into its insight's queue, waiting for a
/// puller to claim it (`id` = the ReadyAgenda's id).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedAgenda {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insight_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agenda_id: Option<String>,
    /// When it entered the backlog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<EpochMillis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// When the scheduler released it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_time: Option<EpochMillis>,
    /// The scheduler version that released it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    /// The puller that holds the current (or last) lease; absent until the
    /// entry is first claimed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    /// Until when the lease holds; past it the entry can be claimed again
    /// (at-least-once delivery, where POP deleted on receive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_expires: Option<EpochMillis>,
    /// How many times the entry was claimed; also the lease's version, so a
    /// stale holder cannot touch a newer lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<i64>,
}
data_object!(QueuedAgenda, ObjectKind::QueuedAgenda);
