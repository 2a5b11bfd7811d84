//! Generic data-object CRUD (spec §3.3–3.5) with the per-kind defaults,
//! required fields, derived fields and cascades of POP.

use pop_core::EpochMillis;
use pop_core::visibility::{Caller, can_read_document};
use pop_core::{ObjectKind, ProcessingState, WAITING_PENDING};
use pop_ports::{Document, Filter, Query, Store, Write};
use serde_json::{Value, json};

use super::batch::{Part, write_parts};
use super::body::{non_blank, normalized_document, str_field};
use super::new_id;
use super::references::{self, Change, check_client_id, display_name};
use crate::error::{AppError, AppResult};

/// Default and maximum `bylimit`.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

/// A parsed data-object GET.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListRequest {
    pub id: Option<String>,
    pub query: Query,
    /// `byfields` projection; `None` returns whole objects.
    pub fields: Option<Vec<String>>,
    /// `bycount=true`: only the number of matches.
    pub count_only: bool,
}

/// What a GET returns: objects, or only a count.
#[derive(Debug, Clone, PartialEq)]
pub enum Listing {
    Objects(Vec<Document>),
    Count(u64),
}

/// The scan filter that keeps only what `caller` may read by POP's rules
/// (none for global callers, who see everything).
pub fn visibility_filter(caller: &Caller) -> Option<Filter> {
    Filter::readable_by(caller)
}

/// Load an object the caller may read; absent and invisible look the same.
pub async fn get_visible(store: &dyn Store, caller: &Caller, kind: ObjectKind, id: &str) -> AppResult<Document> {
    match store.get(kind, id).await? {
        Some(doc) if can_read_document(caller, kind, &doc) => Ok(doc),
        _ => Err(not_found(kind, id)),
    }
}

pub fn not_found(kind: ObjectKind, id: &str) -> AppError {
    AppError::NotFound(format!("{} {id} not found", display_name(kind)))
}

/// GET: by id or by query, visibility (POP's rules) applied before the
/// limit. Listings that visibility policies decide about are
/// `PluginHost::list_visible`.
pub async fn list(store: &dyn Store, caller: &Caller, kind: ObjectKind, request: ListRequest) -> AppResult<Listing> {
    let visible = visibility_filter(caller);
    if request.count_only {
        if let Some(id) = &request.id {
            let found = store
                .get(kind, id)
                .await?
                .filter(|d| visible.as_ref().is_none_or(|f| f.admits(kind, d)));
            return Ok(Listing::Count(u64::from(found.is_some())));
        }
        return Ok(Listing::Count(store.count(kind, &request.query, visible).await?));
    }
    let mut docs = match &request.id {
        Some(id) => match store.get(kind, id).await? {
            Some(doc) if visible.as_ref().is_none_or(|f| f.admits(kind, &doc)) => vec![doc],
            _ => return Err(not_found(kind, id)),
        },
        None => store.query(kind, &request.query, visible).await?,
    };
    finish(store, kind, &mut docs, request.fields.as_deref()).await?;
    Ok(Listing::Objects(docs))
}

/// Turn the documents a listing found into what it answers: derived fields
/// added, then the `byfields` projection.
pub async fn finish(
    store: &dyn Store,
    kind: ObjectKind,
    docs: &mut [Document],
    fields: Option<&[String]>,
) -> AppResult<()> {
    enrich(store, kind, docs, fields).await?;
    if let Some(fields) = fields {
        for doc in docs {
            doc.retain(|k, _| k == "id" || fields.iter().any(|f| f == k));
        }
    }
    Ok(())
}

/// Add the fields POP derives on read instead of storing.
async fn enrich(
    store: &dyn Store,
    kind: ObjectKind,
    docs: &mut [Document],
    fields: Option<&[String]>,
) -> AppResult<()> {
    let wants = |field: &str| fields.is_none_or(|f| f.iter().any(|x| x == field));
    match kind {
        ObjectKind::ResourcePool if wants("insightIds") => {
            for doc in docs {
                let Some(id) = str_field(doc, "id").map(str::to_string) else {
                    continue;
                };
                let insights = store
                    .query(ObjectKind::Insight, &Query::by("resourcePoolId", id), None)
                    .await?;
                let ids: Vec<Value> = insights.iter().filter_map(|i| i.get("id").cloned()).collect();
                doc.insert("insightIds".into(), Value::Array(ids));
            }
        }
        ObjectKind::AgendaProgress if wants("operationProgress") => {
            for doc in docs {
                let Some(id) = str_field(doc, "id").map(str::to_string) else {
                    continue;
                };
                let ops = operation_progress_of(store, &id).await?;
                doc.insert(
                    "operationProgress".into(),
                    Value::Array(ops.into_iter().map(Value::Object).collect()),
                );
            }
        }
        _ => {}
    }
    Ok(())
}

