//! The ResourcePool service (spec §3.9): what pullers and executors call.
//!
//! * `getAgenda` claims queued agendas of an insight under a lease (see
//!   [`crate::domain::queue`]) and returns them with their resume progress;
//!   `extendLease` and `ackAgenda` are the lease's heartbeat and end.
//! * `updateAgendaProgress` and `updateAgenda` let an executor report
//!   progress and append generated operations to the agenda it runs.
//! * `createAgenda` lets a resource-pool component create agendas for
//!   customers, onto insights it owns.
//!
//! Pullers act for the insight's owner: claiming and leases need strict
//! ownership of the insight. Executors are authorized through the agenda's
//! insight with the insight read rule, as POP did.

use std::time::Duration;

use pop_core::EpochMillis;
use pop_core::params::keys;
use pop_core::validation::validate_agenda;
use pop_core::visibility::Caller;
use pop_core::{
    Agenda, AgendaProgress, CreateAgendaRequest, GetAgendaRequest, Lease, LeaseRequest, ObjectKind, ParamsMap,
    ProcessingState, QueuedAgenda, UpdateAgendaProgressRequest, UpdateAgendaRequest,
};
use pop_ports::{Document, Expect, Queue, Store, StoreError, Write};
use serde_json::{Value, json};

use super::submission::{InsightScope, submit_agenda_in};
use crate::domain::batch::{Part, write_parts};
use crate::domain::body::{from_document, str_field, to_document, typed};
use crate::domain::progress::{self, new_operation_progress};
use crate::domain::{fence, placement, queue, typed};
use crate::error::{AppError, AppResult};
use crate::plugins::PluginHost;

/// Most agendas one `getAgenda` hands out (SQS capped POP at 10 and failed
/// above it; we cap instead of failing).
pub const MAX_GET_COUNT: i64 = 100;

fn non_blank(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.trim().is_empty())
}

/// What `getAgenda` hands a puller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delivery {
    pub agendas: Vec<Document>,
    /// Progress of the agendas that already ran in part (resume).
    pub agenda_progresses: Vec<Document>,
    pub leases: Vec<Lease>,
}

/// What `createAgenda` did: the agendas created, and why the others were not.
#[derive(Debug, Default)]
pub struct Creation {
    pub agendas: Vec<Document>,
    /// POP's `[title : description]` per refused agenda, when any was.
    pub refused: Option<AppError>,
}

/// The insight `caller` owns strictly (global, or `insight.customerId` among
/// its accounts; `isGlobal` and `allowedCustomerIds` do not count). Absent
/// and not owned answer alike.
async fn owned_insight(store: &dyn Store, caller: &Caller, insight_id: &str) -> AppResult<Document> {
    match store.get(ObjectKind::Insight, insight_id).await? {
        Some(doc) if caller.owns(str_field(&doc, "customerId")) && caller.may_serve(insight_id) => Ok(doc),
        _ => Err(AppError::NotFound(format!(
            "The Insight specified was not found or is not visible: {insight_id}"
        ))),
    }
}

/// May `caller` act on an agenda (or its progress) of `customer_id` bound
/// to `insight_id`? Its owner may, and so may whoever owns the insight (the
/// resource pool's executors). POP let anyone who could *read* the insight
/// through, so on a global insight one tenant could rewrite another's
/// progress; here reading is not enough.
async fn may_work_on(
    store: &dyn Store,
    caller: &Caller,
    customer_id: Option<&str>,
    insight_id: Option<&str>,
) -> AppResult<bool> {
    if caller.owns(customer_id) && caller.insights.is_none() {
        return Ok(true);
    }
    // A scoped token (a puller's, an executor's) works only through the
    // insights it serves.
    let Some(insight_id) = insight_id.filter(|id| caller.may_serve(id)) else {
        return Ok(false);
    };
    Ok(store
        .get(ObjectKind::Insight, insight_id)
        .await?
        .is_some_and(|insight| caller.owns(insight.get("customerId").and_then(Value::as_str))))
}

fn insight_id_of(doc: &Document) -> Option<&str> {
    doc.get("agendaInsight")
        .and_then(|i| i.get("insightId"))
        .and_then(Value::as_str)
}

/// `leaseMs` of a request: the default when absent, else 1 ms to a day.
fn lease_ms(given: Option<i64>) -> AppResult<i64> {
    match given {
        None => Ok(queue::DEFAULT_LEASE_MS),
        Some(ms) if (1..=queue::MAX_LEASE_MS).contains(&ms) => Ok(ms),
        Some(ms) => Err(AppError::Validation(format!(
            "The leaseMs field must be between 1 and {}, not {ms}.",
            queue::MAX_LEASE_MS
        ))),
    }
}

