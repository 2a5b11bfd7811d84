//! The application's error: what went wrong in terms of the request, not of
//! HTTP. The HTTP layer maps each variant to a status and POP's
//! `errorResponse`; a Lambda or a CLI maps it its own way. Failures of the
//! engines below keep their source and their transient/permanent class, so a
//! caller can retry exactly the transient ones.

use pop_ports::{BlobError, QueueError, StoreError};

/// A request the application could not carry out, and why.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input could not be parsed at all.
    #[error("{0}")]
    BadRequest(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Absent, or not visible to the caller (never confirmed to exist).
    #[error("{0}")]
    NotFound(String),
    /// A create collided with an existing object, or a guarded change lost a
    /// race.
    #[error("{0}")]
    Conflict(String),
    /// The input is larger than what may be accepted.
    #[error("{0}")]
    TooLarge(String),
    /// Well-formed input that breaks a rule.
    #[error("{0}")]
    Validation(String),
    /// A fault of ours; details go to the log.
    #[error("{0}")]
    Internal(String),
    /// Something the request depends on is busy for now; the same request
    /// may succeed later.
    #[error("{0}")]
    Unavailable(String),
    /// The store failed (busy or broken); nothing of the request was applied.
    #[error("store: {0}")]
    Store(#[source] StoreError),
    /// The queue failed (busy or broken).
    #[error("queue: {0}")]
    Queue(#[source] QueueError),
    /// The blob store failed (busy or broken).
    #[error("blob store: {0}")]
    Blob(#[source] BlobError),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn forbidden_customer(customer_id: &str) -> Self {
        AppError::Forbidden(format!(
            "You do not have permission to perform this action for customerId {customer_id}"
        ))
    }

    /// POP's `errorResponse.title` for this failure: the Java exception's
    /// simple name (also named in the refusals of `createAgenda`).
    pub fn title(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "BadRequestException",
            AppError::Forbidden(_) => "UnauthorizedException",
            AppError::NotFound(_) => "ObjectNotFoundException",
            AppError::Conflict(_) => "ConflictException",
            AppError::TooLarge(_) => "PayloadTooLargeException",
            AppError::Validation(_) => "ValidationException",
            error if error.is_transient() => "ServiceUnavailableException",
            _ => "RuntimeException",
        }
    }

    /// Whether the same request may succeed when tried again unchanged.
    pub fn is_transient(&self) -> bool {
        match self {
            AppError::Unavailable(_) => true,
            AppError::Store(e) => e.is_transient(),
            AppError::Queue(e) => e.is_transient(),
            AppError::Blob(e) => matches!(e, BlobError::Unavailable { .. }),
            _ => false,
        }
    }
}

/// Failures that say something about the request become request errors with
/// POP's messages; failures of the engine itself are kept whole.
impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists { kind, id } => AppError::Conflict(format!("{kind} with id {id} already exists")),
            StoreError::NotFound { kind, id } => {
                AppError::NotFound(format!("Could not update object. No {kind} with id {id} exists."))
            }
            StoreError::ConditionFailed { kind, id } => AppError::Conflict(format!(
                "{kind} {id} was changed concurrently; the request was not applied."
            )),
            StoreError::InvalidDocument(msg) => AppError::Validation(msg),
            limit @ StoreError::LimitExceeded { .. } => AppError::Validation(limit.to_string()),
            // The application splits its writes to the store's limit, so an
            // oversized batch is our defect, not the request's.
            engine @ (StoreError::Unavailable { .. }
            | StoreError::Backend { .. }
            | StoreError::TooManyWrites { .. }) => AppError::Store(engine),
        }
    }
}

impl From<QueueError> for AppError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::LeaseLost { .. } => AppError::Conflict(e.to_string()),
            QueueError::InvalidMessage(_) => AppError::Validation(e.to_string()),
            engine @ (QueueError::Unavailable { .. } | QueueError::Backend { .. }) => AppError::Queue(engine),
        }
    }
}

impl From<BlobError> for AppError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::InvalidAddress(_) => AppError::Validation(e.to_string()),
            engine @ (BlobError::Unavailable { .. } | BlobError::Backend { .. }) => AppError::Blob(engine),
        }
    }
}
