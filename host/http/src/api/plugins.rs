//! Plugin endpoints: upload, list, get, delete, activate, roll back; and a
//! side-effect-free scheduling decision for an insight (`preview`).
//!
//! Plugin versions read back with their circuit breaker (`breaker`: state,
//! consecutive failures, when the next probe may run), which lives in
//! memory, not in the stored record.

use axum::extract::{Path, Request, State};
use axum::handler::Handler;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use pop_core::visibility::Caller;
use pop_core::{Insight, ObjectKind};
use serde_json::{Map, Value, json};

use super::context::RequestContext;
use super::reply::{self, Reply, body_object};
use super::upload::read_upload;
use crate::error::WithCid as _;
use pop_app::AppState;
use pop_app::domain::body::{from_document, typed};
use pop_app::domain::scheduling;
use pop_app::{AppError, AppResult};

/// `/pop/plugin`: POST uploads; GET lists (see [`super::objects`]).
pub fn collection() -> MethodRouter<AppState> {
    get(read_with_breakers).post(upload)
}

/// `/pop/plugin/{id}`: GET one version, DELETE it.
pub fn member() -> MethodRouter<AppState> {
    get(read_with_breakers).delete(delete)
}

/// Largest listing body the breaker overlay reads back (a listing holds at
/// most `MAX_LIMIT` plugin records of a few hundred bytes each).
const MAX_LISTING_BYTES: usize = 64 * 1024 * 1024;

/// A GET of plugin versions as every data-object GET answers it, each
/// version with its breaker for the caller's tenants added (unless the
/// caller asked for some fields or for a count only).
async fn read_with_breakers(State(app): State<AppState>, ctx: RequestContext, request: Request) -> Response {
    let query = request.uri().query().unwrap_or_default().to_ascii_lowercase();
    let projected = query.contains("byfields") || query.contains("bycount");
    let response = super::objects::read_routes(ObjectKind::Plugin)
        .call(request, app.clone())
        .await;
    if projected || response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_LISTING_BYTES).await else {
        return AppError::Internal("a plugin listing could not be read back".into())
            .with_cid(&ctx.cid)
            .into_response();
    };
    let Ok(mut listing) = serde_json::from_slice::<Value>(&bytes) else {
        return (parts, bytes).into_response();
    };
    if let Some(all) = listing.get_mut("all").and_then(Value::as_array_mut) {
        for version in all.iter_mut().filter_map(Value::as_object_mut) {
            let Some(id) = version.get("id").and_then(Value::as_str) else {
                continue;
            };
            let breaker = app.plugins.breaker_view(&ctx.caller, id);
            version.insert("breaker".into(), json!(breaker));
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    (parts, axum::Json(listing)).into_response()
}

pub fn activate_route() -> MethodRouter<AppState> {
    post(activate)
}

pub fn rollback_route() -> MethodRouter<AppState> {
    post(rollback)
}

pub fn activations() -> MethodRouter<AppState> {
    super::objects::read_routes(ObjectKind::PluginActivation)
}

pub fn preview_route() -> MethodRouter<AppState> {
    post(preview)
}

/// `/pop/metrics`: plugin-call counters in Prometheus' text format, for
/// operators (super users): they add up every tenant's calls.
pub fn metrics_route() -> MethodRouter<AppState> {
    get(metrics)
}

async fn metrics(State(app): State<AppState>, ctx: RequestContext) -> Reply {
    if !ctx.caller.super_user {
        return Err(AppError::Forbidden("Only super users may read the metrics.".into()).with_cid(&ctx.cid));
    }
    let mut text = app.plugins.render_metrics();
    text.push_str(&app.jobs.metrics.render());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn upload(State(app): State<AppState>, ctx: RequestContext, request: Request) -> Reply {
    let result = async {
        let upload = read_upload(request, &app).await?.check()?;
        app.plugins.registry().upload(&ctx.caller, upload, &ctx.cid.0).await
    }
    .await;
    Ok(reply::objects(
        vec![result.map_err(|e| e.with_cid(&ctx.cid))?],
        &ctx.cid,
    ))
}

async fn delete(State(app): State<AppState>, ctx: RequestContext, Path(id): Path<String>) -> Reply {
    let result = app.plugins.registry().delete(&ctx.caller, &id).await;
    Ok(reply::objects(
        vec![result.map_err(|e| e.with_cid(&ctx.cid))?],
        &ctx.cid,
    ))
}

async fn activate(State(app): State<AppState>, ctx: RequestContext, Path(id): Path<String>) -> Reply {
    let result = app.plugins.registry().activate(&ctx.caller, &id).await;
    Ok(reply::objects(
        vec![result.map_err(|e| e.with_cid(&ctx.cid))?],
        &ctx.cid,
    ))
}

async fn rollback(State(app): State<AppState>, ctx: RequestContext, Path(id): Path<String>) -> Reply {
    let result = app.plugins.registry().rollback(&ctx.caller, &id).await;
    Ok(reply::objects(
        vec![result.map_err(|e| e.with_cid(&ctx.cid))?],
        &ctx.cid,
    ))
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreviewRequest {
    insight_id: Option<String>,
    #[serde(default = "one")]
    slots: u32,
}

fn one() -> u32 {
    1
}

/// POST `/pop/insight/service/preview` `{insightId, slots}`: what the
/// insight's scheduler would release now, and which version decided. Only
/// the insight's owner may ask (the backlog may hold other customers' work).
async fn preview(
    State(app): State<AppState>,
    ctx: RequestContext,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Reply {
    let result = async {
        let request: PreviewRequest = typed(body_object(body)?)?;
        let insight_id = request
            .insight_id
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| AppError::Validation("insightId must be specified".into()))?;
        if request.slots > 10_000 {
            return Err(AppError::Validation("slots must be at most 10000".into()));
        }
        let insight = owned_insight(&app, &ctx.caller, &insight_id).await?;
        let now = app.clock.now_millis();
        let backlog = scheduling::gather(app.store.as_ref(), app.queue.as_ref(), &insight, now).await?;
        let decision = app.plugins.decide(&insight, backlog, request.slots).await?;
        let released: Vec<Value> = decision.released.iter().map(|r| json!(r.agenda_id)).collect();
        let mut fields = Map::new();
        fields.insert("insightId".into(), json!(insight_id));
        fields.insert("released".into(), Value::Array(released));
        fields.insert("decidedBy".into(), json!(decision.decided_by));
        fields.insert("fallback".into(), json!(decision.fallback));
        fields.insert("pending".into(), json!(decision.pending));
        Ok(fields)
    }
    .await;
    Ok(reply::service(result.map_err(|e| e.with_cid(&ctx.cid))?, &ctx.cid))
}

/// The insight, if the caller owns it (strict, like POP's getAgenda).
async fn owned_insight(app: &AppState, caller: &Caller, id: &str) -> AppResult<Insight> {
    let not_found = || AppError::NotFound(format!("Insight {id} not found"));
    let doc = app.store.get(ObjectKind::Insight, id).await?.ok_or_else(not_found)?;
    let insight: Insight = from_document(doc)?;
    if !caller.owns(insight.envelope.customer_id.as_deref()) {
        return Err(not_found());
    }
    Ok(insight)
}
