//! One agenda's run (spec §5.3): the plan decides, this module does the I/O.
//!
//! Loop: launch what the plan says is ready (at most `operation_parallelism`
//! at once), wait for the next completion or progress report, record it,
//! repeat until the plan's outcome is decided; then write the final
//! progress together with the queue entry's removal. Progress is recorded
//! behind the run by the [`Recorder`]; losing the lease aborts the run.
//! Running reports are coalesced (see [`super::progress`]): the latest of
//! each operation is written at most every [`FLUSH_INTERVAL`], completions
//! at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use pop_core::execution::{ExecutionPlan, Outcome, ReadyOperation};
use pop_core::{
    Agenda, AgendaProgress, CompleteStateMessage, DiagnosticEvent, ObjectKind, OperationProgress, ProcessingState,
    QueuedAgenda,
};
use pop_ports::{Clock, Document, Placement, Write};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::Runner;
use super::launch::Launchers;
use super::launch::{OperationResult, OperationRun, event};
use super::ledger::{Ledger, StoreLedger};
use super::progress::{self, FLUSH_INTERVAL, ProgressReceiver, ProgressSender};
use super::recorder::{RecordError, Recorder};
use crate::domain::body::{from_document, to_document};
use crate::domain::objects::operation_progress_of;
use crate::domain::progress::new_operation_progress;
use crate::domain::retry::{RetryPolicy, completion_fields};
use crate::domain::typed::{self, TypedStore};
use crate::domain::{fence, placement};
use crate::error::AppError;

/// POP's executor message while operations run.
const RUNNING_OPERATIONS: &str = "Running Operations";

/// Why a run ended without recording an outcome (the lease then brings
/// the agenda back, or it is gone).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Api(#[from] AppError),
    #[error(transparent)]
    Store(#[from] pop_ports::StoreError),
    #[error(transparent)]
    Queue(#[from] pop_ports::QueueError),
}

/// What one agenda's run needs besides its delivery and ledger.
#[derive(Clone)]
pub struct RunContext {
    pub clock: Arc<dyn Clock>,
    pub launchers: Launchers,
    /// Operations run at once (POP's conductor pool).
    pub operation_parallelism: usize,
    /// How often the lease is extended.
    pub heartbeat: Duration,
    /// The largest OperationProgress the progress store keeps, in bytes.
    pub row_limit: usize,
}

/// A claimed agenda with what its run resumes from.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub agenda: Agenda,
    pub progress_id: String,
    /// Attempts completed before this one (`attemptsCompleted`).
    pub attempts: i64,
    pub retry: RetryPolicy,
    /// The operations' recorded progress (resume).
    pub rows: Vec<OperationProgress>,
    pub placement: Placement,
}

/// Run the agenda of a claimed queue entry to its end.
pub async fn run(runner: Arc<Runner>, entry: QueuedAgenda) -> Result<(), RunError> {
    let agenda_id = entry.agenda_id.clone().unwrap_or_default();
    let store = runner.store.as_ref();
    let Some(agenda) = store.load::<Agenda>(&agenda_id).await? else {
        tracing::warn!(agenda_id, "queued agenda no longer exists; dropping its queue entry");
        runner.queue.acknowledge(&entry).await?;
        return Ok(());
    };
    let progress_id = agenda.progress_id.clone().unwrap_or_default();
    let Some(progress_doc) = store.get(ObjectKind::AgendaProgress, &progress_id).await? else {
        tracing::warn!(
            agenda_id,
            "queued agenda has no progress to report to; dropping its queue entry"
        );
        runner.queue.acknowledge(&entry).await?;
        return Ok(());
    };
    let rows: Vec<OperationProgress> = operation_progress_of(store, &progress_id)
        .await?
        .into_iter()
        .map(from_document)
        .collect::<Result<_, _>>()?;
    let customer_id = agenda.envelope.customer_id.clone().unwrap_or_default();
    let placement = placement_of(store, &agenda, &customer_id).await?;
    let ledger = StoreLedger::new(
        runner.store.clone(),
        runner.queue.clone(),
        entry,
        runner.config.lease,
        progress_id.clone(),
        progress_doc.get(fence::FIELD).cloned(),
    );
    let delivery = Delivery {
        attempts: progress_doc
            .get("attemptsCompleted")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        retry: RetryPolicy::of(&progress_doc),
        agenda,
        progress_id,
        rows,
        placement,
    };
    run_delivery(runner.context(), Arc::new(ledger), delivery).await
}