/// POST `getAgenda`: claim up to `count` queued agendas of the insight,
/// oldest first, each leased for `leaseMs` to `puller` (default: the
/// caller's user id).
pub async fn get_agenda(store: &dyn Store, queue: &dyn Queue, caller: &Caller, body: Value) -> AppResult<Delivery> {
    let request: GetAgendaRequest = typed(body)?;
    let insight_id = non_blank(request.insight_id)
        .ok_or_else(|| AppError::Validation("The insightId field must be specified.".into()))?;
    let count = match request.count {
        Some(count) if count >= 1 => count.min(MAX_GET_COUNT) as usize,
        _ => return Err(AppError::Validation("The count field must be at least 1.".into())),
    };
    let lease_ms = lease_ms(request.lease_ms)?;
    let puller = match request.puller {
        None => caller.user_id.clone(),
        Some(puller) => {
            non_blank(Some(puller)).ok_or_else(|| AppError::Validation("The puller field must not be blank.".into()))?
        }
    };
    owned_insight(store, caller, &insight_id).await?;

    let mut delivery = Delivery::default();
    let lease = queue::lease_duration(lease_ms);
    let claimed = queue.claim(&insight_id, count, &puller, lease, Duration::ZERO).await?;
    for entry in claimed {
        let Some((agenda, progress, read_token, attempt)) = deliverable(store, &entry).await? else {
            // POP skipped messages whose agenda was gone; the entry goes too.
            queue.acknowledge(&entry).await?;
            continue;
        };
        // The delivery takes the agenda's progress over, as the embedded
        // executor does: updates sent with this token apply only until a
        // newer delivery (or a rerun) takes it over in turn.
        let token = fence::token_of(&entry);
        if let Some(progress_id) = str_field(&agenda, "progressId") {
            let take_over = fence::take_over(progress_id, read_token.as_ref(), &token);
            match store.write(vec![take_over]).await {
                Ok(_) => {}
                // Another delivery took over between our read and write:
                // this one is already stale; give it back.
                Err(StoreError::ConditionFailed { .. } | StoreError::NotFound { .. }) => {
                    queue.release(&entry).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let pool_id = agenda
            .get("agendaInsight")
            .and_then(|i| i.get("resourcePoolId"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let namespace =
            placement::namespace_for(store, pool_id, str_field(&agenda, "customerId").unwrap_or_default()).await?;
        delivery.agendas.push(agenda);
        delivery.agenda_progresses.extend(progress);
        delivery.leases.push(Lease {
            agenda_id: entry.agenda_id.clone().unwrap_or_default(),
            queue_id: entry.envelope.id.clone().unwrap_or_default(),
            lease_expires: entry.lease_expires.unwrap_or_default(),
            deliveries: entry.deliveries.unwrap_or_default(),
            fencing_token: token,
            attempt: Some(attempt),
            namespace,
        });
    }
    Ok(delivery)
}

/// What a claimed entry delivers: its agenda with `params.added` set to
/// when it was submitted, its progress when the agenda already ran in part
/// (some operation is not WAITING), the fencing token the progress held
/// when read, and the attempt the delivery runs. `None` when the agenda no
/// longer exists.
async fn deliverable(
    store: &dyn Store,
    entry: &QueuedAgenda,
) -> AppResult<Option<(Document, Option<Document>, Option<Value>, i64)>> {
    let agenda_id = entry.agenda_id.as_deref().unwrap_or_default();
    let Some(mut agenda) = store.get(ObjectKind::Agenda, agenda_id).await? else {
        return Ok(None);
    };
    if let Some(added) = entry.added {
        let params = agenda.entry("params").or_insert_with(|| json!({}));
        if let Some(params) = params.as_object_mut() {
            params.insert(keys::ADDED.into(), json!(added));
        }
    }
    let progress = match str_field(&agenda, "progressId") {
        Some(progress_id) => store.get(ObjectKind::AgendaProgress, progress_id).await?,
        None => None,
    };
    let read_token = progress.as_ref().and_then(|p| p.get(fence::FIELD)).cloned();
    let attempt = progress
        .as_ref()
        .and_then(|p| p.get("attemptsCompleted"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
        + 1;
    let resumed = match progress {
        Some(mut progress) => {
            progress::attach(store, &mut progress).await?;
            let waiting = json!(ProcessingState::Waiting);
            let started = progress
                .get("operationProgress")
                .and_then(Value::as_array)
                .is_some_and(|ops| ops.iter().any(|op| op.get("processingState") != Some(&waiting)));
            started.then_some(progress)
        }
        None => None,
    };
    Ok(Some((agenda, resumed, read_token, attempt)))
}

/// The queue entry named by a lease request, if the caller owns its
/// insight strictly; absent and not owned answer alike (404).
async fn owned_entry(store: &dyn Store, queue: &dyn Queue, caller: &Caller, queue_id: &str) -> AppResult<QueuedAgenda> {
    let not_found = || AppError::NotFound(format!("Queue entry {queue_id} not found"));
    let entry = queue.get(queue_id).await?.ok_or_else(not_found)?;
    let insight_id = entry.insight_id.as_deref().unwrap_or_default();
    owned_insight(store, caller, insight_id)
        .await
        .map_err(|_| not_found())?;
    Ok(entry)
}

/// The queue id and puller of a lease request, both required.
fn lease_target(request: &LeaseRequest) -> AppResult<(String, String)> {
    let queue_id = non_blank(request.queue_id.clone())
        .ok_or_else(|| AppError::Validation("The queueId field must be specified.".into()))?;
    let puller = non_blank(request.puller.clone())
        .ok_or_else(|| AppError::Validation("The puller field must be specified.".into()))?;
    Ok((queue_id, puller))
}

/// POST `extendLease`: the holder's heartbeat. 409 when the lease is held
/// by another puller, or expired and was claimed again meanwhile.
pub async fn extend_lease(store: &dyn Store, queue: &dyn Queue, caller: &Caller, body: Value) -> AppResult<Lease> {
    let request: LeaseRequest = typed(body)?;
    let (queue_id, puller) = lease_target(&request)?;
    let lease_ms = lease_ms(request.lease_ms)?;
    let entry = owned_entry(store, queue, caller, &queue_id).await?;
    let entry = queue::extend(queue, &entry, &puller, request.deliveries, lease_ms).await?;
    Ok(Lease {
        fencing_token: fence::token_of(&entry),
        agenda_id: entry.agenda_id.unwrap_or_default(),
        queue_id,
        lease_expires: entry.lease_expires.unwrap_or_default(),
        deliveries: entry.deliveries.unwrap_or_default(),
        attempt: None,
        namespace: None,
    })
}

/// POST `ackAgenda`: the holder is done with the agenda (succeeded, or
/// failed for good); its queue entry goes. Same 409s as `extendLease`.
pub async fn ack_agenda(store: &dyn Store, queue: &dyn Queue, caller: &Caller, body: Value) -> AppResult<()> {
    let request: LeaseRequest = typed(body)?;
    let (queue_id, puller) = lease_target(&request)?;
    let entry = owned_entry(store, queue, caller, &queue_id).await?;
    queue::acknowledge(queue, &entry, &puller, request.deliveries).await
}

/// POST `updateAgendaProgress`: an executor's progress report. Only the
/// fields an executor owns are taken from the request; the update is then
/// applied exactly as `PUT /pop/progress/agenda/{id}` does (operation rows
/// fanned out, completed attempts counted), as the service user once the
/// caller is authorized.
pub async fn update_agenda_progress(
    store: &dyn Store,
    caller: &Caller,
    body: Value,
    cid: &str,
    now: EpochMillis,
) -> AppResult<()> {
    let request: UpdateAgendaProgressRequest = typed(body)?;
    let given = request
        .agenda_progress
        .ok_or_else(|| AppError::Validation("The agendaProgress field must be specified.".into()))?;
    let id = non_blank(given.envelope.id.clone())
        .ok_or_else(|| AppError::Validation("The agendaProgress.id field must be specified.".into()))?;
    let hidden = || AppError::NotFound(format!("AgendaProgress {id} was not found or is not visible"));
    let stored = store.get(ObjectKind::AgendaProgress, &id).await?.ok_or_else(hidden)?;
    if !may_work_on(store, caller, str_field(&stored, "customerId"), insight_id_of(&stored)).await? {
        return Err(hidden());
    }
    let mut update = AgendaProgress {
        percent_complete: given.percent_complete,
        diagnostic_events: given.diagnostic_events,
        operation_progress: given.operation_progress,
        processing_state: given.processing_state,
        processing_state_message: given.processing_state_message,
        started_time: given.started_time,
        completed_time: given.completed_time,
        ..Default::default()
    };
    update.envelope.id = Some(id.clone());
    update.envelope.customer_id = str_field(&stored, "customerId").map(String::from);
    update.envelope.cid = given.envelope.cid;
    let body = Value::Object(to_document(&update)?);
    let guard = request.fencing_token.as_deref().map(|token| fence::guard(&id, token));
    match progress::update_guarded(store, &Caller::service(), Some(&id), body, cid, now, guard.as_ref()).await {
        Ok(_) => Ok(()),
        Err(AppError::Conflict(_)) if guard.is_some() => Err(AppError::Conflict(format!(
            "AgendaProgress {id} is held by another delivery: fencingToken {} is no longer current",
            request.fencing_token.unwrap_or_default()
        ))),
        Err(e) => Err(e),
    }
}

/// POST `updateAgenda`: append generated operations (with WAITING progress
/// rows) and merge params into the agenda and its progress, in one atomic
/// write. The agenda write is guarded by the operations it was read with,
/// so two generators appending at once cannot lose each other's work (the
/// loser gets 409 and retries).
pub async fn update_agenda(store: &dyn Store, caller: &Caller, body: Value, now: EpochMillis) -> AppResult<Document> {
    let request: UpdateAgendaRequest = typed(body)?;
    let agenda_id = non_blank(request.agenda_id)
        .ok_or_else(|| AppError::Validation("The agendaId field must be specified.".into()))?;
    let added = request
        .operations
        .filter(|ops| !ops.is_empty())
        .ok_or_else(|| AppError::Validation("The operations field must list at least one operation.".into()))?;
    let not_found = || AppError::NotFound(format!("Agenda {agenda_id} not found"));
    let stored = store.get(ObjectKind::Agenda, &agenda_id).await?.ok_or_else(not_found)?;
    if !may_work_on(store, caller, str_field(&stored, "customerId"), insight_id_of(&stored)).await? {
        return Err(not_found());
    }
    let read_operations = stored.get("operations").cloned().unwrap_or(Value::Null);
    let mut agenda: Agenda = from_document(stored)?;
    let customer_id = agenda.envelope.customer_id.clone().unwrap_or_default();
    let progress_missing = || AppError::NotFound(format!("AgendaProgress of Agenda {agenda_id} not found"));
    let progress_id = agenda.progress_id.clone().ok_or_else(progress_missing)?;
    // Loaded as the agenda's customer: a progress of another customer is
    // not this agenda's.
    let progress = store
        .get(ObjectKind::AgendaProgress, &progress_id)
        .await?
        .filter(|p| str_field(p, "customerId") == Some(customer_id.as_str()))
        .ok_or_else(progress_missing)?;

    agenda.operations.get_or_insert_default().extend(added.iter().cloned());
    if let Some(params) = &request.params {
        agenda.params.get_or_insert_default().merge(params);
    }
    // The combined agenda must still be one: unique names, references to
    // existing operations, no cycle.
    validate_agenda(&agenda).map_err(|e| AppError::Validation(e.to_string()))?;

    let cid = agenda.envelope.cid.clone().unwrap_or_default();
    let mut agenda_patch = Document::new();
    agenda_patch.insert("operations".into(), json!(agenda.operations));
    if request.params.is_some() {
        agenda_patch.insert("params".into(), json!(agenda.params));
    }
    agenda_patch.insert("updatedTime".into(), json!(now));
    let mut writes = vec![Write::merge_if(
        ObjectKind::Agenda,
        agenda_id.clone(),
        Expect::field("operations", read_operations),
        agenda_patch,
    )];
    if let Some(params) = &request.params {
        let mut merged: ParamsMap = progress
            .get("params")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| AppError::Internal(format!("stored progress params are not an object: {e}")))?
            .unwrap_or_default();
        merged.merge(params);
        let patch = json!({"params": merged, "updatedTime": now});
        writes.push(Write::merge(
            ObjectKind::AgendaProgress,
            progress_id.clone(),
            patch.as_object().cloned().unwrap_or_default(),
        ));
    }
    let mut rows = Vec::with_capacity(added.len());
    for op in &added {
        let row = new_operation_progress(&progress_id, op.name(), &customer_id, &cid, op.params.clone(), now);
        rows.push(typed::put(&row)?);
    }
    // The agenda (guarded on the operations read) first when the rows do
    // not fit with it: a cut leaves operations without a WAITING row, which
    // the executor writes whole when it records them, never rows of
    // operations the agenda does not have.
    let stored = write_parts(store, vec![Part::Atomic(writes), Part::Chunked(rows)]).await?;
    stored
        .into_iter()
        .next()
        .and_then(|head| head.into_iter().next().flatten())
        .ok_or_else(|| AppError::Internal("updating the agenda returned nothing".into()))
}

/// POST `createAgenda`: submit each agenda as its own customer, bound only
/// to an insight the caller owns (and the customer may use). Agendas that
/// fail are reported together, beside the ones created.
pub async fn create_agenda(
    store: &dyn Store,
    plugins: &PluginHost,
    caller: &Caller,
    body: Value,
    cid: &str,
) -> AppResult<Creation> {
    if caller.insights.is_some() {
        return Err(AppError::Forbidden(
            "A token scoped to insights runs their agendas; it cannot create agendas.".into(),
        ));
    }
    let request: CreateAgendaRequest = typed(body)?;
    let mut creation = Creation::default();
    let mut refusals = String::new();
    for (index, value) in request.agendas.unwrap_or_default().into_iter().enumerate() {
        if value.is_null() {
            continue;
        }
        let outcome = async {
            let agenda: Agenda = typed(value).map_err(|e| AppError::Validation(format!("agendas[{index}]: {e}")))?;
            let customer = Caller::customer(agenda.envelope.customer_id.as_deref().unwrap_or_default());
            submit_agenda_in(store, plugins, &customer, agenda, cid, InsightScope::OwnedBy(caller)).await
        }
        .await;
        match outcome {
            Ok(agenda) => creation.agendas.push(agenda),
            Err(e) => refusals.push_str(&format!("[{} : {}]", e.title(), e)),
        }
    }
    if !refusals.is_empty() {
        creation.refused = Some(AppError::BadRequest(refusals));
    }
    Ok(creation)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pop_memory::{MemoryQueue, MemoryStore};
    use pop_ports::{Clock, ManualClock};

    use super::*;

    fn doc(value: Value) -> Document {
        value.as_object().cloned().unwrap_or_default()
    }

    /// A remote executor that lost its delivery (the lease ran out and
    /// another puller got the agenda) can no longer report progress; the
    /// current holder can, and so can a client sending no token (POP).
    #[tokio::test]
    async fn updates_with_a_stale_fencing_token_are_refused() {
        let clock = Arc::new(ManualClock::at(1_700_000_000_000));
        let store = MemoryStore::new();
        let queue = MemoryQueue::new(clock.clone());
        store
            .write(vec![
                Write::put(ObjectKind::Insight, doc(json!({"id": "work", "customerId": "acme"}))),
                Write::put(
                    ObjectKind::Agenda,
                    doc(json!({"id": "a1", "customerId": "acme", "progressId": "p1",
                        "agendaInsight": {"insightId": "work"}, "operations": []})),
                ),
                Write::put(
                    ObjectKind::AgendaProgress,
                    doc(json!({"id": "p1", "customerId": "acme", "agendaId": "a1", "processingState": "WAITING"})),
                ),
            ])
            .await
            .unwrap();
        let mut message = QueuedAgenda {
            insight_id: Some("work".into()),
            agenda_id: Some("a1".into()),
            ..Default::default()
        };
        message.envelope.id = Some("m1".into());
        queue.enqueue(vec![message]).await.unwrap();
        let root = Caller::new("root", [], true);
        let claim = json!({"insightId": "work", "count": 1, "leaseMs": 1000, "puller": "remote"});

        let first = get_agenda(&store, &queue, &root, claim.clone()).await.unwrap();
        let stale = first.leases[0].fencing_token.clone();
        let report = |token: Option<&str>, percent: f64| {
            let mut body = json!({"agendaProgress": {"id": "p1", "percentComplete": percent}});
            if let Some(token) = token {
                body["fencingToken"] = json!(token);
            }
            body
        };
        let now = clock.now_millis();
        update_agenda_progress(&store, &root, report(Some(&stale), 10.0), "cid", now)
            .await
            .expect("the current delivery reports");

        clock.advance(Duration::from_secs(2));
        let second = get_agenda(&store, &queue, &root, claim).await.unwrap();
        let current = second.leases[0].fencing_token.clone();
        assert_ne!(current, stale, "each delivery has its own token");
        let now = clock.now_millis();
        let refused = update_agenda_progress(&store, &root, report(Some(&stale), 20.0), "cid", now).await;
        match refused {
            Err(AppError::Conflict(message)) => assert!(message.contains("no longer current"), "{message}"),
            other => panic!("a stale delivery's update: expected 409, got {other:?}"),
        }
        update_agenda_progress(&store, &root, report(Some(&current), 30.0), "cid", now)
            .await
            .expect("the current delivery reports");
        let progress = store.get(ObjectKind::AgendaProgress, "p1").await.unwrap().unwrap();
        assert_eq!(progress["percentComplete"], 30.0, "the stale 20 % never landed");
        update_agenda_progress(&store, &root, report(None, 40.0), "cid", now)
            .await
            .expect("an update without a token applies, as in POP");
    }
}
