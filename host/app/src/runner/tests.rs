//! The executor and the puller on the in-memory store and queue, a manual
//! clock and a scripted launcher whose operations end when the test says:
//! every step below waits for an event (a launch, a finished run), never
//! for time to pass.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pop_core::{ObjectKind, QueuedAgenda};
use pop_handlers_registry::Registry;
use pop_memory::{MemoryQueue, MemoryStore};
use pop_ports::{
    Clock, Document, Durability, Launcher, ManualClock, OperationResult, OperationRun, ProgressSink, Queue, Store,
    Write,
};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};

use super::{Launchers, Runner, RunnerConfig, executor};
use crate::domain::body::to_document;
use crate::domain::progress::new_operation_progress;

const LEASE: Duration = Duration::from_secs(30);
const HEARTBEAT: Duration = Duration::from_secs(10);
/// A bound on each wait for an event, so a regression fails instead of hanging.
const HANG: Duration = Duration::from_secs(20);

/// One launch the scripted launcher is holding until the test answers.
struct Started {
    name: String,
    payload: Value,
    reply: oneshot::Sender<Value>,
}

/// Runs operations of type `step`: each launch is announced to the test,
/// and succeeds with what the test replies.
struct Scripted {
    started: mpsc::UnboundedSender<Started>,
    durability: Durability,
}

#[async_trait]
impl Launcher for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn accepts(&self, op_type: &str) -> bool {
        op_type == "step"
    }

    fn durability(&self) -> Durability {
        self.durability
    }

    async fn launch(&self, run: &OperationRun, _progress: Arc<dyn ProgressSink>) -> OperationResult {
        let (reply, answer) = oneshot::channel();
        let started = Started {
            name: run.name.clone(),
            payload: run.payload.clone(),
            reply,
        };
        let _ = self.started.send(started);
        match answer.await {
            Ok(output) => OperationResult::succeeded(Default::default(), output, 0),
            Err(_) => OperationResult::failed_with(0, "the test dropped the launch".into(), 0),
        }
    }
}

struct Setup {
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    runner: Arc<Runner>,
    started: mpsc::UnboundedReceiver<Started>,
}

impl Setup {
    fn new() -> Self {
        Self::with(Durability::InProcess)
    }

