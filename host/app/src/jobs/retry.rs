//! Automatic retry (spec §6.2, fixed): a failed agenda whose completion
//! left a retry pending ([`crate::domain::retry`]) is rerun with `continue`
//! once its `nextAttemptTime` has come. Succeeded operations are not run
//! again (the rerun resets only the failed ones and what depends on them).
//!
//! The rerun is the decision: one conditional write, applied only while the
//! progress holds the delivery token read *and* still says `retryState:
//! pending` (see [`crate::services::service::retry`]). Two processes
//! retrying at once, or a retry racing a user's rerun, take effect once.

use pop_core::ObjectKind;
use pop_core::retry::fields;
use pop_ports::{Document, Expect, Filter, Query, Write};
use serde_json::{Value, json};

use super::{Budget, JobSettings, Jobs, Report};
use crate::error::{AppError, AppResult};
use crate::services::service;

/// The walk's name (its cursor).
const WALK: &str = "retry";

pub(super) async fn run(jobs: &Jobs, settings: &JobSettings, budget: Budget) -> AppResult<Report> {
    let mut report = Report::new(super::Job::Retry, settings.log_only);
    let pending = Query::by(fields::STATE, fields::PENDING);
    let due = || Some(Filter::AtMost(fields::NEXT_ATTEMPT_TIME.into(), jobs.now()));
    report.complete = walk!(
        jobs,
        WALK,
        ObjectKind::AgendaProgress,
        pending,
        due(),
        budget,
        report,
        |progress| {
            let now = jobs.now();
            let agenda_id = progress.get("agendaId").and_then(|v| v.as_str()).unwrap_or_default();
            let attempt = progress.get("attemptsCompleted").and_then(|v| v.as_i64()).unwrap_or(0) + 1;
            if settings.log_only {
                report.acted(format!("would retry agenda {agenda_id} (attempt {attempt})"));
                continue;
            }
            match service::retry(jobs.store.as_ref(), jobs.queue.as_ref(), agenda_id, now).await {
                Ok(outcome) => report.acted(format!(
                    "retried agenda {agenda_id}: attempt {attempt}, {} operation(s) reset{}",
                    outcome.reset.len(),
                    if outcome.requeued { ", requeued" } else { "" }
                )),
                // Another process's retry or a user's rerun took it first.
                Err(AppError::Conflict(_)) => {}
                Err(e) if e.is_transient() => return Err(e),
                // The rerun cannot be made (the insight is gone, the agenda
                // was deleted): give up now rather than at every run.
                Err(e) => match give_up(jobs, progress, &e.to_string(), now).await {
                    Ok(()) => report.acted(format!("gave up retrying agenda {agenda_id}: {e}")),
                    Err(AppError::Conflict(_)) => {}
                    Err(write) => report.failed(format!("agenda {agenda_id}: {e}; giving up failed: {write}")),
                },
            }
        }
    );
    Ok(report)
}

/// Ends the retries of `progress`, saying why, while it still says a retry
/// is pending.
async fn give_up(jobs: &Jobs, progress: &Document, why: &str, now: pop_core::EpochMillis) -> AppResult<()> {
    let id = progress.get("id").and_then(Value::as_str).unwrap_or_default();
    let mut events = match progress.get("diagnosticEvents") {
        Some(Value::Array(events)) => events.clone(),
        _ => Vec::new(),
    };
    events.push(json!({"message": format!("gave up retrying: {why}"), "time": now}));
    let patch = json!({fields::STATE: fields::GAVE_UP, "diagnosticEvents": events, "updatedTime": now});
    let expect = Expect::field(fields::STATE, fields::PENDING);
    jobs.store
        .write(vec![Write::merge_if(
            ObjectKind::AgendaProgress,
            id,
            expect,
            patch.as_object().cloned().unwrap_or_default(),
        )])
        .await?;
    Ok(())
}
