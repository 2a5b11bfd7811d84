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
//! operations run again (at-least-once), except runs outside this process
//! (a process handler) that had finished: their launcher adopts them
//! (`Launcher::adopt`). Callers that need a write to be durable before they
//! act (the start of such a run) use [`Recorder::write_durably`].

use std::sync::Arc;
use std::time::Duration;

use pop_core::ObjectKind;
use pop_ports::{Clock, Write};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use super::ledger::{Ledger, LedgerError};

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
    /// Take the progress over through `ledger` and start recording to it.
    pub async fn start(
        ledger: Arc<dyn Ledger>,
        clock: Arc<dyn Clock>,
        progress_id: String,
        heartbeat: Duration,
    ) -> Result<Self, RecordError> {
        let task = Task {
            ledger,
            clock,
            progress_id,
        };
        task.with_retries(|ledger| async move { ledger.take_over().await })
            .await?;
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
    ledger: Arc<dyn Ledger>,
    clock: Arc<dyn Clock>,
    progress_id: String,
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
        let mut next_beat = self.clock.sleep(heartbeat);
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
                next_beat = self.clock.sleep(heartbeat);
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
        self.with_retries(|ledger| async move { ledger.extend_lease().await })
            .await?;
        let patch = json!({"updatedTime": self.clock.now_millis()});
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
            .with_retries(|ledger| async move { ledger.acknowledge().await })
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

    /// `call` on the ledger, again after a backoff while it fails
    /// transiently (at most [`ATTEMPTS`] times).
    async fn with_retries<T, F, Fut>(&self, call: F) -> Result<T, RecordError>
    where
        F: Fn(Arc<dyn Ledger>) -> Fut,
        Fut: std::future::Future<Output = Result<T, LedgerError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match call(self.ledger.clone()).await {
                Ok(value) => return Ok(value),
                Err(LedgerError::LeaseLost) => return Err(RecordError::LeaseLost),
                Err(LedgerError::Transient(e)) if attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "recording agenda progress failed; retrying");
                    self.clock.sleep(backoff(attempt)).await;
                }
                Err(LedgerError::Transient(e) | LedgerError::Permanent(e)) => return Err(RecordError::Store(e)),
            }
        }
    }

    /// One batch, conditional on the fencing token. A batch longer than
    /// one atomic write goes in chunks, each behind its own guard: all but
    /// the last at once (the store folds them into few commits), then the
    /// last, which holds the agenda's state (the executor puts it last). A
    /// cut between them leaves operation rows recorded ahead of the state,
    /// which the next delivery resumes from like any other cut.
    async fn commit(&mut self, batch: Vec<Write>) -> Result<(), RecordError> {
        let per_chunk = self.ledger.max_writes().max(1);
        let mut chunks: Vec<Vec<Write>> = Vec::new();
        let mut writes = batch.into_iter().peekable();
        while writes.peek().is_some() {
            chunks.push(writes.by_ref().take(per_chunk).collect());
        }
        let Some(last) = chunks.pop() else {
            return Ok(());
        };
        if !chunks.is_empty() {
            let this = &*self;
            futures_util::future::try_join_all(chunks.into_iter().map(|chunk| this.commit_once(chunk))).await?;
        }
        self.commit_once(last).await
    }

    /// Write `batch`, retrying transient failures; a failed condition means
    /// another delivery (or a rerun) owns the agenda now.
    async fn commit_once(&self, batch: Vec<Write>) -> Result<(), RecordError> {
        self.with_retries(|ledger| {
            let batch = batch.clone();
            async move { ledger.commit(batch).await }
        })
        .await
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50 << attempt.min(6))
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use pop_memory::{Fault, FaultyStore, MemoryQueue, MemoryStore};
    use pop_ports::{Document, ManualClock, Queue};

    use super::*;
    use crate::domain::fence;
    use crate::runner::ledger::StoreLedger;
    use pop_core::QueuedAgenda;
    use pop_ports::Store;
    use serde_json::Value;

    const LEASE: Duration = Duration::from_secs(60);
    const HEARTBEAT: Duration = Duration::from_secs(5);

    struct Setup {
        clock: Arc<ManualClock>,
        memory: Arc<MemoryStore>,
        store: Arc<FaultyStore>,
        queue: Arc<MemoryQueue>,
    }

    impl Setup {
        async fn new() -> Self {
            let clock = Arc::new(ManualClock::default());
            let memory = Arc::new(MemoryStore::new());
            let store = Arc::new(FaultyStore::new(memory.clone()));
            let queue = Arc::new(MemoryQueue::new(clock.clone()));
            let progress = json!({"id": "p1", "customerId": "acme", "processingState": "WAITING"});
            memory
                .write(vec![Write::put(ObjectKind::AgendaProgress, doc(progress))])
                .await
                .unwrap();
            let mut message = QueuedAgenda {
                insight_id: Some("work".into()),
                agenda_id: Some("a1".into()),
                ..Default::default()
            };
            message.envelope.id = Some("m1".into());
            queue.enqueue(vec![message]).await.unwrap();
            Self {
                clock,
                memory,
                store,
                queue,
            }
        }

        async fn claim(&self) -> QueuedAgenda {
            let mut claimed = self
                .queue
                .claim("work", 1, "puller", LEASE, Duration::ZERO)
                .await
                .unwrap();
            claimed.pop().expect("a message to claim")
        }

        async fn progress(&self) -> Document {
            self.memory
                .get(ObjectKind::AgendaProgress, "p1")
                .await
                .unwrap()
                .unwrap()
        }

        /// Run `work` while moving the manual clock on, so its retries'
        /// backoffs pass without anyone sleeping.
        async fn with_time<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> T {
            let task = tokio::spawn(work);
            let clock = self.clock.clone();
            let passing = async {
                while !task.is_finished() {
                    clock.advance(Duration::from_millis(50));
                    tokio::task::yield_now().await;
                }
            };
            tokio::time::timeout(Duration::from_secs(30), passing)
                .await
                .expect("the recorder call ended");
            task.await.expect("the recorder call did not panic")
        }
    }

    fn doc(value: Value) -> Document {
        value.as_object().cloned().unwrap_or_default()
    }

    fn state(progress: &str, state: &str) -> Write {
        Write::merge(
            ObjectKind::AgendaProgress,
            progress,
            doc(json!({"processingState": state})),
        )
    }

    async fn open(setup: &Setup, lease: QueuedAgenda, stored: Option<Value>) -> Result<Recorder, RecordError> {
        let store: Arc<dyn Store> = setup.store.clone();
        let queue: Arc<dyn Queue> = setup.queue.clone();
        let ledger = StoreLedger::new(store, queue, lease, LEASE, "p1".into(), stored);
        let clock: Arc<dyn pop_ports::Clock> = setup.clock.clone();
        setup
            .with_time(Recorder::start(Arc::new(ledger), clock, "p1".into(), HEARTBEAT))
            .await
    }

    #[tokio::test]
    async fn transient_store_failures_are_retried_until_the_write_lands() {
        let setup = Setup::new().await;
        let lease = setup.claim().await;
        setup.store.fail_next_writes([Fault::Transient, Fault::Transient]);
        let recorder = open(&setup, lease, None).await;
        assert!(recorder.is_ok(), "{:?}", recorder.err());
        assert_eq!(setup.store.write_attempts(), 3, "two failures, then the write");
        assert_eq!(setup.progress().await[fence::FIELD], json!("m1/1"));
    }

    #[tokio::test]
    async fn an_outage_longer_than_the_retries_stops_the_run() {
        let setup = Setup::new().await;
        let lease = setup.claim().await;
        setup.store.fail_next_writes([Fault::Transient; ATTEMPTS as usize]);
        let outcome = open(&setup, lease, None).await;
        assert!(matches!(outcome, Err(RecordError::Store(_))), "{:?}", outcome.err());
        assert_eq!(setup.store.write_attempts(), ATTEMPTS as usize);
    }

    #[tokio::test]
    async fn a_permanent_failure_is_not_retried() {
        let setup = Setup::new().await;
        let lease = setup.claim().await;
        setup.store.fail_next_writes([Fault::Permanent]);
        let outcome = open(&setup, lease, None).await;
        assert!(matches!(outcome, Err(RecordError::Store(_))), "{:?}", outcome.err());
        assert_eq!(setup.store.write_attempts(), 1, "not retried");
        assert!(setup.progress().await.get(fence::FIELD).is_none(), "nothing recorded");
    }

    #[tokio::test]
    async fn a_run_whose_agenda_was_rerun_records_nothing_more() {
        let setup = Setup::new().await;
        let lease = setup.claim().await;
        let mut recorder = open(&setup, lease, None).await.expect("open");
        // A rerun replaces the token (service::rerun).
        let rerun = doc(json!({ fence::FIELD: fence::rerun_token() }));
        setup
            .memory
            .write(vec![Write::merge(ObjectKind::AgendaProgress, "p1", rerun)])
            .await
            .unwrap();
        let outcome = recorder.write_durably(vec![state("p1", "EXECUTING")]).await;
        assert!(matches!(outcome, Err(RecordError::LeaseLost)), "{outcome:?}");
        assert!(matches!(recorder.stopped().await, RecordError::LeaseLost));
        assert_eq!(setup.progress().await["processingState"], json!("WAITING"));
    }

    #[tokio::test]
    async fn a_newer_delivery_takes_over_and_the_older_one_goes_quiet() {
        let setup = Setup::new().await;
        let first = setup.claim().await;
        let old = open(&setup, first, None).await.expect("open the first delivery");
        // The first holder stalls past its lease; the message comes back.
        setup.clock.advance(LEASE + Duration::from_secs(1));
        let second = setup.claim().await;
        assert_eq!(second.deliveries, Some(2));
        // Opened with the token as it was before the first took over: a
        // second run starting at the same moment as the first loses.
        let stale = open(&setup, second.clone(), None).await;
        assert!(matches!(stale, Err(RecordError::LeaseLost)), "{:?}", stale.err());
        let read = setup.progress().await.get(fence::FIELD).cloned();
        let new = open(&setup, second, read).await.expect("open the second delivery");
        let outcome = old.write_durably(vec![state("p1", "EXECUTING")]).await;
        assert!(matches!(outcome, Err(RecordError::LeaseLost)), "{outcome:?}");
        assert_eq!(setup.progress().await["processingState"], json!("WAITING"));
        new.write_durably(vec![state("p1", "EXECUTING")])
            .await
            .expect("the current run records");
        assert_eq!(setup.progress().await["processingState"], json!("EXECUTING"));
        assert_eq!(setup.progress().await[fence::FIELD], json!("m1/2"));
    }

    #[tokio::test]
    async fn finishing_records_the_end_and_acknowledges_the_delivery() {
        let setup = Setup::new().await;
        let lease = setup.claim().await;
        let recorder = open(&setup, lease, None).await.expect("open");
        recorder.finish(vec![state("p1", "COMPLETE")]).await.expect("finish");
        assert_eq!(setup.progress().await["processingState"], json!("COMPLETE"));
        assert!(setup.queue.get("m1").await.unwrap().is_none(), "acknowledged");
    }

    #[tokio::test]
    async fn the_heartbeat_extends_the_lease_on_the_clock() {
        let setup = Setup::new().await;
        let lease = setup.claim().await;
        let expires = lease.lease_expires.unwrap();
        let _recorder = open(&setup, lease, None).await.expect("open");
        let queue = setup.queue.clone();
        let extended = setup.with_time(async move {
            loop {
                let current = queue.get("m1").await.unwrap().unwrap();
                if current.lease_expires.unwrap() > expires {
                    return current;
                }
                tokio::task::yield_now().await;
            }
        });
        let extended = extended.await;
        assert_eq!(extended.deliveries, Some(1), "the same delivery, extended");
        assert!(
            setup.progress().await["updatedTime"].is_i64(),
            "the progress was touched"
        );
    }
}
