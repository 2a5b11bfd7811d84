//! The scheduler loop: every interval, each insight's queue is topped up to
//! its `queueSize` waiting (unleased) entries from the insight's backlog, by
//! the insight's scheduler plugin. The queue shares no transaction with the
//! store, so a release is a conditional store write (rows marked released,
//! state saved), then an idempotent enqueue, then the rows' removal; see
//! [`top_up`] for why a crash between any two neither loses nor doubles an
//! agenda. Submission never waits on this loop.
//!
//! Insights take their turns concurrently and independently: a round
//! starts the turn of every insight whose previous turn has ended and does
//! not wait for them, so one tenant's slow scheduler (a plugin that runs
//! into its deadline on every call) delays only its own insight's
//! releases, never another tenant's. An insight has at most one turn
//! running at a time (two decisions on one backlog would release the same
//! agendas twice); a round that finds it still running asks for one more
//! turn after it, so a wake-up is not lost. Turns are bounded: at most
//! [`CONCURRENT_TURNS`] at once, and at most [`TURNS_PER_TENANT`] of one
//! insight owner, so a tenant with many slow insights cannot take every
//! turn either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pop_core::{EpochMillis, Insight, ObjectKind, QueuedAgenda, ReadyAgenda};
use pop_ports::{Clock, Expect, Query, Queue, Store, StoreError, Write};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::domain::body::from_document;
use crate::domain::fence;
use crate::domain::scheduling::{gather, state_write};
use crate::error::AppResult;
use crate::plugins::PluginHost;

/// The most insights scheduled per round.
const MAX_INSIGHTS: usize = 10_000;
/// Insights' turns running at once. A turn is mostly waiting (store reads,
/// one write, a plugin call on a blocking thread), so a few per core.
pub const CONCURRENT_TURNS: usize = 16;
/// Turns of one owner's insights running at once.
pub const TURNS_PER_TENANT: usize = 2;

/// What one insight's turn released.
#[derive(Debug, Clone, PartialEq)]
pub struct Released {
    pub insight_id: String,
    pub agenda_ids: Vec<String>,
    pub decided_by: String,
    /// The queue had room for more than one atomic write releases: the
    /// turn goes on at once.
    pub more: bool,
}

/// Shortest time between the starts of two rounds started by [`spawn`]'s
/// `wake`: a burst of wake-ups costs one round, not one each, while the
/// first wake-up after a quiet spell starts its round at once (the
/// submission → release latency).
const MIN_WAKE_SPACING: Duration = Duration::from_millis(10);

/// The running scheduler loop.
pub struct Scheduler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Scheduler {
    /// Start no more rounds; let the turns in progress finish within
    /// `bound` (a release cut off after that is re-driven by the next
    /// scheduler: see [`top_up`]).
    pub async fn stop(self, bound: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(bound, self.task).await;
    }
}

/// Run a round every `interval`, and early when `wake` is notified (the
/// puller claimed entries, so queues have room), until stopped. The turns
/// are owned by the loop: stopping (or dropping the handle) ends the loop
/// once the turns in progress are done.
pub fn spawn(
    ports: SchedulerPorts,
    plugins: Arc<PluginHost>,
    interval: Duration,
    wake: Arc<tokio::sync::Notify>,
) -> Scheduler {
    let clock = ports.clock.clone();
    let turns = Arc::new(Turns::new(ports, plugins));
    let spacing = i64::try_from(MIN_WAKE_SPACING.as_millis()).unwrap_or(10);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let mut running = JoinSet::new();
        let mut last_round: Option<EpochMillis> = None;
        loop {
            tokio::select! {
                () = clock.sleep(interval) => {}
                () = wake.notified() => {
                    let since = last_round.map_or(spacing, |last| clock.now_millis().saturating_sub(last));
                    if since < spacing {
                        clock.sleep(Duration::from_millis((spacing - since) as u64)).await;
                    }
                }
                // Stopped, or the handle is gone.
                _ = stopped.changed() => break,
            }
            while running.try_join_next().is_some() {}
            last_round = Some(clock.now_millis());
            if let Err(e) = turns.round(&mut running).await {
                tracing::error!(error = %e, "scheduling round failed");
            }
        }
        while running.join_next().await.is_some() {}
    });
    Scheduler { stop, task }
}

