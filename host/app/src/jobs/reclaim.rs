//! The reclaimer (spec §6.1, fixed): finds every state that no lease and no
//! loop will ever move again, and moves it, saying why.
//!
//! POP failed EXECUTING agendas whose progress had not changed for five
//! minutes and never looked at WAITING ones, so an agenda lost after its
//! dequeue stayed WAITING forever. Here a lease covers whatever is in a
//! queue (an executor that died lets its lease run out and the agenda is
//! delivered again), and the reclaimer covers the rest. Its rules, each a
//! walk of its own with a cursor kept between runs:
//!
//! | walk | finds | does |
//! |---|---|---|
//! | `active` | progress WAITING or EXECUTING, unchanged for `reclaim_after`, whose agenda is in neither a backlog nor a queue (a rerun cut before its backlog row; an entry an operator removed; an executor that lost its entry) | requeues it (a backlog row, the progress WAITING with a diagnostic); fails it when its agenda or insight is gone |
//! | `backlog` | backlog rows whose insight was deleted, or whose agenda is gone | fails the agenda saying so and removes the row; removes the row of an agenda that is gone |
//! | `queue` | queue entries delivered more than `max_deliveries` times (poison), or whose agenda is gone | fails the agenda with a diagnostic instead of running it again; removes the entry |
//! | `orphans` | operation progress rows, unchanged for `reclaim_after`, of no agenda progress (a large submission cut before its head, a reaper cut after it) | deletes them |
//!
//! Every action is a write conditional on what was read (the progress's
//! `updatedTime`, state and delivery token), so a reclaimer racing a
//! release, a completion or another reclaimer does nothing twice and never
//! undoes progress.

use std::collections::HashMap;

use pop_core::{Agenda, ObjectKind};
use pop_ports::{Document, Expect, Filter, Query, StoreError, Write};
use serde_json::{Value, json};

use super::{Budget, JobSettings, Jobs, Report};
use crate::domain::body::{from_document, str_field};
use crate::domain::fence;
use crate::error::AppResult;
use crate::services::submission::ready_agenda;

/// The walks, in the order a run takes them; each gets a share of the
/// run's budget.
const WALKS: [&str; 5] = [
    "reclaim-executing",
    "reclaim-waiting",
    "reclaim-backlog",
    "reclaim-queue",
    "reclaim-orphans",
];

pub(super) async fn run(jobs: &Jobs, settings: &JobSettings, budget: Budget) -> AppResult<Report> {
    let mut report = Report::new(super::Job::Reclaim, settings.log_only);
    let share = Budget {
        documents: (budget.documents / WALKS.len()).max(1),
        ..budget
    };
    let mut complete = true;
    for walk in WALKS {
        let done = match walk {
            "reclaim-executing" => active(jobs, settings, share, walk, "EXECUTING", &mut report).await?,
            "reclaim-waiting" => active(jobs, settings, share, walk, "WAITING", &mut report).await?,
            "reclaim-backlog" => backlog(jobs, settings, share, &mut report).await?,
            "reclaim-queue" => queue(jobs, settings, share, &mut report).await?,
            _ => orphans(jobs, settings, share, &mut report).await?,
        };
        complete &= done;
    }
    report.complete = complete;
    Ok(report)
}

/// The cutoff of `reclaim_after`: what changed later is left alone.
fn quiet_since(jobs: &Jobs) -> i64 {
    let after = i64::try_from(jobs.config.reclaim_after.as_millis()).unwrap_or(i64::MAX);
    jobs.now().saturating_sub(after)
}

/// Rule `active`: WAITING/EXECUTING progress that nothing will run.
async fn active(
    jobs: &Jobs,
    settings: &JobSettings,
    budget: Budget,
    walk: &'static str,
    state: &str,
    report: &mut Report,
) -> AppResult<bool> {
    let query = Query::by("processingState", state);
    let quiet = Filter::AbsentOrAtMost("updatedTime".into(), quiet_since(jobs));
    Ok(walk!(
        jobs,
        walk,
        ObjectKind::AgendaProgress,
        query,
        Some(quiet.clone()),
        budget,
        report,
        |progress| {
            reclaim_active(jobs, settings, progress, report).await?;
        }
    ))
}

/// What the `active` rule does with one progress document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActiveVerdict {
    /// A backlog row or a queue entry will move it, or it is not to run.
    Covered,
    /// Nothing will: put it back in its insight's backlog.
    Requeue { insight_id: String },
    /// Nothing can: fail it, saying why.
    Fail { why: String },
}