    fn with(durability: Durability) -> Self {
        let clock = Arc::new(ManualClock::at(1_700_000_000_000));
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new(clock.clone()));
        let (started_tx, started) = mpsc::unbounded_channel();
        let launchers = Launchers::new(
            vec![Arc::new(Scripted {
                started: started_tx,
                durability,
            })],
            Arc::new(Registry::builtin()),
        );
        let runner = Arc::new(Runner {
            store: store.clone(),
            queue: queue.clone(),
            clock: clock.clone(),
            launchers,
            config: RunnerConfig {
                puller_id: "puller-1".into(),
                default_execution_limit: 10,
                operation_parallelism: 50,
                lease: LEASE,
                heartbeat: HEARTBEAT,
                claim_wait: Duration::from_secs(1),
            },
            wake_scheduler: Arc::new(Notify::new()),
            released: Arc::new(Notify::new()),
        });
        Self {
            clock,
            store,
            queue,
            runner,
            started,
        }
    }

    /// Agenda `id` (progress `p-<id>`) with `operations`, and its queue entry.
    async fn agenda(&self, id: &str, operations: Value) {
        let agenda = json!({"id": id, "customerId": "acme", "cid": "cid-1", "progressId": format!("p-{id}"),
            "agendaInsight": {"insightId": "work"}, "operations": operations});
        let progress = json!({"id": format!("p-{id}"), "customerId": "acme", "agendaId": id,
            "processingState": "WAITING"});
        let mut writes = vec![
            Write::put(ObjectKind::Agenda, doc(agenda)),
            Write::put(ObjectKind::AgendaProgress, doc(progress)),
        ];
        // The WAITING rows a submission writes, one per operation.
        for op in operations.as_array().into_iter().flatten() {
            let name = op["name"].as_str().unwrap_or_default();
            let row = new_operation_progress(&format!("p-{id}"), name, "acme", "cid-1", None, self.clock.now_millis());
            writes.push(Write::put(ObjectKind::OperationProgress, to_document(&row).unwrap()));
        }
        self.store.write(writes).await.unwrap();
    }

    async fn enqueue(&self, agenda_id: &str) {
        let mut message = QueuedAgenda {
            insight_id: Some("work".into()),
            agenda_id: Some(agenda_id.into()),
            ..Default::default()
        };
        message.envelope.id = Some(format!("m-{agenda_id}"));
        self.queue.enqueue(vec![message]).await.unwrap();
    }

    async fn claim(&self, owner: &str) -> QueuedAgenda {
        let mut claimed = self.queue.claim("work", 1, owner, LEASE, Duration::ZERO).await.unwrap();
        claimed.pop().expect("a message to claim")
    }

    async fn next_launch(&mut self) -> Started {
        tokio::time::timeout(HANG, self.started.recv())
            .await
            .expect("an operation was launched")
            .expect("the launcher is alive")
    }

    /// Whether a launch is waiting, after everything runnable has run.
    async fn launch_pending(&mut self) -> bool {
        settle().await;
        !self.started.is_empty()
    }

    async fn progress(&self, agenda_id: &str) -> Document {
        let id = format!("p-{agenda_id}");
        self.store.get(ObjectKind::AgendaProgress, &id).await.unwrap().unwrap()
    }

    async fn operation(&self, agenda_id: &str, name: &str) -> Option<Document> {
        let id = pop_core::OperationProgress::id_for(&format!("p-{agenda_id}"), name);
        self.store.get(ObjectKind::OperationProgress, &id).await.unwrap()
    }

    /// Waits (by yielding, not sleeping) until `check` holds of the store.
    async fn until(&self, what: &str, check: impl AsyncFn(&Self) -> bool) {
        for _ in 0..10_000 {
            if check(self).await {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("never came to pass: {what}");
    }
}

fn doc(value: Value) -> Document {
    value.as_object().cloned().unwrap_or_default()
}

/// Lets every task that can run, run.
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

fn state(doc: &Document) -> (Option<&str>, Option<&str>) {
    (
        doc.get("processingState").and_then(Value::as_str),
        doc.get("processingStateMessage").and_then(Value::as_str),
    )
}

fn chain() -> Value {
    json!([
        {"name": "first", "type": "step", "payload": {}},
        {"name": "second", "type": "step", "payload": {"v": "@<first.out::/v>"}}
    ])
}

#[tokio::test]
async fn a_run_that_lost_its_lease_records_nothing_and_the_next_delivery_finishes_the_agenda() {
    let mut setup = Setup::new();
    setup.agenda("a1", chain()).await;
    setup.enqueue("a1").await;
    let first_delivery = setup.claim("puller-1").await;
    let first_run = tokio::spawn(executor::run(setup.runner.clone(), first_delivery));
    let stale = setup.next_launch().await;
    assert_eq!(stale.name, "first");

    // The lease runs out (the puller stalled) and another puller gets the
    // agenda: no await in between, so no heartbeat can come first.
    setup.clock.advance(LEASE * 2);
    let second_delivery = setup.claim("puller-2").await;
    assert_eq!(second_delivery.deliveries, Some(2));
    let second_run = tokio::spawn(executor::run(setup.runner.clone(), second_delivery));
    let fresh = setup.next_launch().await;
    assert_eq!(
        fresh.name, "first",
        "the operation was not recorded as done, so it runs again"
    );

    // The first run's handler finishes late: nothing of it is recorded.
    let _ = stale.reply.send(json!({"v": "stale"}));
    let ended = tokio::time::timeout(HANG, first_run)
        .await
        .expect("the stale run ends")
        .unwrap();
    assert!(ended.is_err(), "the stale run ends without an outcome: {ended:?}");
    let first = setup.operation("a1", "first").await.unwrap_or_default();
    assert_ne!(state(&first).0, Some("COMPLETE"), "{first:?}");

    let _ = fresh.reply.send(json!({"v": "fresh"}));
    let second = setup.next_launch().await;
    assert_eq!(second.name, "second");
    assert_eq!(
        second.payload,
        json!({"v": "fresh"}),
        "the current run's output is referenced"
    );
    let _ = second.reply.send(json!({"done": true}));
    tokio::time::timeout(HANG, second_run)
        .await
        .expect("the current run ends")
        .unwrap()
        .expect("the current run records its outcome");

    let progress = setup.progress("a1").await;
    assert_eq!(state(&progress), (Some("COMPLETE"), Some("succeeded")));
    assert_eq!(progress["attemptsCompleted"], 1);
    let first = setup.operation("a1", "first").await.unwrap();
    assert_eq!(first["resultPayload"], json!({"v": "fresh"}).to_string());
    let rows = setup
        .store
        .query(ObjectKind::OperationProgress, &pop_ports::Query::all(), None)
        .await
        .unwrap();
    assert!(!serde_json::to_string(&rows).unwrap().contains("stale"), "{rows:?}");
    assert!(
        setup.queue.of_agenda("a1").await.unwrap().is_empty(),
        "the delivery was acknowledged"
    );
}

#[tokio::test]
async fn a_rerun_while_the_agenda_runs_fences_the_old_in_process_run_off() {
    let mut setup = rerun_while_running(Durability::InProcess).await;
    // Writes are behind the run, so it may have started the next operation
    // before learning that it lost: that launch was stopped with the run.
    settle().await;
    while let Ok(launched) = setup.started.try_recv() {
        assert!(launched.reply.is_closed(), "{} was stopped with the run", launched.name);
    }
}

#[tokio::test]
async fn a_rerun_while_the_agenda_runs_fences_the_old_detached_run_off() {
    let mut setup = rerun_while_running(Durability::Detached).await;
    // A detached run starts only once its start is recorded, which the
    // fence refuses: nothing more was launched at all.
    assert!(!setup.launch_pending().await, "the old run launched nothing more");
}

/// Agenda a1 runs; while its first operation runs, it is rerun; then that
/// operation finishes. The old run must have recorded nothing of it.
async fn rerun_while_running(durability: Durability) -> Setup {
    let mut setup = Setup::with(durability);
    setup.agenda("a1", chain()).await;
    setup.enqueue("a1").await;
    let old_run = tokio::spawn(executor::run(setup.runner.clone(), setup.claim("puller-1").await));
    let stale = setup.next_launch().await;
    // The lease is still held and its heartbeat would go on succeeding:
    // only the fencing token in the progress stops the old run.
    let caller = pop_core::visibility::Caller::service();
    crate::services::service::rerun(
        setup.store.as_ref(),
        setup.queue.as_ref(),
        &caller,
        json!({"agendaId": "a1"}),
        setup.clock.now_millis(),
    )
    .await
    .expect("the rerun is accepted");
    let _ = stale.reply.send(json!({"v": "stale"}));
    let ended = tokio::time::timeout(HANG, old_run)
        .await
        .expect("the old run ends")
        .unwrap();
    assert!(ended.is_err(), "the old run ends without an outcome: {ended:?}");
    let first = setup.operation("a1", "first").await.unwrap_or_default();
    assert_ne!(state(&first).0, Some("COMPLETE"), "{first:?}");
    let progress = setup.progress("a1").await;
    assert_eq!(state(&progress).0, Some("WAITING"), "{progress:?}");
    setup
}

#[tokio::test]
async fn a_run_cut_off_after_an_operation_succeeded_resumes_without_running_it_again() {
    let mut setup = Setup::new();
    setup.agenda("a1", chain()).await;
    setup.enqueue("a1").await;
    let first_run = tokio::spawn(executor::run(setup.runner.clone(), setup.claim("puller-1").await));
    let first = setup.next_launch().await;
    let _ = first.reply.send(json!({"v": 7}));
    let second = setup.next_launch().await;
    assert_eq!(second.name, "second");
    setup
        .until("first is recorded as succeeded", async |s: &Setup| {
            s.operation("a1", "first")
                .await
                .is_some_and(|row| state(&row) == (Some("COMPLETE"), Some("succeeded")))
        })
        .await;

    // The server dies with `second` running; the lease brings it back.
    first_run.abort();
    drop(second);
    setup.clock.advance(LEASE * 2);
    let resumed = tokio::spawn(executor::run(setup.runner.clone(), setup.claim("puller-2").await));
    let again = setup.next_launch().await;
    assert_eq!(again.name, "second", "the succeeded operation is not run again");
    assert_eq!(again.payload, json!({"v": 7}), "its recorded output is referenced");
    assert!(!setup.launch_pending().await);
    let _ = again.reply.send(json!({}));
    tokio::time::timeout(HANG, resumed)
        .await
        .expect("the run ends")
        .unwrap()
        .unwrap();
    let progress = setup.progress("a1").await;
    assert_eq!(state(&progress), (Some("COMPLETE"), Some("succeeded")));
}

#[tokio::test]
async fn the_puller_wakes_on_an_enqueue_and_runs_no_more_than_the_execution_limit() {
    let mut setup = Setup::new();
    let insight = json!({"id": "work", "customerId": "acme", "queueSize": 10, "executionLimit": 2,
        "schedulingAlgorithm": "FirstInFirstOut"});
    setup
        .store
        .write(vec![Write::put(ObjectKind::Insight, doc(insight))])
        .await
        .unwrap();
    let one = json!([{"name": "only", "type": "step", "payload": {}}]);
    for id in ["a1", "a2", "a3"] {
        setup.agenda(id, one.clone()).await;
    }
    let puller = super::spawn(setup.runner.clone());
    // The puller waits in its long-polling claim; the manual clock never
    // moves, so only the enqueue can wake it.
    assert!(!setup.launch_pending().await);
    for id in ["a1", "a2", "a3"] {
        setup.enqueue(id).await;
    }
    let a = setup.next_launch().await;
    let b = setup.next_launch().await;
    assert!(!setup.launch_pending().await, "executionLimit 2 holds the third back");
    let _ = a.reply.send(json!({}));
    let c = setup.next_launch().await;
    assert!(!setup.launch_pending().await);
    let _ = b.reply.send(json!({}));
    let _ = c.reply.send(json!({}));
    for id in ["a1", "a2", "a3"] {
        setup
            .until("every agenda completes", async |s: &Setup| {
                state(&s.progress(id).await).0 == Some("COMPLETE")
            })
            .await;
    }
    assert_eq!(puller.drain(Duration::ZERO).await, 0, "nothing was left running");
}

/// An operation whose result the store could not keep fails with the limit
/// named, and the agenda completes: it is not retried at every delivery.
#[tokio::test]
async fn a_result_beyond_the_row_limit_fails_its_operation_and_the_agenda_completes() {
    let mut setup = Setup::new();
    setup.agenda("a1", json!([{"name": "big", "type": "step"}])).await;
    setup.enqueue("a1").await;
    let run = tokio::spawn(executor::run(setup.runner.clone(), setup.claim("puller-1").await));
    let big = setup.next_launch().await;
    let limit = pop_ports::DocumentLimits::ITEM.max_bytes;
    let _ = big.reply.send(json!({"blob": "x".repeat(limit)}));
    tokio::time::timeout(HANG, run)
        .await
        .expect("the run ends")
        .unwrap()
        .unwrap();
    let row = setup.operation("a1", "big").await.expect("the operation's row");
    assert_eq!(state(&row), (Some("COMPLETE"), Some("failed")));
    let progress = setup.progress("a1").await;
    assert_eq!(state(&progress), (Some("COMPLETE"), Some("failed")));
    let diagnostics = progress["diagnosticEvents"].to_string();
    assert!(
        diagnostics.contains(&format!("at most {limit} bytes per operation")),
        "{diagnostics}"
    );
}

/// Reruns of one failed attempt, all at once: one takes effect, the others
/// are refused naming the attempt it started, and so is every rerun until
/// that attempt completes; a reset that runs nothing blocks no later rerun.
#[tokio::test]
async fn of_concurrent_reruns_of_one_attempt_exactly_one_takes_effect() {
    let setup = Setup::new();
    setup.agenda("a1", chain()).await;
    setup
        .store
        .write(vec![
            Write::put(ObjectKind::Insight, doc(json!({"id": "work", "customerId": "acme"}))),
            Write::merge(
                ObjectKind::AgendaProgress,
                "p-a1",
                doc(
                    json!({"processingState": "COMPLETE", "processingStateMessage": "failed",
                    "attemptsCompleted": 1, "fencingToken": "m-a1/1"}),
                ),
            ),
        ])
        .await
        .unwrap();
    let caller = pop_core::visibility::Caller::service();
    let rerun = |params: Value| {
        crate::services::service::rerun(
            setup.store.as_ref(),
            setup.queue.as_ref(),
            &caller,
            json!({"agendaId": "a1", "params": params}),
            setup.clock.now_millis(),
        )
    };
    let answers = futures_util::future::join_all((0..10).map(|_| rerun(json!(["continue"])))).await;
    let taken = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(taken, 1, "{answers:?}");
    for refused in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert!(
            matches!(refused, crate::AppError::Conflict(m) if m.contains("already being rerun: attempt 2")),
            "{refused:?}"
        );
    }
    let backlog = setup
        .store
        .query(ObjectKind::ReadyAgenda, &pop_ports::Query::all(), None)
        .await
        .unwrap();
    assert_eq!(backlog.len(), 1, "one backlog row: {backlog:?}");
    assert!(
        rerun(json!(["continue"])).await.is_err(),
        "refused while attempt 2 is pending"
    );

    // Attempt 2 completes: a rerun is accepted again. A rerun that does
    // not run the agenda (skipExecution) starts no attempt to wait for.
    setup
        .store
        .write(vec![Write::merge(
            ObjectKind::AgendaProgress,
            "p-a1",
            doc(json!({"processingState": "COMPLETE", "attemptsCompleted": 2})),
        )])
        .await
        .unwrap();
    setup
        .store
        .write(vec![Write::delete(
            ObjectKind::ReadyAgenda,
            backlog[0]["id"].as_str().unwrap(),
        )])
        .await
        .unwrap();
    rerun(json!(["skipExecution"])).await.expect("a reset without a run");
    rerun(json!(["continue"])).await.expect("the next attempt");
}
