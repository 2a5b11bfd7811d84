//! The agenda and progress services: `run` (template → agenda), `rerun`
//! (reset and requeue) and the progress summary by `linkId` (spec §3.7–3.8).

use std::collections::BTreeSet;

use pop_core::EpochMillis;
use pop_core::params::keys;
use pop_core::rerun::{parse_rerun_params, reset_plan};
use pop_core::retry::fields as retry_fields;
use pop_core::summary::summarize;
use pop_core::template::expand_template;
use pop_core::visibility::{Caller, can_read_document};
use pop_core::{
    Agenda, AgendaProgress, AgendaTemplate, ObjectKind, OperationProgress, ProcessingState, ProgressSummary,
    ProgressSummaryRequest, RerunAgendaRequest, RunAgendaRequest, WAITING_PENDING,
};
use pop_ports::{Document, Expect, Query, Queue, Store, Write, queue::message_id};
use serde_json::{Value, json};

use super::submission::{ready_agenda, submit_agenda};
use crate::domain::batch::{Part, write_parts};
use crate::domain::body::{from_document, str_field, to_document, typed};
use crate::domain::fence;
use crate::domain::objects::operation_progress_of;
use crate::domain::objects::{MAX_LIMIT, get_visible, visibility_filter};
use crate::error::{AppError, AppResult};
use crate::plugins::PluginHost;

fn non_blank(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.trim().is_empty())
}

/// POST `/pop/agenda/service/run`: expand a template with a payload and
/// submit the result. Unlike POP, the submission is authorized as the
/// *caller*, so a shared template cannot be used to act for its owner.
pub async fn run(
    store: &dyn Store,
    plugins: &PluginHost,
    caller: &Caller,
    body: Value,
    cid: &str,
) -> AppResult<Document> {
    let request: RunAgendaRequest = typed(body)?;
    let (Some(template_id), Some(payload)) = (non_blank(request.agenda_template_id), non_blank(request.payload)) else {
        return Err(AppError::Validation(
            "agendaTemplateId and payload must be specified".into(),
        ));
    };
    let payload: Value = serde_json::from_str(&payload)
        .map_err(|e| AppError::BadRequest(format!("Unable to parse input payload as JSON: {e}")))?;
    let template = get_visible(store, caller, ObjectKind::AgendaTemplate, &template_id)
        .await
        .map_err(|_| AppError::NotFound(format!("AgendaTemplate {template_id} not found")))?;
    let template: AgendaTemplate = from_document(template)?;
    let mut agenda: Agenda = expand_template(&template, &payload).map_err(|e| AppError::Validation(e.to_string()))?;
    let envelope = &mut agenda.envelope;
    if envelope.cid.as_deref().is_none_or(str::is_empty) {
        envelope.cid = Some(cid.to_string());
    }
    if envelope.title.as_deref().is_none_or(str::is_empty) {
        envelope.title = template.envelope.title.clone();
    }
    if envelope.customer_id.as_deref().is_none_or(str::is_empty) {
        envelope.customer_id = caller.sole_account().map(String::from);
    }
    submit_agenda(store, plugins, caller, agenda, cid).await
}

/// What a rerun did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RerunOutcome {
    pub reset: BTreeSet<String>,
    pub deleted: BTreeSet<String>,
    pub requeued: bool,
}

/// The progress field naming the attempt a rerun started (its fencing
/// token), kept until the next rerun: while that attempt has not completed,
/// another rerun is refused.
pub const RERUN_ATTEMPT_FIELD: &str = "rerunAttempt";

/// How often a rerun is tried again when a delivery of the agenda started
/// between its read and its write (a race it did not lose to a rerun).
const RERUN_TRIES: usize = 3;

/// POST `/pop/agenda/service/rerun`: reset the progress of an agenda (and of
/// every operation that depends on a reset one), delete operations generated
/// by reset ones, and put the agenda back in its insight's backlog — atomically.
///
/// A rerun is a conditional transition: it applies only while the progress
/// still holds the fencing token it read, and not while an attempt started
/// by an earlier rerun is still pending or running. So of any number of
/// concurrent reruns of one attempt (users, the retry job, several
/// processes), exactly one takes effect; the others get a conflict naming
/// the attempt already under way, and an agenda never has two deliveries.
pub async fn rerun(
    store: &dyn Store,
    queue: &dyn Queue,
    caller: &Caller,
    body: Value,
    now: EpochMillis,
) -> AppResult<RerunOutcome> {
    rerun_if(store, queue, caller, body, now, &Expect::nothing()).await
}

/// The retry job's rerun of `agenda_id` with `continue`: like any rerun,
/// and only while its progress still says a retry is pending (a user's
/// rerun, or another process's retry, took it otherwise).
pub async fn retry(store: &dyn Store, queue: &dyn Queue, agenda_id: &str, now: EpochMillis) -> AppResult<RerunOutcome> {
    let pending = Expect::field(retry_fields::STATE, retry_fields::PENDING);
    let body = json!({"agendaId": agenda_id, "params": ["continue"]});
    rerun_if(store, queue, &Caller::service(), body, now, &pending).await
}