/// Decides the `active` rule for `progress` from what the store and queue
/// hold now.
pub async fn judge_active(jobs: &Jobs, progress: &Document) -> AppResult<(ActiveVerdict, Option<Agenda>)> {
    let agenda_id = str_field(progress, "agendaId").unwrap_or_default();
    let agenda = match jobs.store.get(ObjectKind::Agenda, agenda_id).await? {
        Some(agenda) => from_document::<Agenda>(agenda)?,
        None => {
            let why = format!("its agenda {agenda_id} no longer exists");
            return Ok((ActiveVerdict::Fail { why }, None));
        }
    };
    // Agendas that are not to run: submitted with `doNotRun`, or reset by
    // a rerun with `skipExecution` (it starts no attempt).
    let do_not_run = agenda
        .params
        .as_ref()
        .is_some_and(|p| p.contains_key(pop_core::params::keys::DO_NOT_RUN));
    let reset_only =
        str_field(progress, "rerunAttempt") == Some("") && str_field(progress, "processingState") == Some("WAITING");
    if do_not_run || reset_only {
        return Ok((ActiveVerdict::Covered, Some(agenda)));
    }
    // The backlog first, then the queue: a release enqueues before it
    // removes the row, so an agenda between the two is seen in one of them.
    let backlog = jobs
        .store
        .count(ObjectKind::ReadyAgenda, &Query::by("agendaId", agenda_id), None)
        .await?;
    if backlog > 0 || !jobs.queue.of_agenda(agenda_id).await?.is_empty() {
        return Ok((ActiveVerdict::Covered, Some(agenda)));
    }
    let insight_id = agenda
        .agenda_insight
        .as_ref()
        .and_then(|i| i.insight_id.clone())
        .unwrap_or_default();
    let verdict = if jobs.store.get(ObjectKind::Insight, &insight_id).await?.is_some() {
        ActiveVerdict::Requeue { insight_id }
    } else {
        ActiveVerdict::Fail {
            why: format!("its insight {insight_id:?} no longer exists"),
        }
    };
    Ok((verdict, Some(agenda)))
}

async fn reclaim_active(
    jobs: &Jobs,
    settings: &JobSettings,
    progress: &Document,
    report: &mut Report,
) -> AppResult<()> {
    let (verdict, agenda) = judge_active(jobs, progress).await?;
    let progress_id = str_field(progress, "id").unwrap_or_default().to_owned();
    let agenda_id = str_field(progress, "agendaId").unwrap_or_default().to_owned();
    let state = str_field(progress, "processingState").unwrap_or_default().to_owned();
    let since = progress.get("updatedTime").cloned().unwrap_or(Value::Null);
    let now = jobs.now();
    // Applies only while the progress is as read: a release, a completion
    // or another reclaimer that moved it first wins.
    let as_read = Expect::field("updatedTime", since.clone())
        .and("processingState", state.clone())
        .and(fence::FIELD, progress.get(fence::FIELD).cloned().unwrap_or(Value::Null));
    let line = match &verdict {
        ActiveVerdict::Covered => return Ok(()),
        ActiveVerdict::Requeue { insight_id } => format!(
            "agenda {agenda_id} was {state} since {since} with no queue entry or backlog row: requeued on insight {insight_id}"
        ),
        ActiveVerdict::Fail { why } => format!("agenda {agenda_id} was {state} since {since} and {why}: failed"),
    };
    if settings.log_only {
        report.acted(format!("would act: {line}"));
        return Ok(());
    }
    let mut writes = Vec::with_capacity(2);
    match (&verdict, agenda) {
        (ActiveVerdict::Requeue { insight_id }, Some(agenda)) => {
            let patch = json!({
                "processingState": "WAITING",
                "processingStateMessage": pop_core::WAITING_PENDING,
                "updatedTime": now,
                "diagnosticEvents": with_event(progress, &format!("Reclaimed: {line}."), now),
            });
            writes.push(Write::merge_if(
                ObjectKind::AgendaProgress,
                progress_id,
                as_read,
                object(patch),
            ));
            writes.push(Write::create(
                ObjectKind::ReadyAgenda,
                ready_agenda(&agenda, insight_id, now)?,
            ));
        }
        (ActiveVerdict::Fail { why }, _) => {
            writes.push(failure(progress, &format!("Reclaimed: {why}."), as_read, now));
        }
        _ => return Ok(()),
    }
    apply(jobs, writes, line, report).await
}

