use pop_core::ObjectKind;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: ObjectKind, id: String },
    #[error("{kind} {id} does not exist")]
    NotFound { kind: ObjectKind, id: String },
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    #[error("storage backend failed: {0}")]
    Backend(String),
}
