//! Agenda submission (spec §3.6): validate, bind to an insight, create the
//! progress records and the backlog row — in one atomic write, so a failed
//! submission leaves nothing behind (POP needed compensating deletes).

use pop_core::params::keys;
use pop_core::validation::validate_agenda;
use pop_core::visibility::Caller;
use pop_core::{
    Agenda, AgendaInsight, AgendaProgress, Customer, Insight, ObjectKind, ProcessingState, ReadyAgenda, WAITING_PENDING,
};
use pop_ports::{Document, Query, Store, Write};
use serde_json::json;

use crate::domain::batch::{Part, write_parts};
use crate::domain::body::{from_document, str_field, to_document, typed};
use crate::domain::progress::new_operation_progress;
use crate::domain::{new_id, typed};
use crate::error::{AppError, AppResult};
use crate::plugins::PluginHost;

/// POST `/pop/agenda`.
pub async fn submit(
    store: &dyn Store,
    plugins: &PluginHost,
    caller: &Caller,
    body: serde_json::Value,
    cid: &str,
) -> AppResult<Document> {
    let agenda: Agenda = typed(body)?;
    submit_agenda(store, plugins, caller, agenda, cid).await
}

/// Which insights a submission may be bound to.
#[derive(Debug, Clone, Copy)]
pub enum InsightScope<'a> {
    /// Those visible to the agenda's customer (spec §4.1).
    Customer,
    /// Of those, only the ones this caller owns strictly (global caller, or
    /// `insight.customerId` among its accounts): `createAgenda` lets a
    /// resource-pool component create agendas for customers, but only onto
    /// its own insights (spec §3.9).
    OwnedBy(&'a Caller),
}

impl InsightScope<'_> {
    fn admits(self, insight: &Insight) -> bool {
        match self {
            InsightScope::Customer => true,
            InsightScope::OwnedBy(owner) => owner.owns(insight.envelope.customer_id.as_deref()),
        }
    }
}

/// Submit a parsed agenda on behalf of `caller`.
pub async fn submit_agenda(
    store: &dyn Store,
    plugins: &PluginHost,
    caller: &Caller,
    agenda: Agenda,
    cid: &str,
) -> AppResult<Document> {
    submit_agenda_in(store, plugins, caller, agenda, cid, InsightScope::Customer).await
}

/// [`submit_agenda`], bound only to an insight `scope` admits.
pub async fn submit_agenda_in(
    store: &dyn Store,
    plugins: &PluginHost,
    caller: &Caller,
    mut agenda: Agenda,
    cid: &str,
    scope: InsightScope<'_>,
) -> AppResult<Document> {
    validate_agenda(&agenda).map_err(|e| AppError::Validation(e.to_string()))?;
    let customer_id = agenda.envelope.customer_id.clone().unwrap_or_default();
    // Checked before any lookup so that callers learn nothing about other
    // customers' pools and insights.
    if !caller.owns(Some(&customer_id)) {
        return Err(AppError::forbidden_customer(&customer_id));
    }
    let insight = choose_insight(store, plugins, &agenda, &customer_id, scope).await?;
    let now = plugins.now_millis();
    let envelope = &mut agenda.envelope;
    envelope.id = Some(new_id());
    if envelope.cid.as_deref().is_none_or(str::is_empty) {
        envelope.cid = Some(cid.to_string());
    }
    envelope.added_time = Some(now);
    envelope.updated_time = Some(now);
    let cid = envelope.cid.clone().unwrap_or_default();
    let insight_id = insight.envelope.id.clone().unwrap_or_default();
    agenda.agenda_insight = Some(AgendaInsight {
        resource_pool_id: insight.resource_pool_id.clone(),
        insight_id: Some(insight_id.clone()),
    });
    let params = agenda.params.get_or_insert_default().clone();

    // The head (progress, agenda, backlog row) makes the submission visible
    // and runnable; the operation rows hang off it. When they do not fit in
    // one atomic write with it, the rows go first: a cut before the head
    // leaves rows of a progress that no agenda names (nothing reads them;
    // the reclaimer removes them), never an agenda without its rows.
    let mut head = Vec::with_capacity(3);
    let progress = progress_for(&agenda, insight.maximum_attempts, &customer_id, &cid, now);
    let progress_id = match agenda.progress_id.clone().filter(|p| !p.is_empty()) {
        None => {
            let progress_id = new_id();
            let mut progress = progress;
            progress.envelope.id = Some(progress_id.clone());
            progress.envelope.added_time = Some(now);
            head.push(typed::create(&progress)?);
            progress_id
        }
        Some(existing) => {
            let stored = store.get(ObjectKind::AgendaProgress, &existing).await?;
            if stored.as_ref().and_then(|d| str_field(d, "customerId")) != Some(customer_id.as_str()) {
                return Err(AppError::Validation(format!(
                    "AgendaProgress {existing} not found for reuse"
                )));
            }
            head.push(Write::merge(
                ObjectKind::AgendaProgress,
                existing.clone(),
                to_document(&progress)?,
            ));
            existing
        }
    };
    agenda.progress_id = Some(progress_id.clone());
    let mut rows = Vec::with_capacity(agenda.operations().len());
    for op in agenda.operations() {
        let op_progress = new_operation_progress(&progress_id, op.name(), &customer_id, &cid, op.params.clone(), now);
        rows.push(typed::put(&op_progress)?);
    }
    let agenda_index = head.len();
    let agenda_doc = to_document(&agenda)?;
    // After template expansion a document can nest deeper than any request
    // body could: refuse it here, naming the limit, rather than store what
    // clients could not parse back.
    store
        .document_limits(ObjectKind::Agenda)
        .check_depth(ObjectKind::Agenda, &agenda_doc)?;
    head.push(Write::create(ObjectKind::Agenda, agenda_doc));
    if !params.contains_key(keys::DO_NOT_RUN) {
        head.push(Write::create(
            ObjectKind::ReadyAgenda,
            ready_agenda(&agenda, &insight_id, now)?,
        ));
    }
    let stored = write_parts(store, vec![Part::Chunked(rows), Part::Atomic(head)]).await?;
    stored
        .into_iter()
        .nth(1)
        .unwrap_or_default()
        .into_iter()
        .nth(agenda_index)
        .flatten()
        .ok_or_else(|| AppError::Internal("submission returned no agenda".into()))
}

