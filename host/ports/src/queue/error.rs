use crate::BoxError;

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The delivery named is no longer the current one: its lease ran out
    /// and the message was delivered again, or it was released or taken
    /// back meanwhile.
    #[error("the lease on queue message {message_id} is no longer held: {reason}")]
    LeaseLost { message_id: String, reason: String },
    /// The message cannot be queued as it is (no id, no insight).
    #[error("invalid queue message: {0}")]
    InvalidMessage(String),
    /// Transient: retrying later may succeed.
    #[error("queue unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Permanent.
    #[error("queue failed: {message}")]
    Backend {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl QueueError {
    pub fn lease_lost(message_id: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::LeaseLost {
            message_id: message_id.into(),
            reason: reason.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}
