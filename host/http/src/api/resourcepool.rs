//! Handlers of the ResourcePool service (`/pop/resourcepool/service/*`):
//! what pullers and executors call.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::routing::post;
use serde_json::{Map, Value, json};

use super::context::RequestContext;
use super::reply::{self, Reply, body_object};
use crate::error::WithCid as _;
use pop_app::AppError;
use pop_app::AppState;
use pop_app::services::resourcepool;

/// The service routes (all POST).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pop/resourcepool/service/getAgenda", post(get_agenda))
        .route("/pop/resourcepool/service/extendLease", post(extend_lease))
        .route("/pop/resourcepool/service/ackAgenda", post(ack_agenda))
        .route("/pop/resourcepool/service/createAgenda", post(create_agenda))
        .route(
            "/pop/resourcepool/service/updateAgendaProgress",
            post(update_agenda_progress),
        )
        .route("/pop/resourcepool/service/updateAgenda", post(update_agenda))
}

fn documents(docs: Vec<pop_ports::Document>) -> Value {
    Value::Array(docs.into_iter().map(Value::Object).collect())
}

async fn get_agenda(State(app): State<AppState>, ctx: RequestContext, body: Result<Bytes, BytesRejection>) -> Reply {
    let result = async {
        resourcepool::get_agenda(app.store.as_ref(), app.queue.as_ref(), &ctx.caller, body_object(body)?).await
    }
    .await;
    let delivery = result.map_err(|e| e.with_cid(&ctx.cid))?;
    let mut fields = reply::agenda_fields(delivery.agendas);
    fields.insert("agendaProgresses".into(), documents(delivery.agenda_progresses));
    fields.insert("leases".into(), json!(delivery.leases));
    Ok(reply::service(fields, &ctx.cid))
}

async fn extend_lease(State(app): State<AppState>, ctx: RequestContext, body: Result<Bytes, BytesRejection>) -> Reply {
    let result = async {
        resourcepool::extend_lease(app.store.as_ref(), app.queue.as_ref(), &ctx.caller, body_object(body)?).await
    }
    .await;
    let lease = result.map_err(|e| e.with_cid(&ctx.cid))?;
    match serde_json::to_value(&lease) {
        Ok(Value::Object(fields)) => Ok(reply::service(fields, &ctx.cid)),
        _ => Err(AppError::Internal("lease did not serialize".into()).with_cid(&ctx.cid)),
    }
}

async fn ack_agenda(State(app): State<AppState>, ctx: RequestContext, body: Result<Bytes, BytesRejection>) -> Reply {
    let result = async {
        resourcepool::ack_agenda(app.store.as_ref(), app.queue.as_ref(), &ctx.caller, body_object(body)?).await
    }
    .await;
    result.map_err(|e| e.with_cid(&ctx.cid))?;
    Ok(reply::service(Map::new(), &ctx.cid))
}

async fn create_agenda(State(app): State<AppState>, ctx: RequestContext, body: Result<Bytes, BytesRejection>) -> Reply {
    let result = async {
        resourcepool::create_agenda(
            app.store.as_ref(),
            &app.plugins,
            &ctx.caller,
            body_object(body)?,
            &ctx.cid.0,
        )
        .await
    }
    .await;
    let creation = result.map_err(|e| e.with_cid(&ctx.cid))?;
    app.backlog_grew.notify_one();
    let fields = reply::agenda_fields(creation.agendas);
    match creation.refused {
        // POP answers the created agendas beside the error of the others.
        Some(refused) => Err(refused.with_cid(&ctx.cid).with_fields(fields)),
        None => Ok(reply::service(fields, &ctx.cid)),
    }
}

async fn update_agenda_progress(
    State(app): State<AppState>,
    ctx: RequestContext,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let result = async {
        resourcepool::update_agenda_progress(
            app.store.as_ref(),
            &ctx.caller,
            body_object(body)?,
            &ctx.cid.0,
            app.now(),
        )
        .await
    }
    .await;
    result.map_err(|e| e.with_cid(&ctx.cid))?;
    Ok(reply::service(Map::new(), &ctx.cid))
}

async fn update_agenda(State(app): State<AppState>, ctx: RequestContext, body: Result<Bytes, BytesRejection>) -> Reply {
    let result =
        async { resourcepool::update_agenda(app.store.as_ref(), &ctx.caller, body_object(body)?, app.now()).await }
            .await;
    let agenda = result.map_err(|e| e.with_cid(&ctx.cid))?;
    let mut fields = Map::new();
    fields.insert("agenda".into(), Value::Object(agenda));
    Ok(reply::service(fields, &ctx.cid))
}