/// POST of a plain data object (agendas and agenda progress have their own).
pub async fn create(
    store: &dyn Store,
    caller: &Caller,
    kind: ObjectKind,
    body: Value,
    cid: &str,
    now: EpochMillis,
) -> AppResult<Document> {
    let mut doc = normalized_document(kind, body)?;
    let customer_id = non_blank(&doc, "customerId")
        .ok_or_else(|| AppError::Validation("The customerId field must be specified.".into()))?
        .to_string();
    apply_create_rules(kind, &mut doc, &customer_id)?;
    if !caller.owns(Some(&customer_id)) {
        return Err(AppError::forbidden_customer(&customer_id));
    }
    check_client_id(caller, kind, &mut doc)?;
    references::check_client_write(store, caller, kind, Change::Create, &mut doc).await?;
    stamp_new(&mut doc, cid, now);
    let stored = store.write(vec![Write::create(kind, doc)]).await?;
    stored
        .into_iter()
        .next()
        .flatten()
        .ok_or_else(|| AppError::Internal("create returned nothing".into()))
}

/// Set id (when absent), cid (when absent), addedTime and updatedTime.
pub fn stamp_new(doc: &mut Document, cid: &str, now: EpochMillis) {
    if non_blank(doc, "id").is_none() {
        doc.insert("id".into(), json!(new_id()));
    }
    if non_blank(doc, "cid").is_none() {
        doc.insert("cid".into(), json!(cid));
    }
    doc.insert("addedTime".into(), json!(now));
    doc.insert("updatedTime".into(), json!(now));
}

/// Required fields and defaults of spec §3.4, plus `Customer.id == customerId`.
fn apply_create_rules(kind: ObjectKind, doc: &mut Document, customer_id: &str) -> AppResult<()> {
    let require_title = |doc: &Document| {
        non_blank(doc, "title").map(|_| ()).ok_or_else(|| {
            AppError::Validation(format!(
                "The title field must be specified for a {}.",
                display_name(kind)
            ))
        })
    };
    let default = |doc: &mut Document, field: &str, value: Value| {
        if doc.get(field).is_none_or(Value::is_null) {
            doc.insert(field.into(), value);
        }
    };
    match kind {
        ObjectKind::Customer => {
            require_title(doc)?;
            match non_blank(doc, "id") {
                None => {
                    doc.insert("id".into(), json!(customer_id));
                }
                Some(id) if id != customer_id => {
                    return Err(AppError::Validation(format!(
                        "A Customer's id must equal its customerId (id {id}, customerId {customer_id})."
                    )));
                }
                Some(_) => {}
            }
        }
        ObjectKind::Insight => {
            require_title(doc)?;
            default(doc, "isGlobal", json!(false));
            // 0 would leave the insight unscheduled; POP had no default. 10 keeps a
            // puller busy without releasing far ahead of execution.
            default(doc, "queueSize", json!(10));
            if let Some(size) = doc.get("queueSize").and_then(Value::as_i64)
                && size < 0
            {
                return Err(AppError::Validation("The queueSize field must not be negative.".into()));
            }
            if let Some(limit) = doc.get("executionLimit").filter(|v| !v.is_null())
                && limit.as_i64().is_none_or(|l| l < 0)
            {
                return Err(AppError::Validation(
                    "The executionLimit field must be a whole number, 0 or more.".into(),
                ));
            }
        }
        ObjectKind::AgendaTemplate => {
            default(doc, "isGlobal", json!(false));
            default(doc, "isDefaultTemplate", json!(false));
        }
        ObjectKind::OperationProgress => {
            default(doc, "attemptCount", json!(0));
            default(doc, "percentComplete", json!(0.0));
            default(doc, "processingState", json!(ProcessingState::Waiting));
            default(doc, "processingStateMessage", json!(WAITING_PENDING));
        }
        _ => {}
    }
    Ok(())
}

