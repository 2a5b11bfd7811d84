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
//!
//! Then plugin versions past the retention that no activation or rollback
//! can reach, and what the launchers left behind (report files, finished
//! pods).

use pop_core::retry::fields;
use pop_core::{ObjectKind, PluginActivation, PluginVersion};
use pop_ports::{Document, Expect, Filter, Launcher, Query, StoreError, Write};
use serde_json::Value;

use super::{Budget, JobSettings, Jobs, Report};
use crate::domain::batch::{Part, write_parts};
use crate::domain::body::{from_document, str_field};
use crate::domain::fence;
use crate::domain::objects::{ids_of, operation_progress_of};
use crate::error::AppResult;
use crate::plugins::BUILTIN_OWNER;

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

pub(super) async fn run(jobs: &Jobs, settings: &JobSettings, budget: Budget) -> AppResult<Report> {
    let mut report = Report::new(super::Job::Reap, settings.log_only);
    let complete = Query::by("processingState", "COMPLETE");
    let retention = i64::try_from(jobs.config.retention.as_millis()).unwrap_or(i64::MAX);
    let reapable_now = || Some(reapable(jobs.now().saturating_sub(retention)));
    report.complete = walk!(
        jobs,
        WALK,
        ObjectKind::AgendaProgress,
        complete,
        reapable_now(),
        budget,
        report,
        |progress| {
            reap_one(jobs, settings, progress, &mut report).await?;
        }
    );
    let cutoff = jobs.now().saturating_sub(retention);
    // A share of its own, so that a long agenda walk never starves it.
    let plugin_budget = Budget {
        documents: (settings.batch / 10).max(10),
        ..budget
    };
    plugin_versions(jobs, settings, plugin_budget, cutoff, &mut report).await?;
    if !settings.log_only {
        for launcher in &jobs.launchers {
            launcher_leftovers(jobs, launcher.as_ref(), cutoff, &mut report).await?;
        }
    }
    Ok(report)
}

