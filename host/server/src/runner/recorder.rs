//! The executor's writer: batches progress writes, each batch conditional
//! on the run's fencing token (see [`crate::domain::fence`]); extends the queue
//! lease on a heartbeat; ends with the final progress and then the
//! acknowledgement of the delivery (idempotent, so a crash between the two
//! leaves a complete agenda whose redelivery finds nothing to run).
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
use pop_store::{Clock, Queue, QueueError, Store, StoreError, Write};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::domain::fence;

/// Why recording stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    #[error("the lease on the agenda was lost (it expired and was delivered again, or a rerun cleared it)")]
    LeaseLost,
    /// Retried [`ATTEMPTS`] times and still failing (transient), or failing
    /// in a way retrying cannot fix (permanent, not retried).
    #[error("the store failed: {0}")]
    Store(String),
}

/// What a recorder writes through and with.
#[derive(Clone)]
pub struct RecorderPorts {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
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
    /// Owned: it ends when the executor drops its handle (the channel
    /// closes) or after the final batch, and `finish` waits for it.
    task: tokio::task::JoinHandle<()>,
}

/// Attempts per batch before the run gives up (the lease then expires and
/// the agenda is delivered again).
const ATTEMPTS: u32 = 3;

impl Recorder {
    /// Take over the agenda's progress for the delivery `lease` (the
    /// progress held `stored_token` when read) and start recording. Fails
    /// with `LeaseLost` when another delivery took over meanwhile.
    pub async fn open(
        ports: RecorderPorts,
        lease: QueuedAgenda,
        progress_id: String,
        stored_token: Option<Value>,
        lease_time: Duration,
        heartbeat: Duration,
    ) -> Result<Self, RecordError> {
        let token = fence::token_of(&lease);
        let take_over = fence::take_over(&progress_id, stored_token.as_ref(), &token);
        let mut task = Task {
            ports,
            lease,
            lease_time,
            progress_id,
            token,
        };
        task.commit_once(vec![take_over]).await?;
        let (commands, receiver) = mpsc::unbounded_channel();
        let (stop_tx, stopped) = watch::channel(None);
        let task = tokio::spawn(task.run(receiver, heartbeat, stop_tx));
        Ok(Self {
            commands,
            stopped,
            task,
        })
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
        let outcome = done.await.map_err(|_| self.stop_reason())?;
        let _ = self.task.await;
        outcome
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
    ports: RecorderPorts,
    /// The delivery as the queue last confirmed it.
    lease: QueuedAgenda,
    lease_time: Duration,
    progress_id: String,
    /// This delivery's fencing token, held by the progress while it runs.
    token: String,
}

impl Task {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        heartbeat: Duration,
        stop: watch::Sender<Option<RecordError>>,
    ) {
        // The heartbeat is not reset by batches: batches no longer carry
        // the lease, so it must be extended on time however busy the run.
        let mut next_beat = self.ports.clock.sleep(heartbeat);
        loop {
            let first = tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => Some(command),
                    // The executor is gone (aborted): the lease runs out.
                    None => return,
                },
                () = &mut next_beat => None,
            };
            let Some(first) = first else {
                next_beat = self.ports.clock.sleep(heartbeat);
                if let Err(error) = self.beat().await {
                    let _ = stop.send(Some(error));
                    return;
                }
                continue;
            };
            let mut batch = Batch::default();
            batch.add(first);
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
            let mut outcome = self.commit(batch).await;
            if finish.is_some() && outcome.is_ok() {
                outcome = self.acknowledge().await;
            }
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
        }
    }

    /// Heartbeat: extend the lease, and touch the progress so its
    /// `updatedTime` shows the agenda is alive (guarded like every write).
    async fn beat(&mut self) -> Result<(), RecordError> {
        self.lease = self
            .with_retries(|ports, lease, lease_time| async move { ports.queue.extend(&lease, lease_time).await })
            .await?;
        let patch = json!({"updatedTime": self.ports.clock.now_millis()});
        let touch = Write::merge(
            ObjectKind::AgendaProgress,
            self.progress_id.clone(),
            patch.as_object().cloned().unwrap_or_default(),
        );
        self.commit(vec![touch]).await
    }

    /// The delivery is done: remove its message. Idempotent; a message
    /// delivered again since belongs to its new holder, who will find the
    /// agenda complete, so losing it here is not an error of this run.
    async fn acknowledge(&mut self) -> Result<(), RecordError> {
        match self
            .with_retries(|ports, lease, _| async move { ports.queue.acknowledge(&lease).await })
            .await
        {
            Ok(()) | Err(RecordError::LeaseLost) => Ok(()),
            Err(e) => {
                // The final progress is recorded: a redelivery finds it.
                tracing::warn!(error = %e, "acknowledging a finished agenda failed; it will be delivered again and found complete");
                Ok(())
            }
        }
    }

    async fn with_retries<T, F, Fut>(&self, call: F) -> Result<T, RecordError>
    where
        F: Fn(RecorderPorts, QueuedAgenda, Duration) -> Fut,
        Fut: std::future::Future<Output = Result<T, QueueError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match call(self.ports.clone(), self.lease.clone(), self.lease_time).await {
                Ok(value) => return Ok(value),
                Err(QueueError::LeaseLost { .. }) => return Err(RecordError::LeaseLost),
                Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "the queue failed; retrying");
                    self.ports.clock.sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(RecordError::Store(e.to_string())),
            }
        }
    }

    /// One batch, conditional on the fencing token.
    async fn commit(&mut self, mut batch: Vec<Write>) -> Result<(), RecordError> {
        batch.insert(0, fence::guard(&self.progress_id, &self.token));
        self.commit_once(batch).await
    }

    /// Write `batch`, retrying transient failures; a failed condition means
    /// another delivery (or a rerun) owns the agenda now.
    async fn commit_once(&mut self, batch: Vec<Write>) -> Result<(), RecordError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.ports.store.write(batch.clone()).await {
                Ok(_) => return Ok(()),
                Err(StoreError::ConditionFailed { .. } | StoreError::NotFound { .. }) => {
                    return Err(RecordError::LeaseLost);
                }
                Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "recording agenda progress failed; retrying");
                    self.ports.clock.sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(RecordError::Store(e.to_string())),
            }
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50 << attempt.min(6))
}