/// Run `delivery` to its end, recording through `ledger`: the same run in
/// `pop serve` (the store and queue) and in a remote executor (the
/// ResourcePool service).
pub async fn run_delivery(context: RunContext, ledger: Arc<dyn Ledger>, delivery: Delivery) -> Result<(), RunError> {
    let Delivery {
        agenda,
        progress_id,
        attempts,
        retry,
        rows,
        placement,
    } = delivery;
    let agenda_id = agenda.envelope.id.clone().unwrap_or_default();
    let recorder = Recorder::start(ledger, context.clock.clone(), progress_id.clone(), context.heartbeat).await?;
    let run = AgendaRun {
        placement,
        customer_id: agenda.envelope.customer_id.clone().unwrap_or_default(),
        cid: agenda.envelope.cid.clone().unwrap_or_default(),
        attempts,
        retry,
        with_rows: rows.iter().filter_map(|r| r.operation.clone()).collect(),
        recorded_complete: HashSet::new(),
        agenda_id,
        progress_id,
        context,
        recorder,
    };
    let plan = match ExecutionPlan::new(&agenda, &rows, &run.agenda_id) {
        Ok(plan) => plan,
        Err(e) => {
            let outcome = Outcome::Failed {
                diagnostics: vec![event(e.to_string(), run.now())],
            };
            return run.finish(None, outcome).await;
        }
    };
    run.drive(plan).await
}

/// The agenda's insight and resource pool, and the namespace that pool
/// gives the customer's pods.
async fn placement_of(store: &dyn pop_ports::Store, agenda: &Agenda, customer_id: &str) -> Result<Placement, RunError> {
    let bound = agenda.agenda_insight.clone().unwrap_or_default();
    let resource_pool_id = bound.resource_pool_id.unwrap_or_default();
    let namespace = placement::namespace_for(store, &resource_pool_id, customer_id).await?;
    Ok(Placement {
        insight_id: bound.insight_id.unwrap_or_default(),
        resource_pool_id,
        namespace,
    })
}

struct AgendaRun {
    context: RunContext,
    placement: Placement,
    recorder: Recorder,
    agenda_id: String,
    progress_id: String,
    customer_id: String,
    cid: String,
    attempts: i64,
    /// Decides, at the end, whether the agenda is retried.
    retry: RetryPolicy,
    /// Operations that have an OperationProgress row (merge) — the others,
    /// generated during this run, get one written whole.
    with_rows: HashSet<String>,
    recorded_complete: HashSet<String>,
}

impl AgendaRun {
    async fn drive(mut self, mut plan: ExecutionPlan) -> Result<(), RunError> {
        let started = self.now();
        let start = AgendaProgress {
            processing_state: Some(ProcessingState::Executing),
            processing_state_message: Some(RUNNING_OPERATIONS.into()),
            started_time: Some(started),
            percent_complete: Some(plan.percent_complete()),
            ..Default::default()
        };
        self.recorder.write(vec![self.agenda_write(&start)?]);

        let parallelism = self.context.operation_parallelism.max(1);
        let (progress_tx, progress_rx) = progress::board();
        let mut tasks: JoinSet<(String, OperationResult)> = JoinSet::new();
        let mut names_by_task = HashMap::new();
        // Reports wait on the board until the next flush is due: the first
        // report of a quiet spell is written at once, later ones at most
        // every FLUSH_INTERVAL.
        // Both on the runner's clock, so a manual clock drives the throttle too.
        let mut flushed_at: Option<pop_core::EpochMillis> = None;
        let mut flush_wait: Option<pop_ports::Sleep> = None;
        loop {
            let room = parallelism.saturating_sub(tasks.len());
            if room > 0 && !plan.is_halted() {
                let ready = plan.ready_up_to(room);
                if !ready.is_empty() {
                    self.launch(ready, &mut tasks, &mut names_by_task, &progress_tx).await?;
                }
            }
            if plan.outcome() != Outcome::Running {
                break;
            }
            tokio::select! {
                joined = tasks.join_next_with_id() => {
                    let Some(joined) = joined else { continue };
                    let mut done = vec![completion(joined, &mut names_by_task, self.now())];
                    // Everything else already finished goes in the same batch.
                    while let Some(joined) = tasks.try_join_next_with_id() {
                        done.push(completion(joined, &mut names_by_task, self.now()));
                    }
                    for (name, _) in &done {
                        progress_rx.forget(name);
                    }
                    self.complete(&mut plan, done)?;
                }
                () = progress_rx.changed(), if flush_wait.is_none() => {
                    flush_wait = Some(self.context.clock.sleep(flush_delay(flushed_at, self.now())));
                }
                () = async { flush_wait.as_mut().expect("guarded by is_some").await }, if flush_wait.is_some() => {
                    flush_wait = None;
                    flushed_at = Some(self.now());
                    self.report(&mut plan, &progress_rx)?;
                }
                reason = self.recorder.stopped() => {
                    tasks.abort_all();
                    tracing::warn!(agenda = self.agenda_id, %reason, "agenda run stopped");
                    return Err(reason.into());
                }
            }
        }
        let outcome = plan.outcome();
        self.finish(Some(&plan), outcome).await
    }

