use pop_core::ObjectKind;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: ObjectKind, id: String },
    #[error("{kind} {id} does not exist")]
    NotFound { kind: ObjectKind, id: String },
    /// A guarded write found the row changed: it no longer holds the
    /// [`crate::Expect`]ed field values (someone else wrote it first).
    #[error("{kind} {id} does not hold the expected values")]
    ConditionFailed { kind: ObjectKind, id: String },
    /// The document is larger or deeper than the store keeps
    /// ([`crate::DocumentLimits`]).
    #[error("{kind} {id} would be {actual} {unit}; the store keeps documents of at most {limit} {unit}")]
    LimitExceeded {
        kind: ObjectKind,
        id: String,
        actual: usize,
        limit: usize,
        unit: &'static str,
    },
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    #[error("storage backend failed: {0}")]
    Backend(String),
}
