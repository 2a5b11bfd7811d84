//! What the router itself refuses, answered like every other error: with
//! POP's `errorResponse` body. axum's own rejections (a path that does not
//! decode, a body over the limit, an extractor that fails before a handler
//! runs) are plain text; a client must never have to tell them apart.

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Map;

use crate::cid::Cid;
use crate::error::{ApiError, error_response};

/// The most of a plain-text rejection kept as the error's description.
const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;

/// A path that does not percent-decode to UTF-8 names no object: 400 with
/// an `errorResponse`, before any route tries to extract an id from it.
pub async fn decodable_path(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if percent_encoding::percent_decode_str(path).decode_utf8().is_err() {
        let cid = request.extensions().get::<Cid>().cloned().unwrap_or_else(Cid::generate);
        return ApiError::BadRequest(format!(
            "The path {path} does not decode to UTF-8 text, so it names no resource."
        ))
        .with_cid(&cid)
        .into_response();
    }
    next.run(request).await
}

/// A body whose declared length is over the route's limit is refused from
/// the headers (413), before any of it is read: a client sending 50 MB
/// learns at once, and the server never buffers what it would refuse.
pub async fn declared_length(request: Request, next: Next) -> Response {
    let limit = if request.uri().path() == "/pop/plugin" {
        super::MAX_UPLOAD_BODY_BYTES
    } else {
        super::MAX_BODY_BYTES
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(declared) = declared
        && declared > limit as u64
    {
        let cid = request.extensions().get::<Cid>().cloned().unwrap_or_else(Cid::generate);
        return ApiError::PayloadTooLarge(format!(
            "The request body exceeds {limit} bytes (it declares {declared})."
        ))
        .with_cid(&cid)
        .into_response();
    }
    next.run(request).await
}

/// Any error response that is not JSON yet (one of axum's rejections)
/// becomes an `errorResponse` with the same status and its text.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let cid = request.extensions().get::<Cid>().cloned().unwrap_or_else(Cid::generate);
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match to_bytes(body, MAX_DESCRIPTION_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let description = if text.is_empty() {
        status.canonical_reason().unwrap_or("The request failed").to_string()
    } else {
        text
    };
    let mut rendered = error_response(status, title_of(status), &description, &cid.0, Map::new());
    // Keep what the rejection said beyond its body (e.g. `Allow`).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rendered
}

/// The `errorResponse.title` of a status, as [`ApiError::title`] names them.
fn title_of(status: StatusCode) -> &'static str {
    let as_error = match status {
        StatusCode::BAD_REQUEST => ApiError::BadRequest(String::new()),
        StatusCode::UNAUTHORIZED => ApiError::Unauthenticated(String::new()),
        StatusCode::FORBIDDEN => ApiError::Forbidden(String::new()),
        StatusCode::NOT_FOUND => ApiError::NotFound(String::new()),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(String::new()),
        StatusCode::CONFLICT => ApiError::Conflict(String::new()),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(String::new()),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Validation(String::new()),
        s if s.is_server_error() => ApiError::Internal(String::new()),
        _ => return "HttpException",
    };
    as_error.title()
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn call(app: Router, uri: &str) -> (StatusCode, serde_json::Value) {
        let response = app
            .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).expect("a JSON body"))
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/thing/{id}",
                get(|axum::extract::Path(id): axum::extract::Path<String>| async move { id }),
            )
            .route(
                "/teapot",
                get(|| async { (StatusCode::IM_A_TEAPOT, "short and stout") }),
            )
            .layer(axum::middleware::from_fn(decodable_path))
            .layer(axum::middleware::from_fn(json_errors))
    }

    #[tokio::test]
    async fn undecodable_paths_are_error_responses() {
        for uri in ["/thing/%FF%FE", "/thing/%C0%AF"] {
            let (status, body) = call(app(), uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(body["errorResponse"]["responseCode"], 400, "{uri}");
            assert_eq!(body["errorResponse"]["title"], "BadRequestException", "{uri}");
        }
    }

    #[tokio::test]
    async fn plain_rejections_become_error_responses() {
        let (status, body) = call(app(), "/teapot").await;
        assert_eq!(status, StatusCode::IM_A_TEAPOT);
        assert_eq!(body["errorResponse"]["description"], "short and stout");
        assert_eq!(body["errorResponse"]["title"], "HttpException");
        assert_eq!(body["error"], true);
    }
}