async fn rerun_if(
    store: &dyn Store,
    queue: &dyn Queue,
    caller: &Caller,
    body: Value,
    now: EpochMillis,
    expect: &Expect,
) -> AppResult<RerunOutcome> {
    let mut tries = 0;
    loop {
        tries += 1;
        match rerun_once(store, queue, caller, body.clone(), now, expect).await {
            Err(AppError::Conflict(lost)) => {
                // Lost to another rerun: name its attempt. Lost to a delivery
                // that just took the agenda over: read again and retry.
                let agenda_id = body.get("agendaId").and_then(Value::as_str).unwrap_or_default();
                if let Some(refusal) = rerun_under_way(store, agenda_id).await? {
                    return Err(refusal);
                }
                if tries >= RERUN_TRIES {
                    return Err(AppError::Conflict(lost));
                }
            }
            other => return other,
        }
    }
}

/// The refusal of a rerun of `agenda_id` while an attempt started by a rerun
/// has not completed; `None` when there is none.
async fn rerun_under_way(store: &dyn Store, agenda_id: &str) -> AppResult<Option<AppError>> {
    let Some(agenda) = store.get(ObjectKind::Agenda, agenda_id).await? else {
        return Ok(None);
    };
    let Some(progress_id) = str_field(&agenda, "progressId") else {
        return Ok(None);
    };
    let Some(progress) = store.get(ObjectKind::AgendaProgress, progress_id).await? else {
        return Ok(None);
    };
    Ok(attempt_under_way(agenda_id, &progress))
}

fn attempt_under_way(agenda_id: &str, progress: &Document) -> Option<AppError> {
    let token = str_field(progress, RERUN_ATTEMPT_FIELD).filter(|t| !t.is_empty())?;
    if str_field(progress, "processingState") == Some("COMPLETE") {
        return None;
    }
    let attempt = progress.get("attemptsCompleted").and_then(Value::as_i64).unwrap_or(0) + 1;
    Some(AppError::Conflict(format!(
        "Agenda {agenda_id} is already being rerun: attempt {attempt} ({token}) has not completed; \
         rerun it again once it has."
    )))
}

