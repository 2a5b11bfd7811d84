//! Handlers of the service endpoints and the health check.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use pop_core::ObjectKind;
use serde_json::{Map, Value, json};

use super::context::RequestContext;
use super::reply::{self, Reply, body_object};
use crate::error::WithCid as _;
use pop_app::AppError;
use pop_app::AppState;
use pop_app::services::service;

/// `GET /healthz`: 200 when the store answers (probing a kind that is never
/// cached, so the answer comes from the backend).
pub async fn healthz(State(app): State<AppState>) -> Response {
    match app.store.get(ObjectKind::AgendaProgress, "healthz-probe").await {
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
                .into_response()
        }
    }
}

pub async fn run(State(app): State<AppState>, ctx: RequestContext, body: Result<Bytes, BytesRejection>) -> Reply {
    let result = async {
        service::run(
            app.store.as_ref(),
            &app.plugins,
            &ctx.caller,
            body_object(body)?,
            &ctx.cid.0,
        )
        .await
    }
    .await;
    let agenda = result.map_err(|e| e.with_cid(&ctx.cid))?;
    app.backlog_grew.notify_one();
    Ok(reply::service(reply::agenda_fields(vec![agenda]), &ctx.cid))
}

pub async fn rerun(State(app): State<AppState>, ctx: RequestContext, body: Result<Bytes, BytesRejection>) -> Reply {
    let result = async {
        service::rerun(
            app.store.as_ref(),
            app.queue.as_ref(),
            &ctx.caller,
            body_object(body)?,
            app.now(),
        )
        .await
    }
    .await;
    let outcome = result.map_err(|e| e.with_cid(&ctx.cid))?;
    app.backlog_grew.notify_one();
    let mut fields = Map::new();
    fields.insert("resetOperations".into(), json!(outcome.reset));
    fields.insert("deletedOperations".into(), json!(outcome.deleted));
    fields.insert("requeued".into(), json!(outcome.requeued));
    Ok(reply::service(fields, &ctx.cid))
}

pub async fn progress_summary(
    State(app): State<AppState>,
    ctx: RequestContext,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let result = async { service::progress_summary(app.store.as_ref(), &ctx.caller, body_object(body)?).await }.await;
    let summary = result.map_err(|e| e.with_cid(&ctx.cid))?;
    match serde_json::to_value(&summary) {
        Ok(Value::Object(fields)) => Ok(reply::service(fields, &ctx.cid)),
        _ => Err(AppError::Internal("summary did not serialize".into()).with_cid(&ctx.cid)),
    }
}