/// The insights' turns: which are running, and the bounds on them.
struct Turns {
    ports: SchedulerPorts,
    plugins: Arc<PluginHost>,
    /// Insights whose turn is running → the insight as a later round read
    /// it, when that round asked for another turn.
    running: Mutex<HashMap<String, Option<Insight>>>,
    permits: Arc<Semaphore>,
    per_tenant: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Turns {
    fn new(ports: SchedulerPorts, plugins: Arc<PluginHost>) -> Self {
        Self {
            ports,
            plugins,
            running: Mutex::default(),
            permits: Arc::new(Semaphore::new(CONCURRENT_TURNS)),
            per_tenant: Mutex::default(),
        }
    }

    /// Start the turn of every insight that has none running; an insight
    /// that fails is logged and does not stop the others.
    async fn round(self: &Arc<Self>, running: &mut JoinSet<()>) -> AppResult<()> {
        let insights = self
            .ports
            .store
            .query(ObjectKind::Insight, &Query::all().limit(MAX_INSIGHTS), None)
            .await?;
        for doc in insights {
            let insight: Insight = match from_document(doc) {
                Ok(insight) => insight,
                Err(e) => {
                    tracing::error!(error = %e, "skipping an unreadable insight");
                    continue;
                }
            };
            if let Some(insight) = self.claim(insight) {
                running.spawn(self.clone().turns_of(insight));
            }
        }
        Ok(())
    }

    /// `Some(insight)` when its turn may start now; `None` when one is
    /// running, which will then take another turn with this `insight`.
    fn claim(&self, insight: Insight) -> Option<Insight> {
        let id = insight.envelope.id.clone().unwrap_or_default();
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match running.get_mut(&id) {
            Some(again) => {
                *again = Some(insight);
                None
            }
            None => {
                running.insert(id, None);
                Some(insight)
            }
        }
    }

    /// Take `insight`'s turn, and the further turns rounds asked for
    /// meanwhile; then let rounds start it again.
    async fn turns_of(self: Arc<Self>, mut insight: Insight) {
        let id = insight.envelope.id.clone().unwrap_or_default();
        let mut claim = Claim {
            turns: &self,
            id: &id,
            held: true,
        };
        loop {
            self.turn(&insight).await;
            match claim.next() {
                Some(next) => insight = next,
                None => return,
            }
        }
    }

    async fn turn(&self, insight: &Insight) {
        let owner = insight.envelope.customer_id.clone().unwrap_or_default();
        let tenant = {
            let mut per_tenant = self.per_tenant.lock().unwrap_or_else(|e| e.into_inner());
            per_tenant
                .entry(owner)
                .or_insert_with(|| Arc::new(Semaphore::new(TURNS_PER_TENANT)))
                .clone()
        };
        // Neither semaphore is ever closed; a closed one would only mean
        // running unbounded, not failing.
        let _tenant = tenant.acquire_owned().await.ok();
        let _turn = self.permits.clone().acquire_owned().await.ok();
        loop {
            match top_up(&self.ports, &self.plugins, insight).await {
                Ok(Some(released)) if released.more => continue,
                Ok(Some(released)) => tracing::trace!(insight = released.insight_id, "turn released agendas"),
                Ok(None) => {}
                Err(e) => tracing::error!(insight = ?insight.envelope.id, error = %e, "scheduling an insight failed"),
            }
            break;
        }
    }
}

/// An insight's running turn. Dropped (the turn ended, or its task
/// panicked), it lets rounds start the insight again.
struct Claim<'a> {
    turns: &'a Turns,
    id: &'a str,
    held: bool,
}

impl Claim<'_> {
    /// The insight of the further turn a round asked for, or `None` after
    /// letting the claim go (atomically: a round that comes after starts a
    /// turn of its own).
    fn next(&mut self) -> Option<Insight> {
        let mut running = self.turns.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(again) = running.get_mut(self.id).and_then(Option::take) {
            return Some(again);
        }
        running.remove(self.id);
        self.held = false;
        None
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.held {
            let mut running = self.turns.running.lock().unwrap_or_else(|e| e.into_inner());
            running.remove(self.id);
        }
    }
}

/// What a scheduler turn works with.
#[derive(Clone)]
pub struct SchedulerPorts {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    /// Rung after every release (the puller looks for new insights).
    pub released: Arc<Notify>,
}