/// Rule `backlog`: rows whose insight or agenda is gone.
async fn backlog(jobs: &Jobs, settings: &JobSettings, budget: Budget, report: &mut Report) -> AppResult<bool> {
    let walk = "reclaim-backlog";
    let mut insights: HashMap<String, bool> = HashMap::new();
    Ok(walk!(
        jobs,
        walk,
        ObjectKind::ReadyAgenda,
        Query::all(),
        None,
        budget,
        report,
        |row| {
            let row_id = str_field(row, "id").unwrap_or_default().to_owned();
            let agenda_id = str_field(row, "agendaId").unwrap_or_default().to_owned();
            let insight_id = str_field(row, "insightId").unwrap_or_default().to_owned();
            let insight_exists = match insights.get(&insight_id) {
                Some(&exists) => exists,
                None => {
                    let exists = jobs.store.get(ObjectKind::Insight, &insight_id).await?.is_some();
                    insights.insert(insight_id.clone(), exists);
                    exists
                }
            };
            let agenda = jobs.store.get(ObjectKind::Agenda, &agenda_id).await?;
            let remove_row = Write::delete_if(
                ObjectKind::ReadyAgenda,
                row_id,
                Expect::field("agendaId", agenda_id.clone()),
            );
            let (line, writes) = match (agenda, insight_exists) {
                (None, _) => (
                    format!("backlog row of agenda {agenda_id}, which no longer exists: removed"),
                    vec![remove_row],
                ),
                (Some(agenda), false) => {
                    let agenda: Agenda = from_document(agenda)?;
                    let why =
                        format!("Reclaimed: its insight {insight_id} was deleted while it waited in the backlog.");
                    let mut writes = vec![remove_row];
                    if let Some(progress) = progress_of(jobs, &agenda).await? {
                        let as_read =
                            Expect::field(fence::FIELD, progress.get(fence::FIELD).cloned().unwrap_or(Value::Null));
                        writes.push(failure(&progress, &why, as_read, jobs.now()));
                    }
                    (
                        format!("agenda {agenda_id} waited on insight {insight_id}, which was deleted: failed"),
                        writes,
                    )
                }
                (Some(_), true) => continue,
            };
            if settings.log_only {
                report.acted(format!("would act: {line}"));
                continue;
            }
            apply(jobs, writes, line, report).await?;
        }
    ))
}

/// Rule `queue`: poison entries and entries of agendas that are gone.
async fn queue(jobs: &Jobs, settings: &JobSettings, budget: Budget, report: &mut Report) -> AppResult<bool> {
    let insights = jobs
        .store
        .query(ObjectKind::Insight, &Query::all().limit(budget.documents), None)
        .await?;
    let mut left = budget.documents;
    for insight in &insights {
        if left == 0 || jobs.now() >= budget.deadline {
            return Ok(false);
        }
        let insight_id = str_field(insight, "id").unwrap_or_default();
        let entries = jobs.queue.list(insight_id, left).await?;
        left = left.saturating_sub(entries.len().max(1));
        report.examined += entries.len() as u64;
        for entry in entries {
            let message_id = pop_ports::queue::message_id(&entry).to_owned();
            let agenda_id = entry.agenda_id.clone().unwrap_or_default();
            let deliveries = entry.deliveries.unwrap_or(0);
            let agenda = jobs.store.get(ObjectKind::Agenda, &agenda_id).await?;
            let line = match &agenda {
                None => format!("queue entry {message_id} of agenda {agenda_id}, which no longer exists: removed"),
                Some(_) if deliveries > i64::from(jobs.config.max_deliveries) => format!(
                    "agenda {agenda_id} was delivered {deliveries} times without completing (poison): failed and removed from insight {insight_id}'s queue"
                ),
                Some(_) => continue,
            };
            if settings.log_only {
                report.acted(format!("would act: {line}"));
                continue;
            }
            if let Some(agenda) = agenda {
                let agenda: Agenda = from_document(agenda)?;
                if let Some(progress) = progress_of(jobs, &agenda).await? {
                    let why = format!(
                        "Reclaimed: delivered {deliveries} times without completing (more than {}); failed instead of run again.",
                        jobs.config.max_deliveries
                    );
                    // A fresh token fences off whatever run of it still goes on.
                    let as_read =
                        Expect::field(fence::FIELD, progress.get(fence::FIELD).cloned().unwrap_or(Value::Null));
                    let mut fail = failure(&progress, &why, as_read, jobs.now());
                    if let Write::Merge { patch, .. } = &mut fail {
                        patch.insert(
                            fence::FIELD.into(),
                            json!(fence::rerun_token().replacen("rerun/", "reclaim/", 1)),
                        );
                    }
                    match jobs.store.write(vec![fail]).await {
                        Ok(_) => {}
                        Err(StoreError::ConditionFailed { .. }) => continue,
                        Err(e) => {
                            report.failed(format!("{line}: {e}"));
                            continue;
                        }
                    }
                }
            }
            match jobs.queue.remove(&message_id).await {
                Ok(()) => report.acted(line),
                Err(e) => report.failed(format!("{line}: {e}")),
            }
        }
    }
    Ok(true)
}