/// Check a PUT: the id is given and consistent, the object exists and is
/// visible (else 404), and the caller owns it and any new owner (else 403).
/// Returns the stored document and the normalized patch.
pub async fn prepare_update(
    store: &dyn Store,
    caller: &Caller,
    kind: ObjectKind,
    id: Option<&str>,
    body: Value,
    now: EpochMillis,
) -> AppResult<(Document, Document)> {
    let id = id
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| AppError::BadRequest("Unable to PUT an object without specifying an id".into()))?;
    let mut patch = normalized_document(kind, body)?;
    if let Some(body_id) = non_blank(&patch, "id")
        && body_id != id
    {
        return Err(AppError::BadRequest(format!(
            "Mismatched Id in URL and on input object: {id} != {body_id}"
        )));
    }
    let stored = get_visible(store, caller, kind, id).await?;
    let owner = str_field(&stored, "customerId");
    if !caller.owns(owner) {
        return Err(AppError::forbidden_customer(owner.unwrap_or("")));
    }
    if let Some(new_owner) = str_field(&patch, "customerId") {
        if !caller.owns(Some(new_owner)) {
            return Err(AppError::forbidden_customer(new_owner));
        }
        if kind == ObjectKind::Customer && new_owner != id {
            return Err(AppError::Validation(
                "A Customer's customerId must equal its id.".into(),
            ));
        }
    }
    references::check_client_write(store, caller, kind, Change::Update { stored: &stored }, &mut patch).await?;
    patch.insert("id".into(), json!(id));
    patch.remove("addedTime");
    patch.insert("updatedTime".into(), json!(now));
    Ok((stored, patch))
}

/// PUT of a plain data object: a sparse update.
pub async fn update(
    store: &dyn Store,
    caller: &Caller,
    kind: ObjectKind,
    id: Option<&str>,
    body: Value,
    now: EpochMillis,
) -> AppResult<Document> {
    let (_, patch) = prepare_update(store, caller, kind, id, body, now).await?;
    let id = str_field(&patch, "id").unwrap_or_default().to_string();
    let stored = store.write(vec![Write::merge(kind, id, patch)]).await?;
    stored
        .into_iter()
        .next()
        .flatten()
        .ok_or_else(|| AppError::Internal("update returned nothing".into()))
}

/// DELETE: remove a visible, owned object and what hangs off it. `None`
/// when no id was given (POP answers with an empty list then).
pub async fn delete(
    store: &dyn Store,
    caller: &Caller,
    kind: ObjectKind,
    id: Option<&str>,
) -> AppResult<Option<Document>> {
    let Some(id) = id.filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    let stored = get_visible(store, caller, kind, id).await?;
    let owner = str_field(&stored, "customerId");
    if !caller.owns(owner) {
        return Err(AppError::forbidden_customer(owner.unwrap_or("")));
    }
    let mut dependants = Vec::new();
    match kind {
        ObjectKind::Agenda => {
            for waiting in [ObjectKind::ReadyAgenda, ObjectKind::QueuedAgenda] {
                let rows = store.query(waiting, &Query::by("agendaId", id), None).await?;
                dependants.extend(ids_of(&rows).map(|rid| Write::delete(waiting, rid)));
            }
        }
        ObjectKind::AgendaProgress => {
            let ops = operation_progress_of(store, id).await?;
            dependants.extend(ids_of(&ops).map(|oid| Write::delete(ObjectKind::OperationProgress, oid)));
        }
        _ => {}
    }
    // Dependants first when they do not fit in one write with the object: a
    // cut leaves the object with fewer dependants, and deleting it again
    // finishes the job (the other order would leave unreachable rows).
    let head = vec![Write::delete(kind, id)];
    let removed = write_parts(store, vec![Part::Chunked(dependants), Part::Atomic(head)]).await?;
    let head = removed
        .into_iter()
        .nth(1)
        .and_then(|head| head.into_iter().next().flatten());
    Ok(head.or(Some(stored)))
}

pub fn ids_of(docs: &[Document]) -> impl Iterator<Item = String> + '_ {
    docs.iter().filter_map(|d| str_field(d, "id").map(str::to_string))
}

/// All operation progress rows of one agenda progress, in creation order.
pub async fn operation_progress_of(store: &dyn Store, agenda_progress_id: &str) -> AppResult<Vec<Document>> {
    Ok(store
        .query(
            ObjectKind::OperationProgress,
            &Query::by("agendaProgressId", agenda_progress_id),
            None,
        )
        .await?)
}
