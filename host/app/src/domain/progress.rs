//! Agenda progress with its operation progress (spec §3.8): reads attach the
//! operation rows, writes fan them out, completion counts an attempt.

use pop_core::visibility::Caller;
use pop_core::{AgendaProgress, EpochMillis, ObjectKind, OperationProgress, ProcessingState, WAITING_PENDING};
use pop_ports::{Document, Store, Write};
use serde_json::{Value, json};

use super::batch::{Part, write_guarded, write_parts};
use super::body::{non_blank, str_field, to_document, typed};
use super::objects::{self, operation_progress_of, stamp_new};
use super::references::{self, Change, check_client_id};
use super::retry::{RetryPolicy, completion_fields, is_failure};
use crate::error::{AppError, AppResult};

/// `maximumAttempts` when neither the progress nor the agenda sets one:
/// one attempt, no automatic retry (POP's retry job assumed 3).
pub const DEFAULT_MAXIMUM_ATTEMPTS: i64 = pop_core::retry::DEFAULT_MAXIMUM_ATTEMPTS;

/// A fresh WAITING operation progress row for `operation` of `progress_id`.
pub fn new_operation_progress(
    progress_id: &str,
    operation: &str,
    customer_id: &str,
    cid: &str,
    params: Option<pop_core::ParamsMap>,
    now: EpochMillis,
) -> OperationProgress {
    let mut op = OperationProgress {
        agenda_progress_id: Some(progress_id.into()),
        operation: Some(operation.into()),
        processing_state: Some(ProcessingState::Waiting),
        processing_state_message: Some(WAITING_PENDING.into()),
        percent_complete: Some(0.0),
        attempt_count: Some(0),
        params,
        ..Default::default()
    };
    let env = &mut op.envelope;
    env.id = Some(OperationProgress::id_for(progress_id, operation));
    env.customer_id = Some(customer_id.into());
    env.cid = Some(cid.into());
    env.added_time = Some(now);
    env.updated_time = Some(now);
    op
}

/// Split a request body into the progress row and its embedded operations,
/// each operation checked to name its operation.
fn split_body(body: Value) -> AppResult<(AgendaProgress, Vec<OperationProgress>)> {
    let mut progress: AgendaProgress = typed(body)?;
    let ops = progress.operation_progress.take().unwrap_or_default();
    if ops
        .iter()
        .any(|op| op.operation.as_deref().is_none_or(|o| o.trim().is_empty()))
    {
        return Err(AppError::Validation(
            "All OperationProgress objects must specify the operation field.".into(),
        ));
    }
    Ok((progress, ops))
}

/// POST `/pop/progress/agenda`.
pub async fn create(
    store: &dyn Store,
    caller: &Caller,
    body: Value,
    cid: &str,
    now: EpochMillis,
) -> AppResult<Document> {
    let (progress, ops) = split_body(body)?;
    let mut doc = to_document(&progress)?;
    let customer_id = non_blank(&doc, "customerId")
        .ok_or_else(|| AppError::Validation("The customerId field must be specified.".into()))?
        .to_string();
    if !caller.owns(Some(&customer_id)) {
        return Err(AppError::forbidden_customer(&customer_id));
    }
    check_client_id(caller, ObjectKind::AgendaProgress, &mut doc)?;
    references::check_client_write(store, caller, ObjectKind::AgendaProgress, Change::Create, &mut doc).await?;
    if doc.get("maximumAttempts").is_none() {
        doc.insert("maximumAttempts".into(), json!(DEFAULT_MAXIMUM_ATTEMPTS));
    }
    stamp_new(&mut doc, cid, now);
    let id = str_field(&doc, "id").unwrap_or_default().to_string();
    let head = vec![Write::create(ObjectKind::AgendaProgress, doc)];
    let mut rows = Vec::with_capacity(ops.len());
    for op in ops {
        embedded_op_id(&id, &op)?;
        rows.push(Write::create(
            ObjectKind::OperationProgress,
            embedded_op(&id, &customer_id, cid, op, now)?,
        ));
    }
    // Rows first when they do not fit with the progress: a cut leaves rows
    // of a progress that does not exist yet, never a progress missing rows.
    let stored = write_parts(store, vec![Part::Chunked(rows), Part::Atomic(head)]).await?;
    let mut doc = stored
        .into_iter()
        .nth(1)
        .and_then(|head| head.into_iter().next().flatten())
        .ok_or_else(|| AppError::Internal("create returned nothing".into()))?;
    attach(store, &mut doc).await?;
    Ok(doc)
}

/// An embedded operation progress made ready to store as a new row: the
/// given fields over WAITING defaults, owned by the parent's customer.
fn embedded_op(
    progress_id: &str,
    customer_id: &str,
    cid: &str,
    op: OperationProgress,
    now: EpochMillis,
) -> AppResult<Document> {
    let name = op.operation.clone().unwrap_or_default();
    let mut doc = to_document(&new_operation_progress(progress_id, &name, customer_id, cid, None, now))?;
    let mut given = to_document(&op)?;
    for server_owned in ["id", "customerId", "addedTime", "updatedTime", "agendaProgressId"] {
        given.remove(server_owned);
    }
    doc.extend(given);
    Ok(doc)
}

/// The row id of an embedded operation: always derived from its progress
/// and name (how the executor and rerun address it); a client may send it
/// back, but not name another row.
fn embedded_op_id(progress_id: &str, op: &OperationProgress) -> AppResult<String> {
    let name = op.operation.as_deref().unwrap_or_default();
    let derived = OperationProgress::id_for(progress_id, name);
    match op.envelope.id.as_deref().filter(|s| !s.is_empty()) {
        Some(given) if given != derived => Err(AppError::Validation(format!(
            "The id of operation progress {name} is assigned by the server (the progress id, '-' and the \
             operation name); leave it out."
        ))),
        _ => Ok(derived),
    }
}