    /// Start `ready`: record them EXECUTING (durably first when one of them
    /// runs outside this process, so that a successor knows it may adopt
    /// that run), then spawn one task each.
    async fn launch(
        &mut self,
        ready: Vec<ReadyOperation>,
        tasks: &mut JoinSet<(String, OperationResult)>,
        names_by_task: &mut HashMap<tokio::task::Id, String>,
        progress: &ProgressSender,
    ) -> Result<(), RunError> {
        let now = self.now();
        let mut writes = Vec::with_capacity(ready.len());
        let mut needs_durable_start = false;
        for op in &ready {
            let executing = OperationProgress {
                operation: Some(op.name.clone()),
                processing_state: Some(ProcessingState::Executing),
                processing_state_message: Some("executing".into()),
                started_time: Some(now),
                percent_complete: Some(0.0),
                ..Default::default()
            };
            writes.push(self.operation_write(&op.name, executing)?);
            let op_type = op.operation.op_type.as_deref().unwrap_or_default();
            needs_durable_start |= self.context.launchers.needs_durable_start(op_type);
        }
        if needs_durable_start {
            self.recorder.write_durably(writes).await?;
        } else {
            self.recorder.write(writes);
        }
        for op in ready {
            let run = OperationRun {
                name: op.name.clone(),
                operation: op.operation,
                payload: op.payload,
                last_progress: op.last_progress,
                agenda_id: self.agenda_id.clone(),
                progress_id: self.progress_id.clone(),
                customer_id: self.customer_id.clone(),
                cid: self.cid.clone(),
                attempt: self.attempts + 1,
                placement: self.placement.clone(),
            };
            let context = self.context.clone();
            let progress = progress.clone();
            let name = op.name;
            let task_name = name.clone();
            let handle = tasks.spawn(async move {
                let result = context.launchers.run(context.clock.as_ref(), run, progress).await;
                (task_name, result)
            });
            names_by_task.insert(handle.id(), name);
        }
        Ok(())
    }

    fn complete(&mut self, plan: &mut ExecutionPlan, done: Vec<(String, OperationResult)>) -> Result<(), RunError> {
        let mut writes = Vec::with_capacity(done.len() + 1);
        for (name, result) in done {
            let result = self.within_row_limit(&name, result);
            let generated = match &result.output {
                Some(output) => plan.complete(&name, output.clone()).map_err(internal)?,
                None => {
                    let diagnostic = failure_diagnostic(&name, &result.progress, self.now());
                    plan.fail(&name, diagnostic).map_err(internal)?;
                    Vec::new()
                }
            };
            self.recorded_complete.insert(name.clone());
            let mut progress = result.progress;
            let planned = plan.operation_progress(&name).unwrap_or_default();
            if result.output.is_some() && planned.processing_state_message.as_deref() == Some("failed") {
                // The handler succeeded but the plan refused its output (a
                // generator whose operations are missing or invalid): the
                // operation failed, and its row says why.
                let mut refused = OperationResult::failed(progress, None, self.now()).progress;
                refused.diagnostic_events = planned.diagnostic_events;
                refused.result_payload = None;
                refused.percent_complete = Some(0.0);
                progress = refused;
            }
            writes.push(self.operation_write(&name, progress)?);
            for generated_name in generated {
                if !self.with_rows.contains(&generated_name) {
                    let params = plan.operation_progress(&generated_name).and_then(|p| p.params);
                    let row = new_operation_progress(
                        &self.progress_id,
                        &generated_name,
                        &self.customer_id,
                        &self.cid,
                        params,
                        self.now(),
                    );
                    writes.push(typed::put(&row)?);
                    self.with_rows.insert(generated_name);
                }
            }
        }
        writes.push(self.percent_write(plan)?);
        self.recorder.write(writes);
        Ok(())
    }

