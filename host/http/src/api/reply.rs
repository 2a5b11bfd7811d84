//! Success envelopes: `{all, count, cid, error: false}` and friends.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pop_ports::Document;
use serde_json::{Map, Value, json};

use crate::cid::Cid;
use pop_app::domain::body::parse_json_object;
use pop_app::{AppError, AppResult};

use crate::error::ErrorWithCid;

pub type Reply = Result<Response, ErrorWithCid>;

/// `{all: [...], count, cid}` for a list of objects.
pub fn objects(docs: Vec<Document>, cid: &Cid) -> Response {
    let count = docs.len();
    let all: Vec<Value> = docs.into_iter().map(Value::Object).collect();
    Json(json!({"all": all, "count": count, "cid": cid.0, "error": false})).into_response()
}

/// `{all, agendas, count}`: POP's agenda lists under both names (run,
/// getAgenda, createAgenda).
pub fn agenda_fields(agendas: Vec<Document>) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("count".into(), json!(agendas.len()));
    let agendas = Value::Array(agendas.into_iter().map(Value::Object).collect());
    fields.insert("all".into(), agendas.clone());
    fields.insert("agendas".into(), agendas);
    fields
}

/// `{count, cid}` for `bycount=true`.
pub fn count(count: u64, cid: &Cid) -> Response {
    Json(json!({"all": [], "count": count, "cid": cid.0, "error": false})).into_response()
}

/// A service response: `fields` plus `cid` and `error: false`.
pub fn service(mut fields: Map<String, Value>, cid: &Cid) -> Response {
    fields.insert("cid".into(), json!(cid.0));
    fields.insert("error".into(), json!(false));
    (StatusCode::OK, Json(Value::Object(fields))).into_response()
}

/// The JSON object in a request body, or the 4xx that says why not.
pub fn body_object(body: Result<Bytes, BytesRejection>) -> AppResult<Value> {
    let bytes = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::TooLarge(format!("The request body exceeds {} bytes.", super::MAX_BODY_BYTES))
        }
        _ => AppError::BadRequest(format!("The request body could not be read: {rejection}")),
    })?;
    parse_json_object(&bytes)
}
