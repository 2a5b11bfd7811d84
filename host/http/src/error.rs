//! The one place where failures become HTTP responses: every error carries
//! POP's `errorResponse` body with a matching HTTP status (POP answered 200
//! for logical errors; we do not, see spec §3.2). The application's
//! [`AppError`] arrives here through `From`; HTTP-only failures
//! (authentication, methods) are [`ApiError`]'s own variants.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pop_app::AppError;
use pop_ports::{BlobError, IdentityError, QueueError, StoreError};
use serde_json::{Map, Value, json};

use crate::cid::Cid;

/// A request that could not be served, and why.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body or a parameter could not be parsed at all.
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or unknown credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Absent, or not visible to the caller (never confirmed to exist).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A create collided with an existing object.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Well-formed input that breaks a rule.
    #[error("{0}")]
    Validation(String),
    /// A fault of ours or of the storage below; details go to the log.
    #[error("{0}")]
    Internal(String),
    /// An engine below is busy or unreachable for now; the same request
    /// may succeed later.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// POP's `errorResponse.title`: the Java exception's simple name.
    pub fn title(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequestException",
            ApiError::Unauthenticated(_) => "UnauthenticatedException",
            ApiError::Forbidden(_) => "UnauthorizedException",
            ApiError::NotFound(_) => "ObjectNotFoundException",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowedException",
            ApiError::Conflict(_) => "ConflictException",
            ApiError::PayloadTooLarge(_) => "PayloadTooLargeException",
            ApiError::Validation(_) => "ValidationException",
            ApiError::Internal(_) => "RuntimeException",
            ApiError::Unavailable(_) => "ServiceUnavailableException",
        }
    }

    /// Attach the correlation id so the body can name it.
    pub fn with_cid(self, cid: &Cid) -> ErrorWithCid {
        ErrorWithCid {
            error: self,
            cid: cid.0.clone(),
            fields: Map::new(),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::BadRequest(m) => ApiError::BadRequest(m),
            AppError::Forbidden(m) => ApiError::Forbidden(m),
            AppError::NotFound(m) => ApiError::NotFound(m),
            AppError::Conflict(m) => ApiError::Conflict(m),
            AppError::TooLarge(m) => ApiError::PayloadTooLarge(m),
            AppError::Validation(m) => ApiError::Validation(m),
            AppError::Internal(m) => ApiError::Internal(m),
            AppError::Unavailable(m) => ApiError::Unavailable(m),
            // The engine's own words go to the log, the caller learns only
            // whether to retry.
            AppError::Store(e) if e.is_transient() => {
                tracing::warn!(error = %e, "storage unavailable");
                ApiError::Unavailable("The storage backend is busy; the request was not applied, retry it.".into())
            }
            AppError::Store(e) => {
                tracing::error!(error = ?e, "storage failure");
                ApiError::Internal("The storage backend failed; the request was not applied.".into())
            }
            AppError::Queue(e) if e.is_transient() => {
                tracing::warn!(error = %e, "queue unavailable");
                ApiError::Unavailable("The queue is busy; the request was not applied, retry it.".into())
            }
            AppError::Queue(e) => {
                tracing::error!(error = ?e, "queue failure");
                ApiError::Internal("The queue failed; the request was not applied.".into())
            }
            AppError::Blob(BlobError::Unavailable { .. }) => {
                ApiError::Unavailable("The blob store is busy; retry the request.".into())
            }
            AppError::Blob(e) => {
                tracing::error!(error = ?e, "blob store failure");
                ApiError::Internal("The blob store failed; the request was not applied.".into())
            }
        }
    }
}

/// Attaching the correlation id to an application error on its way out.
pub trait WithCid {
    fn with_cid(self, cid: &Cid) -> ErrorWithCid;
}

impl WithCid for AppError {
    fn with_cid(self, cid: &Cid) -> ErrorWithCid {
        ApiError::from(self).with_cid(cid)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        AppError::from(e).into()
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        AppError::from(e).into()
    }
}

impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Missing(message) | IdentityError::Rejected(message) => ApiError::Unauthenticated(message),
            unavailable @ IdentityError::Unavailable { .. } => {
                tracing::warn!(error = %unavailable, "authentication unavailable");
                ApiError::Unavailable("Authentication is unavailable right now; retry the request.".into())
            }
        }
    }
}

/// An [`ApiError`] with the request's correlation id, ready to render.
#[derive(Debug)]
pub struct ErrorWithCid {
    pub error: ApiError,
    pub cid: String,
    /// What the request achieved despite the error (`createAgenda` answers
    /// the agendas it did create beside the ones it could not).
    pub fields: Map<String, Value>,
}

impl ErrorWithCid {
    pub fn with_fields(mut self, fields: Map<String, Value>) -> Self {
        self.fields = fields;
        self
    }
}

impl IntoResponse for ErrorWithCid {
    fn into_response(self) -> Response {
        let status = self.error.status();
        if status.is_server_error() {
            tracing::error!(cid = %self.cid, error = %self.error, "request failed");
        } else {
            tracing::debug!(cid = %self.cid, status = status.as_u16(), error = %self.error, "request rejected");
        }
        error_response(
            status,
            self.error.title(),
            &self.error.to_string(),
            &self.cid,
            self.fields,
        )
    }
}

/// POP's error body: `fields` plus `cid`, `error: true` and the
/// `errorResponse` that names the problem.
pub fn error_response(
    status: StatusCode,
    title: &str,
    description: &str,
    cid: &str,
    mut fields: Map<String, Value>,
) -> Response {
    fields.insert("cid".into(), json!(cid));
    fields.insert("error".into(), json!(true));
    fields.insert(
        "errorResponse".into(),
        json!({
            "title": title,
            "description": description,
            "responseCode": status.as_u16(),
            "correlationId": cid,
        }),
    );
    (status, axum::Json(fields)).into_response()
}

pub type ApiResult<T> = Result<T, ApiError>;