    /// The running operations' latest reports (EXECUTING, percent,
    /// message), in one batch with the agenda's percent.
    fn report(&mut self, plan: &mut ExecutionPlan, reports: &ProgressReceiver) -> Result<(), RunError> {
        let mut writes = Vec::new();
        for (name, reported) in reports.take() {
            if reported.processing_state != Some(ProcessingState::Executing) || self.recorded_complete.contains(&name) {
                // COMPLETE arrives as the task's result, with the launcher's verdict.
                continue;
            }
            if let Some(percent) = reported.percent_complete {
                plan.report_percent(&name, percent);
            }
            writes.push(self.operation_write(&name, reported)?);
        }
        if !writes.is_empty() {
            writes.push(self.percent_write(plan)?);
            self.recorder.write(writes);
        }
        Ok(())
    }

    /// Final progress and the queue entry's removal, in one batch.
    async fn finish(self, plan: Option<&ExecutionPlan>, outcome: Outcome) -> Result<(), RunError> {
        let now = self.now();
        let mut writes = Vec::new();
        let (message, diagnostics) = match outcome {
            Outcome::Succeeded | Outcome::Running => (CompleteStateMessage::Succeeded, None),
            Outcome::Failed { diagnostics } => (CompleteStateMessage::Failed, Some(diagnostics)),
        };
        if let Some(plan) = plan {
            // Operations the plan failed itself (invalid references) were
            // never launched: their rows say so now.
            let unrecorded: Vec<String> = plan
                .operation_names()
                .filter(|name| !self.recorded_complete.contains(*name))
                .map(str::to_owned)
                .collect();
            for name in unrecorded {
                if let Some(progress) = plan.operation_progress(&name)
                    && progress.processing_state == Some(ProcessingState::Complete)
                    && progress.processing_state_message.as_deref() == Some(CompleteStateMessage::Failed.as_str())
                {
                    let mut progress = progress;
                    progress.completed_time = Some(now);
                    writes.push(self.operation_write(&name, progress)?);
                }
            }
        }
        // The retry job acts on what this write says about the next attempt.
        let attempts = self.attempts + 1;
        let after = self.retry.after(message == CompleteStateMessage::Failed, attempts, now);
        let (retry_fields, retry_event) = completion_fields(&after, now);
        let diagnostics = match (diagnostics, retry_event) {
            (Some(mut events), Some(event)) => {
                events.push(event);
                Some(events)
            }
            (None, Some(event)) => Some(vec![event]),
            (events, None) => events,
        };
        let last = AgendaProgress {
            processing_state: Some(ProcessingState::Complete),
            processing_state_message: Some(message.as_str().into()),
            completed_time: Some(now),
            percent_complete: Some(plan.map_or(0.0, ExecutionPlan::percent_complete)),
            diagnostic_events: diagnostics,
            attempts_completed: Some(attempts),
            ..Default::default()
        };
        let mut last = self.agenda_write(&last)?;
        if let Write::Merge { patch, .. } = &mut last {
            patch.extend(retry_fields);
        }
        writes.push(last);
        let (agenda_id, customer_id) = (self.agenda_id.clone(), self.customer_id.clone());
        self.recorder.finish(writes).await?;
        tracing::info!(
            "Agenda metadata - [cid={}; agendaId={agenda_id}; owner={customer_id}; conclusionStatus={}; agendaType=basic]",
            self.cid,
            message.as_str()
        );
        // What launchers kept for adoption matters only until the outcome
        // is recorded.
        for launcher in self.context.launchers.all() {
            launcher.forget_agenda(&agenda_id).await;
        }
        Ok(())
    }

    fn now(&self) -> pop_core::EpochMillis {
        self.context.clock.now_millis()
    }

    fn agenda_write(&self, progress: &AgendaProgress) -> Result<Write, RunError> {
        let mut patch = to_document(progress)?;
        patch.insert("updatedTime".into(), json!(self.now()));
        Ok(Write::merge(
            ObjectKind::AgendaProgress,
            self.progress_id.clone(),
            patch,
        ))
    }

    fn percent_write(&self, plan: &ExecutionPlan) -> Result<Write, RunError> {
        let progress = AgendaProgress {
            percent_complete: Some(plan.percent_complete()),
            ..Default::default()
        };
        self.agenda_write(&progress)
    }

