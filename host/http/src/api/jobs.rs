//! `POST /pop/jobs/{job}/run[?logOnly=true]`: run one background job once
//! (retry, reclaim, reap) and answer what it did. For operators (super
//! users): the jobs act on every tenant's data.

use axum::extract::{Path, Query, State};
use axum::routing::{MethodRouter, post};
use pop_app::jobs::Job;
use pop_app::{AppError, AppState};
use serde::Deserialize;
use serde_json::Value;

use super::context::RequestContext;
use super::reply::{self, Reply};
use crate::error::WithCid;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunParams {
    #[serde(default)]
    log_only: bool,
}

pub fn run_route() -> MethodRouter<AppState> {
    post(run)
}

async fn run(
    State(app): State<AppState>,
    ctx: RequestContext,
    Path(job): Path<String>,
    params: Result<Query<RunParams>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let result = async {
        if !ctx.caller.super_user {
            return Err(AppError::Forbidden(
                "Only super users may run the background jobs.".into(),
            ));
        }
        let job: Job = job.parse().map_err(AppError::BadRequest)?;
        let Query(params) = params.map_err(|e| AppError::BadRequest(format!("logOnly: {}", e.body_text())))?;
        let report = app.jobs.run(job, params.log_only).await?;
        let report = serde_json::to_value(report).map_err(|e| AppError::Internal(e.to_string()))?;
        match report {
            Value::Object(report) => Ok(report),
            _ => Err(AppError::Internal("a report is an object".into())),
        }
    }
    .await;
    Ok(reply::objects(
        vec![result.map_err(|e| e.with_cid(&ctx.cid))?],
        &ctx.cid,
    ))
}