/// PUT `/pop/progress/agenda/{id}`: update embedded operation rows (creating
/// those that do not exist yet), count a completed attempt, then apply the
/// sparse update — in one atomic write when it fits in one, else the rows
/// in chunks and then the progress (a cut leaves some rows updated and the
/// progress as it was; the caller's retry applies the rest).
pub async fn update(
    store: &dyn Store,
    caller: &Caller,
    id: Option<&str>,
    body: Value,
    cid: &str,
    now: EpochMillis,
) -> AppResult<Document> {
    update_guarded(store, caller, id, body, cid, now, None).await
}

/// [`update`], every write of it conditional on `guard` (an executor's
/// fencing guard: the update applies only while its delivery is current).
pub async fn update_guarded(
    store: &dyn Store,
    caller: &Caller,
    id: Option<&str>,
    body: Value,
    cid: &str,
    now: EpochMillis,
    guard: Option<&Write>,
) -> AppResult<Document> {
    let (_, ops) = split_body(body.clone())?;
    let mut body = body;
    if let Some(obj) = body.as_object_mut() {
        obj.remove("operationProgress");
    }
    let (stored, mut patch) = objects::prepare_update(store, caller, ObjectKind::AgendaProgress, id, body, now).await?;
    let id = str_field(&patch, "id").unwrap_or_default().to_string();
    let customer_id = str_field(&stored, "customerId").unwrap_or_default().to_string();
    let was_complete = stored.get("processingState") == Some(&json!(ProcessingState::Complete));
    let completes = patch.get("processingState") == Some(&json!(ProcessingState::Complete));
    if completes && !was_complete {
        let attempts = stored.get("attemptsCompleted").and_then(Value::as_i64).unwrap_or(0) + 1;
        patch.insert("attemptsCompleted".into(), json!(attempts));
        // A remote executor's completion decides the retry as the
        // embedded executor's does.
        let failed = is_failure(str_field(&patch, "processingStateMessage"));
        let after = RetryPolicy::of(&stored).after(failed, attempts, now);
        let (fields, event) = completion_fields(&after, now);
        patch.extend(fields);
        if let Some(event) = event {
            let mut events = match patch.get("diagnosticEvents").or_else(|| stored.get("diagnosticEvents")) {
                Some(Value::Array(events)) => events.clone(),
                _ => Vec::new(),
            };
            events.push(serde_json::to_value(event).map_err(|e| AppError::Internal(e.to_string()))?);
            patch.insert("diagnosticEvents".into(), Value::Array(events));
        }
    }
    let existing: std::collections::HashSet<String> =
        objects::ids_of(&operation_progress_of(store, &id).await?).collect();
    let mut writes = Vec::with_capacity(ops.len() + 1);
    for op in ops {
        let op_id = embedded_op_id(&id, &op)?;
        if existing.contains(&op_id) {
            let mut op_patch = to_document(&op)?;
            op_patch.insert("id".into(), json!(op_id));
            op_patch.insert("agendaProgressId".into(), json!(id));
            op_patch.remove("customerId");
            op_patch.remove("addedTime");
            op_patch.insert("updatedTime".into(), json!(now));
            writes.push(Write::merge(ObjectKind::OperationProgress, op_id, op_patch));
        } else {
            let mut op = op;
            op.envelope.id = Some(op_id);
            writes.push(Write::create(
                ObjectKind::OperationProgress,
                embedded_op(&id, &customer_id, cid, op, now)?,
            ));
        }
    }
    let head = vec![Write::merge(ObjectKind::AgendaProgress, id.clone(), patch)];
    let stored = write_guarded(store, guard, vec![Part::Chunked(writes), Part::Atomic(head)]).await?;
    let mut doc = stored
        .into_iter()
        .nth(1)
        .and_then(|head| head.into_iter().next().flatten())
        .ok_or_else(|| AppError::Internal("update returned nothing".into()))?;
    if completes && !was_complete {
        log_completion(&doc);
    }
    attach(store, &mut doc).await?;
    Ok(doc)
}

/// Attach the operation rows to one progress document.
pub async fn attach(store: &dyn Store, doc: &mut Document) -> AppResult<()> {
    let id = str_field(doc, "id").unwrap_or_default().to_string();
    let ops = operation_progress_of(store, &id).await?;
    doc.insert(
        "operationProgress".into(),
        Value::Array(ops.into_iter().map(Value::Object).collect()),
    );
    Ok(())
}

/// POP's one-line agenda metadata record when an agenda completes.
fn log_completion(doc: &Document) {
    let elapsed = match (
        doc.get("completedTime").and_then(Value::as_i64),
        doc.get("startedTime").and_then(Value::as_i64),
    ) {
        (Some(end), Some(start)) => end - start,
        _ => 0,
    };
    tracing::info!(
        "Agenda metadata - [cid={}; agendaId={}; linkId={}; owner={}; conclusionStatus={}; elapsedTime={}; agendaType=basic]",
        str_field(doc, "cid").unwrap_or(""),
        str_field(doc, "agendaId").unwrap_or(""),
        str_field(doc, "linkId").unwrap_or(""),
        str_field(doc, "customerId").unwrap_or(""),
        str_field(doc, "processingStateMessage").unwrap_or(""),
        elapsed,
    );
}