    /// `result`, or a failure naming the limit when its progress could not
    /// be stored: a result the store refuses must fail its operation, not
    /// stop the agenda's run at every delivery.
    fn within_row_limit(&self, name: &str, result: OperationResult) -> OperationResult {
        let limit = self.context.row_limit;
        let size = serde_json::to_vec(&result.progress).map_or(usize::MAX, |bytes| bytes.len());
        if size.saturating_add(ROW_HEADROOM_BYTES) <= limit {
            return result;
        }
        let started = result.progress.started_time.unwrap_or_else(|| self.now());
        let message = format!(
            "Operation {name} reported {size} bytes of progress and result; the store keeps at most {limit} bytes per operation"
        );
        OperationResult::failed_with(started, message, self.now())
    }

    /// The operation's row: merged when it exists, else written whole.
    fn operation_write(&self, name: &str, mut progress: OperationProgress) -> Result<Write, RunError> {
        let id = OperationProgress::id_for(&self.progress_id, name);
        progress.operation = Some(name.to_owned());
        progress.agenda_progress_id = Some(self.progress_id.clone());
        progress.envelope.id = Some(id.clone());
        progress.envelope.updated_time = Some(self.now());
        if self.with_rows.contains(name) {
            let patch: Document = to_document(&progress)?;
            return Ok(Write::merge(ObjectKind::OperationProgress, id, patch));
        }
        let mut row = to_document(&new_operation_progress(
            &self.progress_id,
            name,
            &self.customer_id,
            &self.cid,
            None,
            self.now(),
        ))?;
        row.extend(to_document(&progress)?);
        Ok(Write::put(ObjectKind::OperationProgress, row))
    }
}

/// Room kept in an operation's row for the fields the executor adds to the
/// handler's progress (ids, owner, times).
const ROW_HEADROOM_BYTES: usize = 4 * 1024;

/// A task's result; a task that panicked fails its operation.
fn completion(
    joined: Result<(tokio::task::Id, (String, OperationResult)), tokio::task::JoinError>,
    names_by_task: &mut HashMap<tokio::task::Id, String>,
    now: pop_core::EpochMillis,
) -> (String, OperationResult) {
    match joined {
        Ok((id, done)) => {
            names_by_task.remove(&id);
            done
        }
        Err(error) => {
            let name = names_by_task.remove(&error.id()).unwrap_or_default();
            let message = format!("Failed to execute operation: {name} ({error})");
            (name, OperationResult::failed_with(now, message, now))
        }
    }
}

/// The diagnostic the agenda carries for a failed operation: the handler's
/// last one (the launcher's, with the log tail), named after the operation.
fn failure_diagnostic(name: &str, progress: &OperationProgress, now: pop_core::EpochMillis) -> DiagnosticEvent {
    let mut diagnostic = progress
        .diagnostic_events
        .as_ref()
        .and_then(|events| events.last().cloned())
        .unwrap_or_else(|| event(format!("Failed to complete operation: {name}"), now));
    let message = diagnostic.message.take().unwrap_or_default();
    diagnostic.message = Some(if message.contains(name) {
        message
    } else {
        format!("Operation {name} failed: {message}")
    });
    diagnostic
}

fn internal(e: pop_core::execution::ExecutionError) -> RunError {
    RunError::Api(AppError::Internal(e.to_string()))
}

/// How long reports wait before the next flush: none after a quiet spell,
/// the rest of [`FLUSH_INTERVAL`] since the last flush otherwise.
fn flush_delay(flushed_at: Option<pop_core::EpochMillis>, now: pop_core::EpochMillis) -> std::time::Duration {
    let Some(flushed_at) = flushed_at else {
        return std::time::Duration::ZERO;
    };
    let since = u64::try_from(now.saturating_sub(flushed_at)).unwrap_or(0);
    FLUSH_INTERVAL.saturating_sub(std::time::Duration::from_millis(since))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{FLUSH_INTERVAL, flush_delay};

    #[test]
    fn reports_after_a_quiet_spell_flush_at_once_and_later_ones_wait_for_the_interval() {
        let interval = i64::try_from(FLUSH_INTERVAL.as_millis()).unwrap();
        assert_eq!(flush_delay(None, 1_000), Duration::ZERO);
        assert_eq!(flush_delay(Some(1_000), 1_000), FLUSH_INTERVAL);
        assert_eq!(
            flush_delay(Some(1_000), 1_001),
            FLUSH_INTERVAL - Duration::from_millis(1)
        );
        assert_eq!(flush_delay(Some(1_000), 1_000 + interval), Duration::ZERO);
        assert_eq!(flush_delay(Some(1_000), 5_000_000), Duration::ZERO);
        assert_eq!(
            flush_delay(Some(1_000), 900),
            FLUSH_INTERVAL,
            "a clock set back waits a whole interval"
        );
    }
}