/// The WAITING progress of a newly submitted agenda (without id).
/// Its `maximumAttempts` is the agenda's, else the insight's default, else
/// one (no automatic retry).
fn progress_for(
    agenda: &Agenda,
    insight_attempts: Option<i64>,
    customer_id: &str,
    cid: &str,
    now: i64,
) -> AgendaProgress {
    let params = agenda.params.clone().unwrap_or_default();
    let mut progress = AgendaProgress {
        agenda_id: agenda.envelope.id.clone(),
        link_id: agenda.link_id.clone(),
        external_id: params.get_string(keys::EXTERNAL_ID),
        processing_state: Some(ProcessingState::Waiting),
        processing_state_message: Some(WAITING_PENDING.into()),
        percent_complete: Some(0.0),
        attempts_completed: Some(0),
        maximum_attempts: Some(pop_core::retry::maximum_attempts(
            params.get_long(keys::MAXIMUM_ATTEMPTS),
            insight_attempts,
        )),
        agenda_insight: agenda.agenda_insight.clone(),
        params: Some(params),
        ..Default::default()
    };
    let env = &mut progress.envelope;
    env.customer_id = Some(customer_id.into());
    env.cid = Some(cid.into());
    env.title = agenda.envelope.title.clone();
    env.updated_time = Some(now);
    progress
}

/// The backlog row that makes `agenda` schedulable on `insight_id`.
pub fn ready_agenda(agenda: &Agenda, insight_id: &str, now: i64) -> AppResult<Document> {
    let mut ready = ReadyAgenda {
        insight_id: Some(insight_id.into()),
        agenda_id: agenda.envelope.id.clone(),
        added: Some(now),
        priority: agenda.params.as_ref().and_then(|p| p.get_long(keys::PRIORITY)),
        ..Default::default()
    };
    let customer_id = agenda.envelope.customer_id.as_deref().unwrap_or_default();
    ready.envelope.id = Some(new_id());
    ready.envelope.customer_id = Some(customer_id.into());
    let mut doc = to_document(&ready)?;
    doc.insert("addedTime".into(), json!(now));
    Ok(doc)
}

/// The insight of spec §4.1 for `agenda`, seen as its customer, among
/// those `scope` admits.
async fn choose_insight(
    store: &dyn Store,
    plugins: &PluginHost,
    agenda: &Agenda,
    customer_id: &str,
    scope: InsightScope<'_>,
) -> AppResult<Insight> {
    let customer = store
        .get(ObjectKind::Customer, customer_id)
        .await?
        .filter(|doc| str_field(doc, "customerId") == Some(customer_id))
        .ok_or_else(|| AppError::Validation(format!("Customer not found for customerId {customer_id}")))?;
    let customer: Customer = from_document(customer)?;
    let no_insight = || AppError::NotFound("No available insights for processing agenda".into());
    let pool = customer
        .resource_pool_id
        .clone()
        .filter(|p| !p.is_empty())
        .ok_or_else(no_insight)?;
    let candidates = store
        .query(ObjectKind::Insight, &Query::by("resourcePoolId", pool), None)
        .await?;
    let mut candidates: Vec<Insight> = candidates.into_iter().map(from_document).collect::<AppResult<_>>()?;
    candidates.retain(|insight| scope.admits(insight));
    plugins
        .select_insight(&customer, agenda, candidates)
        .await?
        .ok_or_else(no_insight)
}