async fn rerun_once(
    store: &dyn Store,
    queue: &dyn Queue,
    caller: &Caller,
    body: Value,
    now: EpochMillis,
    expect: &Expect,
) -> AppResult<RerunOutcome> {
    let request: RerunAgendaRequest = typed(body)?;
    let agenda_id =
        non_blank(request.agenda_id).ok_or_else(|| AppError::Validation("agendaId must be specified".into()))?;
    let options = parse_rerun_params(&request.params).map_err(|e| AppError::Validation(e.to_string()))?;
    let agenda = get_visible(store, caller, ObjectKind::Agenda, &agenda_id)
        .await
        .map_err(|_| AppError::NotFound(format!("Agenda {agenda_id} not found")))?;
    let agenda: Agenda = from_document(agenda)?;
    let progress_missing = || AppError::NotFound(format!("AgendaProgress of Agenda {agenda_id} not found"));
    let progress_id = agenda.progress_id.clone().ok_or_else(progress_missing)?;
    let progress = store
        .get(ObjectKind::AgendaProgress, &progress_id)
        .await?
        .ok_or_else(progress_missing)?;
    let read_token = progress.get(fence::FIELD).cloned().unwrap_or(Value::Null);
    let operation_rows = operation_progress_of(store, &progress_id).await?;
    let known: Vec<String> = operation_rows
        .iter()
        .filter_map(|d| str_field(d, "operation").map(String::from))
        .collect();
    let plan = reset_plan(&agenda, &options.scope, &known).map_err(|e| AppError::Validation(e.to_string()))?;
    // Refused after the request is validated: a bad request is named as such.
    if let Some(refusal) = attempt_under_way(&agenda_id, &progress) {
        return Err(refusal);
    }
    if !expect.held_by(&progress) {
        return Err(AppError::Conflict(format!(
            "Agenda {agenda_id} no longer holds {:?}; nothing to rerun.",
            expect.fields()
        )));
    }

    // Head: the progress reset with a fresh token (fencing off any run of
    // the old attempt) and the agenda without the deleted operations;
    // rows: the operation resets and deletes; tail: the backlog row that
    // makes the agenda runnable again. One atomic write when they fit; else
    // in this order, so a cut leaves a WAITING agenda that nothing runs
    // until the rerun is sent again (or the reclaimer requeues it).
    let mut head = Vec::new();
    let mut rows = Vec::new();
    let mut tail = Vec::new();
    let progress_patch = AgendaProgress {
        processing_state: Some(ProcessingState::Waiting),
        processing_state_message: Some(WAITING_PENDING.into()),
        ..Default::default()
    };
    let mut patch = to_document(&progress_patch)?;
    patch.insert("updatedTime".into(), json!(now));
    // A token no delivery holds: whatever run of the earlier attempt is
    // still going records nothing more (see [`fence`]). Written only while
    // the progress holds the token read: of two reruns, one applies.
    let token = fence::rerun_token();
    patch.insert(fence::FIELD.into(), json!(token));
    // Whatever retry was pending, this rerun is the next attempt.
    patch.insert(retry_fields::STATE.into(), json!(retry_fields::NONE));
    let progress_at = head.len();
    let guard = expect
        .fields()
        .iter()
        .fold(Expect::field(fence::FIELD, read_token), |guard, (field, value)| {
            guard.and(field.clone(), value.clone())
        });
    head.push(Write::merge_if(
        ObjectKind::AgendaProgress,
        progress_id.clone(),
        guard,
        patch,
    ));
    for name in &plan.reset {
        let reset = OperationProgress {
            processing_state: Some(ProcessingState::Waiting),
            processing_state_message: Some(WAITING_PENDING.into()),
            result_payload: Some("{}".into()),
            diagnostic_events: Some(Vec::new()),
            percent_complete: Some(0.0),
            ..Default::default()
        };
        let mut patch = to_document(&reset)?;
        patch.insert("updatedTime".into(), json!(now));
        rows.push(Write::merge(
            ObjectKind::OperationProgress,
            OperationProgress::id_for(&progress_id, name),
            patch,
        ));
    }
    if !plan.delete.is_empty() {
        let kept: Vec<_> = agenda
            .operations()
            .iter()
            .filter(|op| !plan.delete.contains(op.name()))
            .cloned()
            .collect();
        let patch = json!({"operations": kept, "updatedTime": now});
        head.push(Write::merge(
            ObjectKind::Agenda,
            agenda_id.clone(),
            patch.as_object().cloned().unwrap_or_default(),
        ));
        for name in &plan.delete {
            rows.push(Write::delete(
                ObjectKind::OperationProgress,
                OperationProgress::id_for(&progress_id, name),
            ));
        }
    }
    let requeue = !options.skip_execution && !agenda.params.as_ref().is_some_and(|p| p.contains_key(keys::DO_NOT_RUN));
    let mut requeued = false;
    let mut queued = Vec::new();
    if requeue {
        let by_agenda = Query::by("agendaId", agenda_id.clone());
        queued = queue.of_agenda(&agenda_id).await?;
        let already_queued = store.count(ObjectKind::ReadyAgenda, &by_agenda, None).await? > 0 || !queued.is_empty();
        let insight_id = agenda.agenda_insight.as_ref().and_then(|i| i.insight_id.clone());
        match insight_id {
            Some(insight_id) if !already_queued => {
                insight_still_open(store, &agenda, &insight_id).await?;
                tail.push(Write::create(
                    ObjectKind::ReadyAgenda,
                    ready_agenda(&agenda, &insight_id, now)?,
                ));
                requeued = true;
            }
            Some(_) => requeued = true,
            None => tracing::warn!(agenda_id, "rerun: agenda has no insight; not requeued"),
        }
    }
    if let Some(Write::Merge { patch, .. }) = head.get_mut(progress_at) {
        // The attempt this rerun starts; further reruns wait for its end.
        // A reset that is not run starts none (empty: a merge cannot remove).
        let attempt = if requeued { token.as_str() } else { "" };
        patch.insert(RERUN_ATTEMPT_FIELD.into(), json!(attempt));
    }
    write_parts(store, vec![Part::Atomic(head), Part::Chunked(rows), Part::Atomic(tail)]).await?;
    // An entry still queued may be leased to an executor running the old
    // attempt: that executor stopped recording with the new token above;
    // releasing the lease lets a puller run the reset agenda at once.
    for entry in &queued {
        queue.release_any(message_id(entry)).await?;
    }
    Ok(RerunOutcome {
        reset: plan.reset,
        deleted: plan.delete,
        requeued,
    })
}

/// The insight an agenda was bound to must still take it: it may have been
/// deleted, or made private, since the agenda was submitted.
async fn insight_still_open(store: &dyn Store, agenda: &Agenda, insight_id: &str) -> AppResult<()> {
    let customer_id = agenda.envelope.customer_id.as_deref().unwrap_or_default();
    let customer = Caller::customer(customer_id);
    match store.get(ObjectKind::Insight, insight_id).await? {
        Some(insight) if can_read_document(&customer, ObjectKind::Insight, &insight) => Ok(()),
        _ => Err(AppError::Validation(format!(
            "The agenda's Insight {insight_id} no longer exists or no longer takes agendas of customer \
             {customer_id}; submit the agenda again to bind it to another."
        ))),
    }
}

/// POST `/pop/progress/agenda/service`: the rolled-up progress of every
/// agenda of a `linkId` that the caller may see.
pub async fn progress_summary(store: &dyn Store, caller: &Caller, body: Value) -> AppResult<ProgressSummary> {
    let request: ProgressSummaryRequest = typed(body)?;
    let link_id = non_blank(request.link_id)
        .ok_or_else(|| AppError::Validation("LinkId is required to call getProgressSummary.".into()))?;
    let query = Query::by("linkId", link_id).limit(MAX_LIMIT);
    let docs = store
        .query(ObjectKind::AgendaProgress, &query, visibility_filter(caller))
        .await?;
    let list: Vec<AgendaProgress> = docs.into_iter().map(from_document).collect::<AppResult<_>>()?;
    Ok(summarize(list))
}