/// Plugin versions uploaded before `cutoff` that are neither active nor in
/// their slot's activation history (so no rollback can reach them), with
/// their binary once no version uses it. The built-ins are never reaped.
/// The deletion is guarded by the slot's activation as read: an activation
/// meanwhile keeps the version.
async fn plugin_versions(
    jobs: &Jobs,
    settings: &JobSettings,
    mut budget: Budget,
    cutoff: i64,
    report: &mut Report,
) -> AppResult<()> {
    const PLUGINS: &str = "reap-plugins";
    let old = Filter::AtMost("addedTime".into(), cutoff);
    let mut from = jobs.cursor(PLUGINS);
    while let Some(page_size) = budget.next_page(jobs.now()) {
        let page = jobs
            .store
            .scan(
                ObjectKind::Plugin,
                &Query::all(),
                Some(old.clone()),
                from.as_ref(),
                page_size,
            )
            .await?;
        report.examined += page.docs.len() as u64;
        budget.spend(page_size).await;
        for doc in &page.docs {
            let Ok(version) = from_document::<PluginVersion>(doc.clone()) else {
                continue;
            };
            let (Some(owner), Some(kind), Some(name), Some(label)) = (
                version.envelope.customer_id.as_deref(),
                version.plugin_kind,
                version.name.as_deref(),
                version.version.as_deref(),
            ) else {
                continue;
            };
            if owner == BUILTIN_OWNER {
                continue;
            }
            let id = version.envelope.id.clone().unwrap_or_default();
            let slot = PluginVersion::slot_id(owner, kind, name);
            let activation = jobs.store.get(ObjectKind::PluginActivation, &slot).await?;
            let reachable = activation.as_ref().is_some_and(|a| {
                let a: PluginActivation = from_document(a.clone()).unwrap_or_default();
                a.active_version.as_deref() == Some(label) || a.history.unwrap_or_default().iter().any(|v| v == label)
            });
            if reachable {
                continue;
            }
            if settings.log_only {
                report.acted(format!(
                    "would delete plugin version {id}: neither active nor in its slot's history"
                ));
                continue;
            }
            let mut writes = vec![Write::delete(ObjectKind::Plugin, id.clone())];
            if let Some(activation) = &activation {
                let read = activation.get("updatedTime").cloned().unwrap_or(Value::Null);
                writes.push(Write::merge_if(
                    ObjectKind::PluginActivation,
                    slot.clone(),
                    Expect::field("updatedTime", read),
                    Document::new(),
                ));
            }
            match jobs.store.write(writes).await {
                Ok(_) => {}
                Err(StoreError::ConditionFailed { .. } | StoreError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            let sha = version.sha256.clone().unwrap_or_default();
            let shared = Filter::equals("sha256", sha.clone());
            let still_used = jobs
                .store
                .count(ObjectKind::Plugin, &Query::all(), Some(shared))
                .await?
                > 0;
            let mut line = format!("deleted plugin version {id}: neither active nor in its slot's history");
            if !still_used
                && !sha.is_empty()
                && let Some(blobs) = &jobs.blobs
            {
                match blobs.delete(&sha).await {
                    Ok(_) => line.push_str(", with its binary"),
                    Err(e) => report.failed(format!("plugin binary {sha}: {e}")),
                }
            }
            report.acted(line);
        }
        from = page.next;
        if from.is_none() {
            break;
        }
    }
    jobs.keep_cursor(PLUGINS, from);
    Ok(())
}

/// What `launcher` keeps of agendas untouched since `cutoff` that are
/// finished (COMPLETE, no retry pending, in no backlog or queue) or gone
/// is forgotten; then its finished runs past the cutoff are reaped (pods).
async fn launcher_leftovers(jobs: &Jobs, launcher: &dyn Launcher, cutoff: i64, report: &mut Report) -> AppResult<()> {
    let kept = match launcher.kept_agendas().await {
        Ok(kept) => kept,
        Err(e) => {
            report.failed(format!("{} leftovers: {e}", launcher.name()));
            Vec::new()
        }
    };
    for (agenda_id, touched) in kept {
        if touched > cutoff || !finished_or_gone(jobs, &agenda_id).await? {
            continue;
        }
        launcher.forget_agenda(&agenda_id).await;
        report.acted(format!(
            "removed what the {} launcher kept of agenda {agenda_id}",
            launcher.name()
        ));
    }
    match launcher.reap_leftovers(cutoff).await {
        Ok(0) => {}
        Ok(removed) => report.acted(format!("removed {removed} finished {} run(s)", launcher.name())),
        Err(e) => report.failed(format!("{} leftovers: {e}", launcher.name())),
    }
    Ok(())
}

/// Whether nothing will run `agenda_id` again: it is gone, or COMPLETE
/// with no retry pending and in no backlog or queue.
async fn finished_or_gone(jobs: &Jobs, agenda_id: &str) -> AppResult<bool> {
    let Some(agenda) = jobs.store.get(ObjectKind::Agenda, agenda_id).await? else {
        return Ok(true);
    };
    let Some(progress_id) = str_field(&agenda, "progressId") else {
        return Ok(true);
    };
    let Some(progress) = jobs.store.get(ObjectKind::AgendaProgress, progress_id).await? else {
        return Ok(true);
    };
    let complete = str_field(&progress, "processingState") == Some("COMPLETE")
        && str_field(&progress, fields::STATE) != Some(fields::PENDING);
    Ok(complete && still_live(jobs, agenda_id).await?.is_none())
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
    // Said before the write, so that a crash right after it cannot hide
    // which agenda went with which outcome (for whoever audits the reaper).
    let text = |field: &str| str_field(progress, field).unwrap_or_default().to_owned();
    let attempts = progress.get("attemptsCompleted").and_then(Value::as_i64).unwrap_or(0);
    let outcome = format!(
        "COMPLETE {}, {attempts} attempt(s), retryState {:?}",
        text("processingStateMessage"),
        text(fields::STATE)
    );
    tracing::info!(
        job = "reap",
        "reaping agenda {agenda_id} ({outcome}) with its progress {progress_id}"
    );
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
    report.acted(format!(
        "deleted agenda {agenda_id} ({outcome}), its progress {progress_id} and {count} operation progress row(s)"
    ));
    Ok(())
}
