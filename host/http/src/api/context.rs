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
        if let Some(insights) = &caller.insights
            && !scoped_may_call(parts, insights)
        {
            let names: Vec<&str> = insights.iter().map(String::as_str).collect();
            let message = format!(
                "This token serves the insights [{}] only: it may call the ResourcePool service and read those insights, nothing else.",
                names.join(", ")
            );
            return Err(ApiError::Forbidden(message).with_cid(&cid));
        }
        Ok(Self { caller, cid })
    }
}

/// What a puller's or executor's token may call: the ResourcePool service
/// (whose operations check the insight themselves) and a GET of one of its
/// insights (a puller reads its `executionLimit`).
fn scoped_may_call(parts: &Parts, insights: &std::collections::BTreeSet<String>) -> bool {
    let path = parts.uri.path();
    if path.starts_with("/pop/resourcepool/service/") {
        return true;
    }
    parts.method == axum::http::Method::GET
        && path
            .strip_prefix("/pop/insight/")
            .is_some_and(|id| insights.contains(id))
}
