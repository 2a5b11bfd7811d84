//! `Status` bodies: what the API server answers instead of an object when
//! something is wrong, with the HTTP status, reason and causes a client
//! (kube-rs: `kube::Error::Api`) reads.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::validation::Cause;

/// A failure answer.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

impl Failure {
    pub fn not_found(plural: &str, name: &str) -> Self {
        Self {
            code: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message: format!("{plural} \"{name}\" not found"),
            details: json!({"name": name, "kind": plural}),
        }
    }

    pub fn already_exists(plural: &str, name: &str) -> Self {
        Self {
            code: StatusCode::CONFLICT,
            reason: "AlreadyExists",
            message: format!("{plural} \"{name}\" already exists"),
            details: json!({"name": name, "kind": plural}),
        }
    }

    pub fn conflict(message: String) -> Self {
        Self {
            code: StatusCode::CONFLICT,
            reason: "Conflict",
            message,
            details: json!({}),
        }
    }

    pub fn invalid(kind: &str, name: &str, causes: &[Cause]) -> Self {
        let list: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        Self {
            code: StatusCode::UNPROCESSABLE_ENTITY,
            reason: "Invalid",
            message: format!("{kind} \"{name}\" is invalid: {}", list.join(", ")),
            details: json!({"name": name, "kind": kind, "causes": causes.iter().map(|c| json!({
                "reason": "FieldValueInvalid", "message": c.message, "field": c.field})).collect::<Vec<_>>()}),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            message: message.into(),
            details: json!({}),
        }
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self {
            code: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"
            ),
            details: json!({}),
        }
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::GONE,
            reason: "Expired",
            message: message.into(),
            details: json!({}),
        }
    }

    /// The `Status` object.
    pub fn body(&self) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "details": self.details,
            "code": self.code.as_u16()})
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.code, Json(self.body())).into_response()
    }
}
