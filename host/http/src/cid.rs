//! Correlation ids: `X-pop-cid` in, or a fresh UUID; echoed as `cid`.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

pub const CID_HEADER: &str = "x-pop-cid";

/// The correlation id of the current request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cid(pub String);

impl Cid {
    pub fn generate() -> Self {
        Cid(uuid::Uuid::new_v4().to_string())
    }
}

/// Middleware: put the request's [`Cid`] into its extensions and echo it in
/// the response header.
pub async fn assign_cid(mut request: Request, next: Next) -> Response {
    let cid = request
        .headers()
        .get(CID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(|v| Cid(v.to_string()))
        .unwrap_or_else(Cid::generate);
    request.extensions_mut().insert(cid.clone());
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&cid.0) {
        response.headers_mut().insert(CID_HEADER, value);
    }
    response
}
