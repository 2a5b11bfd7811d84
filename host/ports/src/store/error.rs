use pop_core::ObjectKind;

/// The underlying failure of an engine, kept as the error's source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed.
///
/// The first five are answers about the data (the same request fails the
/// same way again); [`StoreError::Unavailable`] is the one transient class
/// (throttled, busy, unreachable: the same request may succeed later), and
/// [`StoreError::Backend`] is the engine failing for good.
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
    /// One atomic write held more writes than the store applies at once
    /// ([`crate::Store::max_writes`]); nothing was written.
    #[error("one atomic write of {writes} writes; the store applies at most {limit} at once")]
    TooManyWrites { writes: usize, limit: usize },
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    /// Transient: retrying the same request later may succeed.
    #[error("storage backend unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Permanent: the engine failed and retrying will not help.
    #[error("storage backend failed: {message}")]
    Backend {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    /// A permanent engine failure described by `message`.
    pub fn backend(message: impl Into<String>) -> Self {
        Self::Backend {
            message: message.into(),
            source: None,
        }
    }

    /// A permanent engine failure caused by `source`.
    pub fn backend_caused_by(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A transient engine failure caused by `source`.
    pub fn unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// May the same request succeed if sent again later?
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_is_transient_and_the_source_is_kept() {
        let io = std::io::Error::other("disk gone");
        let transient = StoreError::unavailable("busy", std::io::Error::other("locked"));
        assert!(transient.is_transient());
        let permanent = StoreError::backend_caused_by("write failed", io);
        assert!(!permanent.is_transient());
        let source = std::error::Error::source(&permanent).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("disk gone"));
        assert!(!StoreError::backend("x").is_transient());
        assert!(
            !StoreError::ConditionFailed {
                kind: ObjectKind::Agenda,
                id: "a".into()
            }
            .is_transient()
        );
    }
}