/// Rule `orphans`: operation progress rows of no agenda progress.
async fn orphans(jobs: &Jobs, settings: &JobSettings, budget: Budget, report: &mut Report) -> AppResult<bool> {
    let walk = "reclaim-orphans";
    let quiet = Filter::AbsentOrAtMost("updatedTime".into(), quiet_since(jobs));
    let mut parents: HashMap<String, bool> = HashMap::new();
    Ok(walk!(
        jobs,
        walk,
        ObjectKind::OperationProgress,
        Query::all(),
        Some(quiet.clone()),
        budget,
        report,
        |row| {
            let parent = str_field(row, "agendaProgressId").unwrap_or_default().to_owned();
            let exists = match parents.get(&parent) {
                Some(&exists) => exists,
                None => {
                    let exists = jobs.store.get(ObjectKind::AgendaProgress, &parent).await?.is_some();
                    parents.insert(parent.clone(), exists);
                    exists
                }
            };
            if exists {
                continue;
            }
            let row_id = str_field(row, "id").unwrap_or_default().to_owned();
            let line =
                format!("operation progress {row_id} of agenda progress {parent}, which does not exist: deleted");
            if settings.log_only {
                report.acted(format!("would act: {line}"));
                continue;
            }
            let delete = Write::delete_if(
                ObjectKind::OperationProgress,
                row_id,
                Expect::field("agendaProgressId", parent),
            );
            apply(jobs, vec![delete], line, report).await?;
        }
    ))
}

/// The agenda's progress document, if it has one.
async fn progress_of(jobs: &Jobs, agenda: &Agenda) -> AppResult<Option<Document>> {
    match agenda.progress_id.as_deref() {
        Some(id) => Ok(jobs.store.get(ObjectKind::AgendaProgress, id).await?),
        None => Ok(None),
    }
}

/// `progress` COMPLETE and failed with `why` added to its diagnostics,
/// while it holds `as_read`.
fn failure(progress: &Document, why: &str, as_read: Expect, now: i64) -> Write {
    let id = str_field(progress, "id").unwrap_or_default().to_owned();
    let attempts = progress.get("attemptsCompleted").and_then(Value::as_i64).unwrap_or(0);
    let patch = json!({
        "processingState": "COMPLETE",
        "processingStateMessage": "failed",
        "completedTime": now,
        "updatedTime": now,
        "attemptsCompleted": attempts + 1,
        "diagnosticEvents": with_event(progress, why, now),
    });
    Write::merge_if(ObjectKind::AgendaProgress, id, as_read, object(patch))
}

/// The progress's diagnostics with one more event.
fn with_event(progress: &Document, message: &str, now: i64) -> Value {
    let mut events = match progress.get("diagnosticEvents") {
        Some(Value::Array(events)) => events.clone(),
        _ => Vec::new(),
    };
    events.push(json!({"message": message, "time": now}));
    Value::Array(events)
}

fn object(value: Value) -> Document {
    value.as_object().cloned().unwrap_or_default()
}

/// Writes one action; a condition that no longer holds means someone else
/// moved the object first, which is not an error.
async fn apply(jobs: &Jobs, writes: Vec<Write>, line: String, report: &mut Report) -> AppResult<()> {
    match jobs.store.write(writes).await {
        Ok(_) => report.acted(line),
        Err(StoreError::ConditionFailed { .. } | StoreError::NotFound { .. } | StoreError::AlreadyExists { .. }) => {}
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => report.failed(format!("{line}: {e}")),
    }
    Ok(())
}