/// Fill one insight's queue up to `queueSize`.
///
/// A release is three steps, none sharing a transaction with the queue:
/// 1. one conditional store write marks the chosen backlog rows released
///    (each only if not released yet) and saves the scheduler's state; a
///    second scheduler deciding on the same backlog fails here whole, so
///    nothing is released twice;
/// 2. the queue messages are enqueued, idempotently by the rows' ids;
/// 3. the released rows are deleted.
///
/// A process that dies after 1 leaves released rows behind; a later turn
/// finds them (`Backlog::stale_releases`, older than
/// `REDRIVE_AFTER_MS`) and does 2 and 3 for them. One that dies after 2
/// may have had its messages run and acknowledged since, so before
/// re-enqueueing a row the turn checks the agenda's fencing token: a token
/// of that message (`<row id>/<n>`) means a delivery of it started, and the
/// row is only removed.
pub async fn top_up(ports: &SchedulerPorts, plugins: &PluginHost, insight: &Insight) -> AppResult<Option<Released>> {
    let store = ports.store.as_ref();
    let insight_id = insight.envelope.id.clone().unwrap_or_default();
    let size = insight.queue_size.unwrap_or(0).max(0) as u64;
    if size == 0 {
        return Ok(None);
    }
    // Like SQS's visible messages: entries under a live lease are being run
    // by a puller and do not take a slot; an expired one waits again.
    let waiting = ports.queue.depth(&insight_id).await?.waiting;
    let room = size.saturating_sub(waiting);
    // Step 1 is one atomic write: the marks and the state, so at most one
    // fewer rows than the store's limit per decision.
    let per_write = u64::try_from(store.max_writes())
        .unwrap_or(u64::MAX)
        .saturating_sub(1)
        .max(1);
    let free = room.min(per_write);
    let by_insight = Query::by("insightId", insight_id.clone());
    if free == 0 || store.count(ObjectKind::ReadyAgenda, &by_insight, None).await? == 0 {
        return Ok(None);
    }
    let now = ports.clock.now_millis();
    let backlog = gather(store, ports.queue.as_ref(), insight, now).await?;
    if !backlog.stale_releases.is_empty() {
        let (redo, delivered) = split_delivered(store, &backlog.stale_releases).await?;
        tracing::warn!(
            insight = insight_id,
            redo = redo.len(),
            delivered = delivered.len(),
            "re-driving releases a stopped scheduler left unfinished"
        );
        finish_release(ports, &redo, now).await?;
        remove_rows(ports, &delivered).await?;
    }
    if backlog.rows.is_empty() {
        return Ok(None);
    }
    let decision = plugins
        .decide(insight, backlog, free.min(u64::from(u32::MAX)) as u32)
        .await?;
    let mut writes = Vec::with_capacity(decision.released.len() + 1);
    let mut released = Vec::with_capacity(decision.released.len());
    for row in &decision.released {
        let id = row.envelope.id.clone().unwrap_or_default();
        let mark = json!({"releasedAt": now, "releasedBy": decision.decided_by, "updatedTime": now});
        writes.push(Write::merge_if(
            ObjectKind::ReadyAgenda,
            id,
            Expect::field("releasedAt", Value::Null),
            mark.as_object().cloned().unwrap_or_default(),
        ));
        let mut row = row.clone();
        row.released_at = Some(now);
        row.released_by = Some(decision.decided_by.clone());
        released.push(row);
    }
    writes.push(state_write(
        &decision.backlog,
        insight,
        &decision.output,
        &decision.decided_by,
        now,
    )?);
    match store.write(writes).await {
        Ok(_) => {}
        // Another scheduler released some of these rows first (or they
        // went with their agenda): this decision is void, the next turn
        // decides on the backlog as it is then.
        Err(StoreError::ConditionFailed { .. } | StoreError::NotFound { .. }) => {
            tracing::debug!(insight = insight_id, "another turn released first; decision dropped");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    }
    finish_release(ports, &released, now).await?;
    let agenda_ids = released
        .iter()
        .map(|r| r.agenda_id.clone().unwrap_or_default())
        .collect::<Vec<_>>();
    tracing::debug!(
        insight = insight_id,
        released = agenda_ids.len(),
        by = decision.decided_by,
        "queue topped up"
    );
    let more = room > per_write && agenda_ids.len() as u64 == per_write;
    Ok(Some(Released {
        insight_id,
        agenda_ids,
        decided_by: decision.decided_by,
        more,
    }))
}

/// Steps 2 and 3 of a release: enqueue the released rows' messages, then
/// delete the rows.
async fn finish_release(ports: &SchedulerPorts, rows: &[ReadyAgenda], now: EpochMillis) -> AppResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let messages = rows.iter().map(|row| queued_from(row, now)).collect();
    ports.queue.enqueue(messages).await?;
    ports.released.notify_waiters();
    remove_rows(ports, rows).await
}

