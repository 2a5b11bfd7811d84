//! The executor's writer: batches progress writes, renews the lease with
//! each batch (and on a heartbeat when there is nothing to write), and ends
//! with the final progress plus the queue entry's removal in one batch.
//!
//! Writes are *behind* the executor: it hands a batch over and goes on
//! launching, so no operation waits for a disk flush (the store commits
//! concurrent batches in one group). What a crash can lose is the last
//! moments of progress: the agenda is then delivered again and those
//! operations run again (at-least-once), except process handlers that had
//! finished, whose reports are adopted (see `launch::process`). Callers that
//! need a write to be durable before they act (a process handler's start)
//! use [`Recorder::write_durably`].

use std::sync::Arc;
use std::time::Duration;

use pop_core::{ObjectKind, QueuedAgenda};
use pop_store::{Store, StoreError, Write};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use crate::domain::body::from_document;
use crate::domain::{now_millis, queue};

/// Why recording stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    #[error("the lease on the agenda was lost (it expired and was delivered again, or a rerun cleared it)")]
    LeaseLost,
    #[error("the store failed: {0}")]
    Store(String),
}

enum Command {
    Write(Vec<Write>, Option<oneshot::Sender<Result<(), RecordError>>>),
    /// The last batch: written with the queue entry's removal.
    Finish(Vec<Write>, oneshot::Sender<Result<(), RecordError>>),
}

/// Handle of one agenda's recorder task.
pub struct Recorder {
    commands: mpsc::UnboundedSender<Command>,
    stopped: watch::Receiver<Option<RecordError>>,
}

/// Attempts per batch before the run gives up (the lease then expires and
/// the agenda is delivered again).
const ATTEMPTS: u32 = 3;

impl Recorder {
    pub fn start(store: Arc<dyn Store>, lease: QueuedAgenda, lease_ms: i64, heartbeat: Duration) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        let (stop_tx, stopped) = watch::channel(None);
        let task = Task {
            store,
            lease,
            lease_ms,
            agenda_progress_id: None,
        };
        tokio::spawn(task.run(receiver, heartbeat, stop_tx));
        Self { commands, stopped }
    }

    /// Queue writes; they are committed with the next batch.
    pub fn write(&self, writes: Vec<Write>) {
        if !writes.is_empty() {
            let _ = self.commands.send(Command::Write(writes, None));
        }
    }

    /// Write and wait until the batch holding these writes is committed.
    pub async fn write_durably(&self, writes: Vec<Write>) -> Result<(), RecordError> {
        let (reply, done) = oneshot::channel();
        self.commands
            .send(Command::Write(writes, Some(reply)))
            .map_err(|_| self.stop_reason())?;
        done.await.map_err(|_| self.stop_reason())?
    }

    /// Write the final batch with the queue entry's removal and stop.
    pub async fn finish(self, writes: Vec<Write>) -> Result<(), RecordError> {
        let (reply, done) = oneshot::channel();
        self.commands
            .send(Command::Finish(writes, reply))
            .map_err(|_| self.stop_reason())?;
        done.await.map_err(|_| self.stop_reason())?
    }

    /// Resolves when recording stopped for good (lease lost, store broken).
    pub async fn stopped(&mut self) -> RecordError {
        match self.stopped.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or(RecordError::LeaseLost),
            Err(_) => RecordError::Store("the recorder ended".into()),
        }
    }

    fn stop_reason(&self) -> RecordError {
        self.stopped
            .borrow()
            .clone()
            .unwrap_or_else(|| RecordError::Store("the recorder ended".into()))
    }
}

/// Commands gathered into one commit.
#[derive(Default)]
struct Batch {
    writes: Vec<Write>,
    replies: Vec<oneshot::Sender<Result<(), RecordError>>>,
    finish: Option<oneshot::Sender<Result<(), RecordError>>>,
}

impl Batch {
    fn add(&mut self, command: Command) {
        match command {
            Command::Write(writes, reply) => {
                self.writes.extend(writes);
                self.replies.extend(reply);
            }
            Command::Finish(writes, reply) => {
                self.writes.extend(writes);
                self.finish = Some(reply);
            }
        }
    }
}

struct Task {
    store: Arc<dyn Store>,
    lease: QueuedAgenda,
    lease_ms: i64,
    /// Touched on heartbeats so `updatedTime` shows the agenda is alive.
    agenda_progress_id: Option<String>,
}

impl Task {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        heartbeat: Duration,
        stop: watch::Sender<Option<RecordError>>,
    ) {
        let mut timer = tokio::time::interval(heartbeat);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        timer.tick().await;
        loop {
            let first = tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => Some(command),
                    // The executor is gone (aborted): the lease runs out.
                    None => return,
                },
                _ = timer.tick() => None,
            };
            let mut batch = Batch::default();
            match first {
                Some(command) => batch.add(command),
                None => batch.writes.extend(self.heartbeat_touch()),
            }
            while batch.finish.is_none() {
                match commands.try_recv() {
                    Ok(command) => batch.add(command),
                    Err(_) => break,
                }
            }
            let Batch {
                writes: batch,
                replies,
                finish,
            } = batch;
            self.remember_progress_id(&batch);
            let outcome = self.commit(batch, finish.is_some()).await;
            for reply in replies {
                let _ = reply.send(outcome.clone());
            }
            if let Some(reply) = finish {
                let _ = reply.send(outcome);
                return;
            }
            if let Err(error) = outcome {
                let _ = stop.send(Some(error));
                return;
            }
            timer.reset();
        }
    }

    fn remember_progress_id(&mut self, batch: &[Write]) {
        if self.agenda_progress_id.is_some() {
            return;
        }
        self.agenda_progress_id = batch.iter().find_map(|w| match w {
            Write::Merge {
                kind: ObjectKind::AgendaProgress,
                id,
                ..
            } => Some(id.clone()),
            _ => None,
        });
    }

    fn heartbeat_touch(&self) -> Option<Write> {
        let id = self.agenda_progress_id.clone()?;
        let patch = json!({"updatedTime": now_millis()});
        Some(Write::merge(
            ObjectKind::AgendaProgress,
            id,
            patch.as_object().cloned().unwrap_or_default(),
        ))
    }

    /// One batch, guarded by the lease: renewed, or removed when `last`.
    async fn commit(&mut self, mut batch: Vec<Write>, last: bool) -> Result<(), RecordError> {
        let guard = if last {
            queue::removal(&self.lease)
        } else {
            queue::renewal(&self.lease, self.lease_ms)
        };
        batch.insert(0, guard);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.store.write(batch.clone()).await {
                Ok(mut stored) => {
                    if !last && let Some(Some(doc)) = stored.drain(..1).next() {
                        match from_document::<QueuedAgenda>(doc) {
                            Ok(lease) => self.lease = lease,
                            Err(e) => return Err(RecordError::Store(e.to_string())),
                        }
                    }
                    return Ok(());
                }
                Err(StoreError::ConditionFailed { .. }) => return Err(RecordError::LeaseLost),
                Err(StoreError::NotFound { .. }) if !self.lease_exists().await => return Err(RecordError::LeaseLost),
                Err(e) if attempt >= ATTEMPTS => return Err(RecordError::Store(e.to_string())),
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "recording agenda progress failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
            }
        }
    }

    async fn lease_exists(&self) -> bool {
        let id = self.lease.envelope.id.as_deref().unwrap_or_default();
        !matches!(self.store.get(ObjectKind::QueuedAgenda, id).await, Ok(None))
    }
}
