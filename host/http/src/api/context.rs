use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use pop_core::visibility::Caller;

use crate::cid::Cid;
use crate::error::{ApiError, ErrorWithCid};
use pop_app::AppState;

/// Who is calling (authenticated) and the request's correlation id.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub caller: Caller,
    pub cid: Cid,
}

impl FromRequestParts<AppState> for RequestContext {
    type Rejection = ErrorWithCid;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let cid = parts.extensions.get::<Cid>().cloned().unwrap_or_else(Cid::generate);
        let caller = state
            .auth
            .authenticate(parts)
            .await
            .map_err(|e| ApiError::from(e).with_cid(&cid))?;
        Ok(Self { caller, cid })
    }
}