/// Step 3: delete released rows (each only while still marked as read).
async fn remove_rows(ports: &SchedulerPorts, rows: &[ReadyAgenda]) -> AppResult<()> {
    let deletes = rows
        .iter()
        .map(|row| {
            Write::delete_if(
                ObjectKind::ReadyAgenda,
                row.envelope.id.clone().unwrap_or_default(),
                Expect::field("releasedAt", row.released_at),
            )
        })
        .collect::<Vec<_>>();
    // One by one: a row that went meanwhile (its agenda was deleted) must
    // not keep the others.
    for delete in deletes {
        match ports.store.write(vec![delete]).await {
            Ok(_) | Err(StoreError::ConditionFailed { .. } | StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Stale released rows whose message was never delivered (to enqueue
/// again), and those whose message a delivery already started, or whose
/// agenda is gone (to remove only).
async fn split_delivered(store: &dyn Store, rows: &[ReadyAgenda]) -> AppResult<(Vec<ReadyAgenda>, Vec<ReadyAgenda>)> {
    let mut redo = Vec::new();
    let mut delivered = Vec::new();
    for row in rows {
        let row_id = row.envelope.id.as_deref().unwrap_or_default();
        let agenda = store
            .get(ObjectKind::Agenda, row.agenda_id.as_deref().unwrap_or_default())
            .await?;
        let progress_id = agenda
            .as_ref()
            .and_then(|a| a.get("progressId"))
            .and_then(Value::as_str);
        let token = match progress_id {
            Some(id) => store
                .get(ObjectKind::AgendaProgress, id)
                .await?
                .and_then(|p| p.get(fence::FIELD).and_then(Value::as_str).map(String::from)),
            None => None,
        };
        let started = token.is_some_and(|t| t.strip_prefix(row_id).is_some_and(|rest| rest.starts_with('/')));
        if agenda.is_none() || started {
            delivered.push(row.clone());
        } else {
            redo.push(row.clone());
        }
    }
    Ok((redo, delivered))
}

/// The queue message of a released backlog row (same id: the enqueue of a
/// re-driven release finds it).
fn queued_from(row: &ReadyAgenda, now: EpochMillis) -> QueuedAgenda {
    let mut queued = QueuedAgenda {
        insight_id: row.insight_id.clone(),
        agenda_id: row.agenda_id.clone(),
        added: row.added,
        priority: row.priority,
        queued_time: Some(now),
        released_by: row.released_by.clone(),
        ..Default::default()
    };
    queued.envelope.id = row.envelope.id.clone();
    queued.envelope.customer_id = row.envelope.customer_id.clone();
    queued.envelope.added_time = Some(now);
    queued.envelope.updated_time = Some(now);
    queued
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use pop_memory::{Fault, FaultyQueue, MemoryBlobStore, MemoryQueue, MemoryStore};
    use pop_ports::{Document, Filter, ManualClock, ScanCursor, ScanPage};
    use pop_wasm::{Runtime, RuntimeConfig};
    use tokio::sync::Barrier;

    use super::*;

    const AGENDAS: usize = 5;

    fn doc(value: Value) -> Document {
        value.as_object().cloned().unwrap_or_default()
    }

    fn insight() -> Insight {
        from_document(doc(json!({"id": "work", "customerId": "acme", "queueSize": 10,
            "schedulingAlgorithm": "FirstInFirstOut"})))
        .unwrap()
    }

    /// Agendas a0.. with their progress, each waiting in the backlog as
    /// row r-a<n>, released (by a scheduler that stopped) when `released`.
    async fn backlog(store: &dyn Store, released: Option<EpochMillis>) {
        let mut writes = Vec::new();
        for n in 0..AGENDAS {
            writes.push(Write::put(
                ObjectKind::Agenda,
                doc(json!({"id": format!("a{n}"), "customerId": "acme", "progressId": format!("p{n}")})),
            ));
            writes.push(Write::put(
                ObjectKind::AgendaProgress,
                doc(json!({"id": format!("p{n}"), "customerId": "acme", "processingState": "WAITING"})),
            ));
            let mut row = json!({"id": format!("r-a{n}"), "customerId": "acme", "insightId": "work",
                "agendaId": format!("a{n}"), "added": n});
            if let Some(at) = released {
                row["releasedAt"] = json!(at);
                row["releasedBy"] = json!("FirstInFirstOut");
            }
            writes.push(Write::put(ObjectKind::ReadyAgenda, doc(row)));
        }
        store.write(writes).await.unwrap();
    }

    async fn plugins(store: Arc<dyn Store>) -> Arc<PluginHost> {
        let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
        PluginHost::start(
            Arc::new(runtime),
            store,
            Arc::new(MemoryBlobStore::new()),
            Arc::new(ManualClock::default()),
        )
        .await
        .unwrap()
    }

    fn ports(store: Arc<dyn Store>, queue: Arc<dyn Queue>, clock: Arc<ManualClock>) -> SchedulerPorts {
        SchedulerPorts {
            store,
            queue,
            clock,
            released: Arc::new(Notify::new()),
        }
    }

    async fn queued_agendas(queue: &dyn Queue) -> Vec<String> {
        let mut ids: Vec<String> = queue
            .list("work", 100)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.agenda_id.unwrap_or_default())
            .collect();
        ids.sort();
        ids
    }

    async fn rows_left(store: &dyn Store) -> u64 {
        store.count(ObjectKind::ReadyAgenda, &Query::all(), None).await.unwrap()
    }

    /// A store whose first two backlog reads wait for each other: two
    /// schedulers then decide on the same backlog, as two processes can.
    struct SameBacklog {
        inner: Arc<dyn Store>,
        gate: Barrier,
        gated: AtomicUsize,
    }

    #[async_trait]
    impl Store for SameBacklog {
        async fn get(&self, kind: ObjectKind, id: &str) -> pop_ports::Result<Option<Document>> {
            self.inner.get(kind, id).await
        }
        async fn query(
            &self,
            kind: ObjectKind,
            query: &Query,
            visible: Option<Filter>,
        ) -> pop_ports::Result<Vec<Document>> {
            let rows = self.inner.query(kind, query, visible).await;
            if kind == ObjectKind::ReadyAgenda && self.gated.fetch_add(1, Ordering::SeqCst) < 2 {
                self.gate.wait().await;
            }
            rows
        }
        async fn count(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> pop_ports::Result<u64> {
            self.inner.count(kind, query, visible).await
        }
        async fn scan(
            &self,
            kind: ObjectKind,
            query: &Query,
            filter: Option<Filter>,
            from: Option<&ScanCursor>,
            examine: usize,
        ) -> pop_ports::Result<ScanPage> {
            self.inner.scan(kind, query, filter, from, examine).await
        }
        async fn write(&self, writes: Vec<Write>) -> pop_ports::Result<Vec<Option<Document>>> {
            self.inner.write(writes).await
        }
    }

    #[tokio::test]
    async fn two_schedulers_deciding_on_one_backlog_release_each_agenda_once() {
        let clock = Arc::new(ManualClock::default());
        let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
        backlog(memory.as_ref(), None).await;
        let store: Arc<dyn Store> = Arc::new(SameBacklog {
            inner: memory.clone(),
            gate: Barrier::new(2),
            gated: AtomicUsize::new(0),
        });
        let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new(clock.clone()));
        // Two processes: each its own plugin host, the same engines.
        let (host_a, host_b) = (plugins(store.clone()).await, plugins(store.clone()).await);
        let ports = ports(store, queue.clone(), clock);
        let insight = insight();
        let (a, b) = tokio::join!(top_up(&ports, &host_a, &insight), top_up(&ports, &host_b, &insight));
        let released: Vec<Released> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
        assert_eq!(released.len(), 1, "exactly one decision took effect: {released:?}");
        assert_eq!(released[0].agenda_ids.len(), AGENDAS);
        assert_eq!(queued_agendas(queue.as_ref()).await, ["a0", "a1", "a2", "a3", "a4"]);
        assert_eq!(rows_left(memory.as_ref()).await, 0);
        // The next turn finds nothing left to release.
        assert_eq!(top_up(&ports, &host_a, &insight).await.unwrap(), None);
        assert_eq!(queue.list("work", 100).await.unwrap().len(), AGENDAS);
    }

    #[tokio::test]
    async fn a_queue_with_room_for_more_than_one_write_is_filled_in_several_releases() {
        let clock = Arc::new(ManualClock::default());
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut writes = Vec::new();
        for n in 0..150 {
            writes.push(Write::put(
                ObjectKind::ReadyAgenda,
                doc(
                    json!({"id": format!("r-{n}"), "customerId": "acme", "insightId": "work",
                    "agendaId": format!("a{n}"), "added": n}),
                ),
            ));
            if writes.len() == 100 {
                store.write(std::mem::take(&mut writes)).await.unwrap();
            }
        }
        store.write(writes).await.unwrap();
        let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new(clock.clone()));
        let host = plugins(store.clone()).await;
        let ports = ports(store.clone(), queue.clone(), clock);
        let mut insight = insight();
        insight.queue_size = Some(500);
        // Each release is one atomic write of its marks and the state.
        let first = top_up(&ports, &host, &insight).await.unwrap().expect("a release");
        assert_eq!(first.agenda_ids.len(), store.max_writes() - 1);
        assert!(first.more, "the queue has room for more");
        let second = top_up(&ports, &host, &insight).await.unwrap().expect("a release");
        assert_eq!(second.agenda_ids.len(), 150 - (store.max_writes() - 1));
        assert!(!second.more);
        assert_eq!(queue.list("work", 500).await.unwrap().len(), 150);
        assert_eq!(rows_left(store.as_ref()).await, 0);
    }

    #[tokio::test]
    async fn a_release_cut_off_before_the_enqueue_is_redriven_once() {
        let clock = Arc::new(ManualClock::default());
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        backlog(store.as_ref(), None).await;
        let memory_queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new(clock.clone()));
        let queue = Arc::new(FaultyQueue::new(memory_queue.clone()));
        let host = plugins(store.clone()).await;
        let ports = ports(store.clone(), queue.clone(), clock.clone());
        let insight = insight();
        // The process "dies" between marking the rows and the enqueue.
        queue.fail_next_enqueues([Fault::Permanent]);
        assert!(top_up(&ports, &host, &insight).await.is_err());
        assert!(queued_agendas(queue.as_ref()).await.is_empty());
        assert_eq!(rows_left(store.as_ref()).await, AGENDAS as u64, "marked, not lost");
        // Marked rows are neither decided on again nor re-driven at once
        // (their scheduler may still be finishing).
        assert_eq!(top_up(&ports, &host, &insight).await.unwrap(), None);
        assert!(queued_agendas(queue.as_ref()).await.is_empty());
        clock.advance(Duration::from_millis(
            crate::domain::scheduling::REDRIVE_AFTER_MS as u64 + 1,
        ));
        top_up(&ports, &host, &insight).await.unwrap();
        assert_eq!(queued_agendas(queue.as_ref()).await, ["a0", "a1", "a2", "a3", "a4"]);
        assert_eq!(rows_left(store.as_ref()).await, 0);
        clock.advance(Duration::from_secs(60));
        top_up(&ports, &host, &insight).await.unwrap();
        assert_eq!(queue.list("work", 100).await.unwrap().len(), AGENDAS, "released once");
    }

    #[tokio::test]
    async fn a_release_cut_off_after_the_enqueue_does_not_run_delivered_agendas_again() {
        let clock = Arc::new(ManualClock::default());
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        // The state a process leaves when it dies after the enqueue and
        // before removing the rows: marked rows, their messages queued.
        backlog(store.as_ref(), Some(clock.now_millis())).await;
        let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new(clock.clone()));
        let rows: Vec<ReadyAgenda> = store
            .query(ObjectKind::ReadyAgenda, &Query::all(), None)
            .await
            .unwrap()
            .into_iter()
            .map(|d| from_document(d).unwrap())
            .collect();
        queue
            .enqueue(rows.iter().map(|r| queued_from(r, clock.now_millis())).collect())
            .await
            .unwrap();
        // a0 ran to the end meanwhile: its delivery took the token over and
        // acknowledged the message.
        let delivered = queue
            .claim("work", 1, "puller", Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(delivered[0].agenda_id.as_deref(), Some("a0"));
        let token = doc(json!({ fence::FIELD: fence::token_of(&delivered[0]), "processingState": "COMPLETE" }));
        store
            .write(vec![Write::merge(ObjectKind::AgendaProgress, "p0", token)])
            .await
            .unwrap();
        queue.acknowledge(&delivered[0]).await.unwrap();
        let host = plugins(store.clone()).await;
        let ports = ports(store.clone(), queue.clone(), clock.clone());
        clock.advance(Duration::from_millis(
            crate::domain::scheduling::REDRIVE_AFTER_MS as u64 + 1,
        ));
        top_up(&ports, &host, &insight()).await.unwrap();
        assert_eq!(
            queued_agendas(queue.as_ref()).await,
            ["a1", "a2", "a3", "a4"],
            "a0 is not queued again; the others stay queued once"
        );
        assert_eq!(rows_left(store.as_ref()).await, 0);
    }
}
