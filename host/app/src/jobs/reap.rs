//! The data reaper (spec §6.3, fixed): completed agendas older than the
//! retention are deleted with their progress and operation progress, as
//! one unit, by completion time.
//!
//! POP reaped each table by `updatedTime` alone and could delete an agenda
//! that was still queued. Here live work is never deleted: an agenda in a
//! backlog, in a queue (waiting or leased), not COMPLETE, or with a retry
//! pending is kept whatever its age.
//!
//! Order, and what each cut leaves: (1) the progress and the agenda, in one
//! write conditional on the progress still being COMPLETE with the
//! delivery token read (a rerun meanwhile changed the token: nothing is
//! deleted); (2) the operation progress rows, in chunks. A cut after (1)
//! leaves operation rows of no progress, which nothing reads and the
//! reclaimer deletes.

use pop_core::ObjectKind;
use pop_core::retry::fields;
use pop_ports::{Document, Expect, Filter, Query, StoreError, Write};
use serde_json::Value;

use super::{Budget, JobSettings, Jobs, Report};
use crate::domain::batch::{Part, write_parts};
use crate::domain::body::str_field;
use crate::domain::fence;
use crate::domain::objects::{ids_of, operation_progress_of};
use crate::error::AppResult;

const WALK: &str = "reap";

/// The completed progress documents old enough to reap: completed before
/// `cutoff` (by `updatedTime` when POP's writer left no `completedTime`),
/// and with no retry pending.
pub fn reapable(cutoff: i64) -> Filter {
    let completed_before = Filter::Any(vec![
        Filter::AtMost("completedTime".into(), cutoff),
        Filter::All(vec![
            Filter::Missing("completedTime".into()),
            Filter::AtMost("updatedTime".into(), cutoff),
        ]),
    ]);
    let retry_pending = Filter::equals(fields::STATE, fields::PENDING);
    Filter::All(vec![completed_before, Filter::Not(Box::new(retry_pending))])
}

pub(super) async fn run(jobs: &Jobs, settings: &JobSettings, mut budget: Budget) -> AppResult<Report> {
    let mut report = Report::new(super::Job::Reap, settings.log_only);
    let complete = Query::by("processingState", "COMPLETE");
    let retention = i64::try_from(jobs.config.retention.as_millis()).unwrap_or(i64::MAX);
    let mut from = jobs.cursor(WALK);
    while let Some(page_size) = budget.next_page(jobs.now()) {
        let cutoff = jobs.now().saturating_sub(retention);
        let page = jobs
            .store
            .scan(
                ObjectKind::AgendaProgress,
                &complete,
                Some(reapable(cutoff)),
                from.as_ref(),
                page_size,
            )
            .await?;
        report.examined += page.docs.len() as u64;
        budget.spend(page_size).await;
        for progress in &page.docs {
            reap_one(jobs, settings, progress, &mut report).await?;
        }
        from = page.next;
        if from.is_none() {
            break;
        }
    }
    report.complete = from.is_none();
    jobs.keep_cursor(WALK, from);
    if !settings.log_only {
        let finished_before = jobs.now().saturating_sub(retention);
        for launcher in &jobs.launchers {
            match launcher.reap_leftovers(finished_before).await {
                Ok(0) => {}
                Ok(removed) => report.acted(format!(
                    "removed {removed} leftover(s) of finished {} runs",
                    launcher.name()
                )),
                Err(e) => report.failed(format!("{} leftovers: {e}", launcher.name())),
            }
        }
    }
    Ok(report)
}

/// Why an agenda must be kept, if it must.
pub async fn still_live(jobs: &Jobs, agenda_id: &str) -> AppResult<Option<&'static str>> {
    if agenda_id.is_empty() {
        return Ok(None);
    }
    let backlog = jobs
        .store
        .count(ObjectKind::ReadyAgenda, &Query::by("agendaId", agenda_id), None)
        .await?;
    if backlog > 0 {
        return Ok(Some("in a backlog"));
    }
    if !jobs.queue.of_agenda(agenda_id).await?.is_empty() {
        return Ok(Some("queued or leased"));
    }
    Ok(None)
}

async fn reap_one(jobs: &Jobs, settings: &JobSettings, progress: &Document, report: &mut Report) -> AppResult<()> {
    let progress_id = str_field(progress, "id").unwrap_or_default().to_owned();
    let agenda_id = str_field(progress, "agendaId").unwrap_or_default().to_owned();
    if still_live(jobs, &agenda_id).await?.is_some() {
        return Ok(());
    }
    if settings.log_only {
        report.acted(format!(
            "would delete agenda {agenda_id} with its progress {progress_id}"
        ));
        return Ok(());
    }
    // (1) The unit's head: the progress, while still COMPLETE and held by
    // the delivery read, and its agenda.
    let token = progress.get(fence::FIELD).cloned().unwrap_or(Value::Null);
    let guard = Expect::field("processingState", "COMPLETE").and(fence::FIELD, token);
    let mut head = vec![Write::delete_if(ObjectKind::AgendaProgress, progress_id.clone(), guard)];
    if let Some(agenda) = jobs.store.get(ObjectKind::Agenda, &agenda_id).await?
        && str_field(&agenda, "progressId") == Some(progress_id.as_str())
    {
        head.push(Write::delete_if(
            ObjectKind::Agenda,
            agenda_id.clone(),
            Expect::field("progressId", progress_id.clone()),
        ));
    }
    match jobs.store.write(head).await {
        Ok(_) => {}
        // Rerun, or reaped by another process, meanwhile: not ours to delete.
        Err(StoreError::ConditionFailed { .. } | StoreError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    // (2) Its operation rows.
    let rows = operation_progress_of(jobs.store.as_ref(), &progress_id).await?;
    let deletes: Vec<Write> = ids_of(&rows)
        .map(|id| Write::delete(ObjectKind::OperationProgress, id))
        .collect();
    let count = deletes.len();
    write_parts(jobs.store.as_ref(), vec![Part::Chunked(deletes)]).await?;
    // The outcome it was deleted with, for whoever audits the reaper.
    let text = |field: &str| str_field(progress, field).unwrap_or_default().to_owned();
    let attempts = progress.get("attemptsCompleted").and_then(Value::as_i64).unwrap_or(0);
    report.acted(format!(
        "deleted agenda {agenda_id} (COMPLETE {}, {attempts} attempt(s), retryState {:?}), its progress {progress_id} and {count} operation progress row(s)",
        text("processingStateMessage"),
        text(fields::STATE),
    ));
    Ok(())
}
