//! The data-object store port: JSON documents in one table per
//! [`ObjectKind`], with equality queries (`by<field>`), counts, sparse
//! updates and atomic, conditional multi-object writes (existence
//! conditions, and [`Expect`]ed field values for compare-and-set).

#[cfg(feature = "conformance")]
pub mod conformance;
mod document;
mod error;
mod expect;
mod filter;
mod limits;
pub mod rules;

use async_trait::async_trait;
pub use document::{Document, field_text};
pub use error::{BoxError, StoreError};
pub use expect::Expect;
pub use filter::Filter;
pub use limits::{DocumentLimits, document_depth};
use pop_core::ObjectKind;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An equality query over top-level fields, compared as text (spec §3.3).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// `(field, value)` pairs; all must match.
    pub filters: Vec<(String, String)>,
    /// Maximum number of documents returned. `None` means no limit.
    pub limit: Option<usize>,
}

impl Query {
    pub fn all() -> Self {
        Self::default()
    }

    pub fn by(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            filters: vec![(field.into(), value.into())],
            limit: None,
        }
    }

    pub fn and(mut self, field: impl Into<String>, value: impl Into<String>) -> Self {
        self.filters.push((field.into(), value.into()));
        self
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// Where a [`Store::scan`] goes on: an opaque position in a kind's
/// insertion order, only meaningful to the store that handed it out. It
/// stays valid when the rows around it are deleted (a job that deletes what
/// it scans keeps its place).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScanCursor(pub String);

/// One page of a [`Store::scan`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanPage {
    /// The documents of the page that pass every filter, in insertion order.
    pub docs: Vec<Document>,
    /// Where the next page starts; `None` when the scan reached the end.
    pub next: Option<ScanCursor>,
}

/// What must hold about the existing row for a [`Write::Put`] to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Create or replace.
    None,
    /// Fail with [`StoreError::AlreadyExists`] if the id is taken.
    MustNotExist,
    /// Fail with [`StoreError::NotFound`] if the id is absent.
    MustExist,
}

/// One change inside an atomic [`Store::write`].
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Store `doc` (which must carry a string `id`) under `condition`.
    Put {
        kind: ObjectKind,
        doc: Document,
        condition: Condition,
    },
    /// Sparse update: each non-null field of `patch` replaces the stored one
    /// (a nested object is replaced whole, an existing field keeps its
    /// place); null fields are ignored. Fails with `NotFound` if the id is
    /// absent, with `ConditionFailed` if the stored row does not hold
    /// `expect`, and with `InvalidDocument` if `patch` has a non-null `id`
    /// other than `id`.
    Merge {
        kind: ObjectKind,
        id: String,
        patch: Document,
        expect: Expect,
    },
    /// Remove the row. Unguarded (empty `expect`), an absent row is not an
    /// error; guarded, it fails with `NotFound`, and a row that does not
    /// hold `expect` with `ConditionFailed`.
    Delete {
        kind: ObjectKind,
        id: String,
        expect: Expect,
    },
}

impl Write {
    pub fn create(kind: ObjectKind, doc: Document) -> Self {
        Write::Put {
            kind,
            doc,
            condition: Condition::MustNotExist,
        }
    }

    pub fn put(kind: ObjectKind, doc: Document) -> Self {
        Write::Put {
            kind,
            doc,
            condition: Condition::None,
        }
    }

    pub fn merge(kind: ObjectKind, id: impl Into<String>, patch: Document) -> Self {
        Self::merge_if(kind, id, Expect::nothing(), patch)
    }

    /// A [`Write::Merge`] that applies only while the stored row holds
    /// `expect` (compare-and-set).
    pub fn merge_if(kind: ObjectKind, id: impl Into<String>, expect: Expect, patch: Document) -> Self {
        Write::Merge {
            kind,
            id: id.into(),
            patch,
            expect,
        }
    }

    pub fn delete(kind: ObjectKind, id: impl Into<String>) -> Self {
        Self::delete_if(kind, id, Expect::nothing())
    }

    /// A [`Write::Delete`] that applies only while the stored row holds
    /// `expect`.
    pub fn delete_if(kind: ObjectKind, id: impl Into<String>, expect: Expect) -> Self {
        Write::Delete {
            kind,
            id: id.into(),
            expect,
        }
    }
}

/// The data-object store port. Every implementation must pass
/// [`conformance::run_all`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The document with this id, if any.
    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Option<Document>>;

    /// Up to `query.limit` documents matching every filter and `visible`, in
    /// insertion order (a replaced or merged row keeps its place).
    async fn query(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> Result<Vec<Document>>;

    /// How many documents match every filter and `visible` (`limit` ignored).
    async fn count(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> Result<u64>;

    /// A bounded step through the documents matching `query`'s equality
    /// filters (its `limit` is ignored), in insertion order, starting after
    /// `from` (the start when `None`): at most `examine` documents are
    /// looked at, and those that also pass `filter` are returned. Background
    /// jobs walk a whole kind this way in pages of bounded work (DynamoDB: a
    /// `Query`/`Scan` page with `Limit` and `ExclusiveStartKey`), keeping
    /// their place across pages whatever is written or deleted meanwhile:
    /// every document present for the whole walk is seen exactly once.
    async fn scan(
        &self,
        kind: ObjectKind,
        query: &Query,
        filter: Option<Filter>,
        from: Option<&ScanCursor>,
        examine: usize,
    ) -> Result<ScanPage>;

    /// Apply all writes atomically and durably: either every write applies
    /// and is on disk when this returns `Ok`, or none does. At most
    /// [`Store::max_writes`] writes: a longer list fails with
    /// [`StoreError::TooManyWrites`] and writes nothing. Returns, per
    /// write, the stored document after a Put/Merge and the removed one after
    /// a Delete (`None` when there was nothing to delete).
    async fn write(&self, writes: Vec<Write>) -> Result<Vec<Option<Document>>>;

    /// The largest and deepest document of `kind` this store keeps. A write
    /// of a document beyond them fails with [`StoreError::LimitExceeded`] and
    /// changes nothing; documents stored before a limit was lowered stay
    /// readable and deletable. Adapters keep [`DocumentLimits::ITEM`] for
    /// every kind; a decorator may keep more of some kinds.
    fn document_limits(&self, _kind: ObjectKind) -> DocumentLimits {
        DocumentLimits::ITEM
    }

    /// The most writes one atomic [`Store::write`] applies. Every store
    /// declares DynamoDB's `TransactWriteItems` limit, so the application
    /// splits its large writes the same way on every backend.
    fn max_writes(&self) -> usize {
        MAX_WRITES_PER_BATCH
    }
}

/// DynamoDB's limit on the items of one transaction: the most writes one
/// atomic store write holds, on every backend.
pub const MAX_WRITES_PER_BATCH: usize = 100;

/// `Err(TooManyWrites)` when `writes` is longer than `limit`: the check
/// every adapter makes before it writes anything.
pub fn check_write_count(writes: usize, limit: usize) -> Result<()> {
    if writes > limit {
        return Err(StoreError::TooManyWrites { writes, limit });
    }
    Ok(())
}
