//! Turning request JSON into typed, normalized objects and back, with errors
//! that name the offending field.

use pop_core::{
    Agenda, AgendaProgress, AgendaTemplate, Customer, Insight, ObjectKind, OperationProgress, PoolNamespaces,
    ResourcePool,
};
use pop_ports::Document;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{AppError, AppResult};

/// Parse a request body: 400 when it is not JSON, 422 when it is not an object.
pub fn parse_json_object(bytes: &[u8]) -> AppResult<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::BadRequest(
            "The request body is empty; a JSON object is required.".into(),
        ));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| AppError::BadRequest(format!("The request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(AppError::Validation("The request body must be a JSON object.".into()));
    }
    Ok(value)
}

/// Deserialize into `T`, naming the field whose type is wrong (422).
pub fn typed<T: DeserializeOwned>(value: Value) -> AppResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            AppError::Validation(format!("Invalid object: {inner}"))
        } else {
            AppError::Validation(format!("Invalid field '{path}': {inner}"))
        }
    })
}

/// Serialize a typed object to a stored document (nulls omitted).
pub fn to_document<T: Serialize>(object: &T) -> AppResult<Document> {
    match serde_json::to_value(object) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AppError::Internal("object did not serialize to a JSON object".into())),
        Err(e) => Err(AppError::Internal(format!("object did not serialize: {e}"))),
    }
}

/// Read a stored document back as its typed object.
pub fn from_document<T: DeserializeOwned>(doc: Document) -> AppResult<T> {
    serde_json::from_value(Value::Object(doc))
        .map_err(|e| AppError::Internal(format!("stored object does not match its model: {e}")))
}

/// Parse `value` as the model of `kind` and normalize it (lower-cased
/// `allowedCustomerIds`, unknown fields dropped, derived fields removed).
pub fn normalized_document(kind: ObjectKind, value: Value) -> AppResult<Document> {
    match kind {
        ObjectKind::Agenda => to_document(&typed::<Agenda>(value)?),
        ObjectKind::AgendaTemplate => {
            let mut t: AgendaTemplate = typed(value)?;
            t.normalize();
            to_document(&t)
        }
        ObjectKind::Customer => to_document(&typed::<Customer>(value)?),
        ObjectKind::Insight => {
            let mut i: Insight = typed(value)?;
            i.normalize();
            to_document(&i)
        }
        ObjectKind::ResourcePool => {
            let mut p: ResourcePool = typed(value)?;
            p.insight_ids = None;
            if let Some(problem) = p.namespaces.as_ref().and_then(PoolNamespaces::invalid) {
                return Err(AppError::Validation(problem));
            }
            to_document(&p)
        }
        ObjectKind::AgendaProgress => {
            let mut p: AgendaProgress = typed(value)?;
            p.operation_progress = None;
            to_document(&p)
        }
        ObjectKind::OperationProgress => to_document(&typed::<OperationProgress>(value)?),
        ObjectKind::ReadyAgenda
        | ObjectKind::InsightScheduleInfo
        | ObjectKind::Plugin
        | ObjectKind::PluginActivation
        | ObjectKind::QueuedAgenda => Err(AppError::NotFound(format!("{kind} objects are not served by the API"))),
    }
}

pub fn str_field<'a>(doc: &'a Document, field: &str) -> Option<&'a str> {
    doc.get(field).and_then(Value::as_str)
}

/// The non-blank text of a field.
pub fn non_blank<'a>(doc: &'a Document, field: &str) -> Option<&'a str> {
    str_field(doc, field).filter(|s| !s.trim().is_empty())
}
