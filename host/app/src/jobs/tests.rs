//! The jobs' rules as tables of states → action, on the in-memory store and
//! queue and a manual clock (nothing here sleeps): what each job does with
//! each state, that the reaper never deletes live work, and that two
//! runners at once act once.

use std::sync::Arc;
use std::time::Duration;

use pop_core::{ObjectKind, QueuedAgenda};
use pop_memory::{MemoryQueue, MemoryStore};
use pop_ports::{Clock, Document, ManualClock, Query, Queue, Store, Write};
use serde_json::{Value, json};

use super::{Job, Jobs, JobsConfig};

const T0: i64 = 1_800_000_000_000;
const MINUTE: i64 = 60_000;

struct World {
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
}

impl World {
    async fn new() -> Self {
        let clock = Arc::new(ManualClock::at(T0));
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new(clock.clone()));
        let world = Self { clock, store, queue };
        world
            .put(
                ObjectKind::Insight,
                json!({"id": "work", "customerId": "ops", "isGlobal": true}),
            )
            .await;
        world
    }

    /// A job runner on this world (one per "process").
    fn jobs(&self) -> Jobs {
        let config = JobsConfig {
            reclaim_after: Duration::from_secs(5 * 60),
            retention: Duration::from_secs(60 * 60),
            max_deliveries: 3,
            ..JobsConfig::default()
        };
        Jobs::new(self.store.clone(), self.queue.clone(), self.clock.clone(), config)
    }

    async fn put(&self, kind: ObjectKind, doc: Value) {
        self.store
            .write(vec![Write::put(kind, doc.as_object().cloned().unwrap())])
            .await
            .unwrap();
    }

    async fn get(&self, kind: ObjectKind, id: &str) -> Option<Document> {
        self.store.get(kind, id).await.unwrap()
    }

    /// Agenda `a` (customer acme, one operation `op`, insight `work`), its
    /// progress `p-a` with `progress` merged in, and the operation's row.
    async fn agenda(&self, a: &str, progress: Value) {
        self.put(
            ObjectKind::Agenda,
            json!({"id": a, "customerId": "acme", "progressId": format!("p-{a}"),
                "agendaInsight": {"insightId": "work", "resourcePoolId": "pool"},
                "operations": [{"name": "op", "type": "step", "payload": {}}]}),
        )
        .await;
        let mut doc = json!({"id": format!("p-{a}"), "agendaId": a, "customerId": "acme",
            "attemptsCompleted": 0, "maximumAttempts": 1, "updatedTime": T0});
        doc.as_object_mut()
            .unwrap()
            .extend(progress.as_object().cloned().unwrap());
        self.put(ObjectKind::AgendaProgress, doc).await;
        self.put(
            ObjectKind::OperationProgress,
            json!({"id": format!("p-{a}-op"), "agendaProgressId": format!("p-{a}"), "operation": "op",
                "customerId": "acme", "processingState": "WAITING", "updatedTime": T0}),
        )
        .await;
    }

    async fn backlog_row(&self, a: &str, insight: &str) {
        self.put(
            ObjectKind::ReadyAgenda,
            json!({"id": format!("r-{a}"), "agendaId": a, "insightId": insight, "customerId": "acme"}),
        )
        .await;
    }

    /// A queue entry of `a`, delivered `deliveries` times (the last lease
    /// has run out).
    async fn queued(&self, a: &str, deliveries: usize) {
        // Each agenda its own queue, so that claims of one never deliver another.
        let insight = format!("work-{a}");
        self.put(ObjectKind::Insight, json!({"id": insight, "customerId": "ops"}))
            .await;
        let mut message = QueuedAgenda {
            insight_id: Some(insight.clone()),
            agenda_id: Some(a.into()),
            ..Default::default()
        };
        message.envelope.id = Some(format!("m-{a}"));
        message.envelope.customer_id = Some("acme".into());
        self.queue.enqueue(vec![message]).await.unwrap();
        for _ in 0..deliveries {
            let claimed = self
                .queue
                .claim(&insight, 100, "puller", Duration::from_secs(1), Duration::ZERO)
                .await
                .unwrap();
            assert!(!claimed.is_empty(), "a delivery of {a}");
            self.clock.advance(Duration::from_secs(2));
        }
    }

    fn at(&self, minutes: i64) {
        let now = self.clock.now_millis();
        let target = T0 + minutes * MINUTE;
        if target > now {
            self.clock.advance(Duration::from_millis((target - now) as u64));
        }
    }

    async fn progress(&self, a: &str) -> Document {
        self.get(ObjectKind::AgendaProgress, &format!("p-{a}")).await.unwrap()
    }

    async fn backlog_of(&self, a: &str) -> usize {
        self.store
            .query(ObjectKind::ReadyAgenda, &Query::by("agendaId", a), None)
            .await
            .unwrap()
            .len()
    }
}

fn state(doc: &Document) -> (String, String) {
    let text = |f: &str| doc.get(f).and_then(Value::as_str).unwrap_or_default().to_owned();
    (text("processingState"), text("processingStateMessage"))
}

fn last_diagnostic(doc: &Document) -> String {
    doc.get("diagnosticEvents")
        .and_then(Value::as_array)
        .and_then(|events| events.last())
        .and_then(|event| event["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn failed_pending(due: i64) -> Value {
    json!({"processingState": "COMPLETE", "processingStateMessage": "failed", "attemptsCompleted": 1,
        "maximumAttempts": 3, "retryState": "pending", "nextAttemptTime": due,
        "completedTime": T0, "fencingToken": "m/1"})
}

#[tokio::test]
async fn retry_reruns_a_failed_agenda_once_its_attempt_is_due() {
    let world = World::new().await;
    world.agenda("due", failed_pending(T0 + MINUTE)).await;
    world.agenda("later", failed_pending(T0 + 10 * MINUTE)).await;
    world
        .agenda(
            "done",
            json!({"processingState": "COMPLETE", "processingStateMessage": "succeeded"}),
        )
        .await;
    world
        .agenda(
            "gave-up",
            json!({"processingState": "COMPLETE", "processingStateMessage": "failed", "retryState": "gaveUp"}),
        )
        .await;
    let jobs = world.jobs();

    // Not due yet: nothing is even examined.
    let report = jobs.run(Job::Retry, false).await.unwrap();
    assert_eq!((report.examined, report.acted), (0, 0), "{report:?}");

    world.at(2);
    let dry = jobs.run(Job::Retry, true).await.unwrap();
    assert_eq!(dry.acted, 1, "{dry:?}");
    assert_eq!(
        state(&world.progress("due").await).0,
        "COMPLETE",
        "log only changes nothing"
    );

    let report = jobs.run(Job::Retry, false).await.unwrap();
    assert_eq!(report.acted, 1, "{report:?}");
    let retried = world.progress("due").await;
    assert_eq!(state(&retried), ("WAITING".into(), "pending".into()));
    assert_eq!(retried["retryState"], json!(""), "no retry pending any more");
    assert_eq!(world.backlog_of("due").await, 1, "back in its insight's backlog");
    for untouched in ["later", "done", "gave-up"] {
        assert_eq!(state(&world.progress(untouched).await).0, "COMPLETE", "{untouched}");
        assert_eq!(world.backlog_of(untouched).await, 0, "{untouched}");
    }
    // Ran again: the retried agenda is not retried twice.
    assert_eq!(jobs.run(Job::Retry, false).await.unwrap().acted, 0);
    assert_eq!(world.backlog_of("due").await, 1);
    assert_eq!(jobs.metrics.of(Job::Retry).runs, 4);
}

#[tokio::test]
async fn two_retry_runners_at_once_retry_each_attempt_once() {
    let world = World::new().await;
    let agendas: Vec<String> = (0..20).map(|n| format!("a{n}")).collect();
    for a in &agendas {
        world.agenda(a, failed_pending(T0)).await;
    }
    world.at(1);
    let (one, two) = (world.jobs(), world.jobs());
    let (a, b) = tokio::join!(one.run(Job::Retry, false), two.run(Job::Retry, false));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.acted + b.acted, 20, "{a:?} {b:?}");
    assert_eq!(a.errors + b.errors, 0, "{a:?} {b:?}");
    for agenda in &agendas {
        assert_eq!(world.backlog_of(agenda).await, 1, "{agenda}: one new attempt");
    }
}

#[tokio::test]
async fn a_retry_that_cannot_be_made_gives_up_saying_why() {
    let world = World::new().await;
    world.agenda("orphaned", failed_pending(T0)).await;
    world
        .store
        .write(vec![Write::delete(ObjectKind::Insight, "work")])
        .await
        .unwrap();
    world.at(1);
    let report = world.jobs().run(Job::Retry, false).await.unwrap();
    assert_eq!(report.acted, 1, "{report:?}");
    let progress = world.progress("orphaned").await;
    assert_eq!(progress["retryState"], json!("gaveUp"));
    assert!(last_diagnostic(&progress).contains("gave up retrying"), "{progress:?}");
}

/// The reclaimer, rule by rule: each row is a state and what must become of it.
#[tokio::test]
async fn reclaim_moves_every_state_nothing_else_will() {
    let world = World::new().await;
    let waiting = json!({"processingState": "WAITING", "processingStateMessage": "pending"});
    let executing = json!({"processingState": "EXECUTING", "processingStateMessage": "running", "fencingToken": "m/1"});
    // Covered by a backlog row or a queue entry: left alone.
    world.agenda("in-backlog", waiting.clone()).await;
    world.backlog_row("in-backlog", "work").await;
    world.agenda("in-queue", executing.clone()).await;
    world.queued("in-queue", 1).await;
    // In neither: requeued.
    world.agenda("lost-waiting", waiting.clone()).await;
    world.agenda("lost-executing", executing.clone()).await;
    // In neither, but its insight is gone: failed.
    world.agenda("no-insight", waiting.clone()).await;
    world
        .put(
            ObjectKind::Agenda,
            json!({"id": "no-insight", "customerId": "acme", "progressId": "p-no-insight",
                "agendaInsight": {"insightId": "deleted"}, "operations": []}),
        )
        .await;
    // Its agenda is gone: failed.
    world.agenda("no-agenda", executing.clone()).await;
    world
        .store
        .write(vec![Write::delete(ObjectKind::Agenda, "no-agenda")])
        .await
        .unwrap();
    // Backlog row on a deleted insight: failed, row removed.
    world.agenda("backlog-deleted-insight", waiting.clone()).await;
    world.backlog_row("backlog-deleted-insight", "gone").await;
    // Poison: delivered more than 3 times.
    world.agenda("poison", executing.clone()).await;
    world.queued("poison", 4).await;
    // Not to run: submitted with doNotRun, or reset by a skipExecution rerun.
    world.agenda("do-not-run", waiting.clone()).await;
    world
        .put(
            ObjectKind::Agenda,
            json!({"id": "do-not-run", "customerId": "acme", "progressId": "p-do-not-run",
                "params": {"doNotRun": true}, "agendaInsight": {"insightId": "work"}, "operations": []}),
        )
        .await;
    world
        .agenda(
            "reset-only",
            json!({"processingState": "WAITING", "rerunAttempt": "", "fencingToken": "rerun/x"}),
        )
        .await;
    // Orphaned operation row (its progress never written).
    world
        .put(
            ObjectKind::OperationProgress,
            json!({"id": "orphan-op", "agendaProgressId": "p-never", "operation": "x", "updatedTime": T0}),
        )
        .await;
    let jobs = world.jobs();

    // Within reclaim_after nothing is touched (a release or a completion
    // may be between its steps), except poison and dead backlog rows,
    // which no step will ever fix.
    world.at(2);
    let early = jobs.run(Job::Reclaim, false).await.unwrap();
    assert_eq!(state(&world.progress("lost-waiting").await).0, "WAITING");
    assert_eq!(world.backlog_of("lost-waiting").await, 0, "{early:?}");
    assert!(world.get(ObjectKind::OperationProgress, "orphan-op").await.is_some());

    world.at(10);
    let dry = jobs.run(Job::Reclaim, true).await.unwrap();
    assert!(dry.acted >= 4, "{dry:?}");
    assert_eq!(world.backlog_of("lost-waiting").await, 0, "log only changes nothing");

    let report = jobs.run(Job::Reclaim, false).await.unwrap();
    assert_eq!(report.errors, 0, "{report:?}");
    // (agenda, state after, message after, backlog rows after)
    let table: [(&str, &str, &str, usize); 11] = [
        ("do-not-run", "WAITING", "pending", 0),
        ("reset-only", "WAITING", "", 0),
        ("in-backlog", "WAITING", "pending", 1),
        ("in-queue", "EXECUTING", "running", 0),
        ("lost-waiting", "WAITING", "pending", 1),
        ("lost-executing", "WAITING", "pending", 1),
        ("no-insight", "COMPLETE", "failed", 0),
        ("no-agenda", "COMPLETE", "failed", 0),
        ("backlog-deleted-insight", "COMPLETE", "failed", 0),
        ("poison", "COMPLETE", "failed", 0),
        ("in-queue", "EXECUTING", "running", 0),
    ];
    for (agenda, expected_state, message, rows) in table {
        let progress = world.progress(agenda).await;
        assert_eq!(
            state(&progress),
            (expected_state.to_string(), message.to_string()),
            "{agenda}: {progress:?}"
        );
        assert_eq!(world.backlog_of(agenda).await, rows, "{agenda}: backlog rows");
    }
    assert!(last_diagnostic(&world.progress("lost-executing").await).contains("requeued"));
    assert!(last_diagnostic(&world.progress("no-insight").await).contains("insight"));
    assert!(last_diagnostic(&world.progress("no-agenda").await).contains("no longer exists"));
    assert!(last_diagnostic(&world.progress("backlog-deleted-insight").await).contains("was deleted"));
    let poison = world.progress("poison").await;
    assert!(last_diagnostic(&poison).contains("delivered 4 times"), "{poison:?}");
    assert!(
        poison["fencingToken"].as_str().unwrap().starts_with("reclaim/"),
        "the running delivery is fenced off"
    );
    assert!(
        world.queue.of_agenda("poison").await.unwrap().is_empty(),
        "poison removed from the queue"
    );
    assert_eq!(world.queue.of_agenda("in-queue").await.unwrap().len(), 1);
    assert!(world.get(ObjectKind::OperationProgress, "orphan-op").await.is_none());
    assert!(
        world
            .get(ObjectKind::OperationProgress, "p-in-backlog-op")
            .await
            .is_some()
    );

    // A second run finds nothing more to do.
    let again = jobs.run(Job::Reclaim, false).await.unwrap();
    assert_eq!(again.acted, 0, "{again:?}");
}

/// The reaper never deletes live work, and deletes a completed agenda as a
/// unit once its retention has passed.
#[tokio::test]
async fn reap_deletes_only_completed_work_past_its_retention() {
    let world = World::new().await;
    let complete = |minutes: i64| {
        json!({"processingState": "COMPLETE", "processingStateMessage": "succeeded",
            "completedTime": T0 + minutes * MINUTE, "fencingToken": "m/1"})
    };
    world.agenda("old", complete(0)).await;
    world.agenda("recent", complete(50)).await;
    world.agenda("old-in-backlog", complete(0)).await;
    world.backlog_row("old-in-backlog", "work").await;
    world.agenda("old-queued", complete(0)).await;
    world.queued("old-queued", 1).await;
    world.agenda("old-retry-pending", failed_pending(T0)).await;
    world
        .agenda("old-waiting", json!({"processingState": "WAITING", "updatedTime": T0}))
        .await;
    world
        .agenda(
            "old-executing",
            json!({"processingState": "EXECUTING", "updatedTime": T0, "fencingToken": "m/1"}),
        )
        .await;
    // POP's writers may leave no completedTime: its updatedTime counts.
    world
        .agenda(
            "old-no-completed-time",
            json!({"processingState": "COMPLETE", "processingStateMessage": "failed"}),
        )
        .await;
    world.at(70);
    let jobs = world.jobs();
    let dry = jobs.run(Job::Reap, true).await.unwrap();
    assert_eq!(dry.acted, 2, "{dry:?}");
    assert!(
        world.get(ObjectKind::Agenda, "old").await.is_some(),
        "log only deletes nothing"
    );

    let (one, two) = (world.jobs(), world.jobs());
    let (a, b) = tokio::join!(one.run(Job::Reap, false), two.run(Job::Reap, false));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.acted + b.acted,
        2,
        "two reapers at once delete each unit once: {a:?} {b:?}"
    );
    assert_eq!(a.errors + b.errors, 0);
    for reaped in ["old", "old-no-completed-time"] {
        assert!(world.get(ObjectKind::Agenda, reaped).await.is_none(), "{reaped}");
        assert!(
            world
                .get(ObjectKind::AgendaProgress, &format!("p-{reaped}"))
                .await
                .is_none()
        );
        assert!(
            world
                .get(ObjectKind::OperationProgress, &format!("p-{reaped}-op"))
                .await
                .is_none()
        );
    }
    for kept in [
        "recent",
        "old-in-backlog",
        "old-queued",
        "old-retry-pending",
        "old-waiting",
        "old-executing",
    ] {
        assert!(
            world.get(ObjectKind::Agenda, kept).await.is_some(),
            "{kept} is live or recent"
        );
        assert!(
            world
                .get(ObjectKind::OperationProgress, &format!("p-{kept}-op"))
                .await
                .is_some(),
            "{kept}"
        );
    }
    assert_eq!(jobs.metrics.of(Job::Reap).acted, 2, "log-only actions are counted too");
}

/// A walk larger than one run's batch goes on where it stopped.
#[tokio::test]
async fn a_run_is_bounded_and_the_next_goes_on() {
    let world = World::new().await;
    for n in 0..30 {
        world
            .agenda(
                &format!("a{n}"),
                json!({"processingState": "COMPLETE", "processingStateMessage": "succeeded", "completedTime": T0}),
            )
            .await;
    }
    world.at(70);
    let mut jobs = world.jobs();
    jobs.config.reap.batch = 12;
    let first = jobs.run(Job::Reap, false).await.unwrap();
    assert_eq!(first.acted, 12, "{first:?}");
    assert!(!first.complete);
    let second = jobs.run(Job::Reap, false).await.unwrap();
    let third = jobs.run(Job::Reap, false).await.unwrap();
    assert_eq!(first.acted + second.acted + third.acted, 30, "{second:?} {third:?}");
    assert!(third.complete);
}

/// Plugin versions past the retention go unless an activation or a
/// rollback can reach them; their binary goes with the last version using
/// it; the built-ins stay.
#[tokio::test]
async fn reap_deletes_plugin_versions_nothing_can_reach() {
    use pop_memory::MemoryBlobStore;
    use pop_ports::BlobStore;

    let world = World::new().await;
    let blobs = Arc::new(MemoryBlobStore::new());
    let mut shas = Vec::new();
    for content in [b"one".as_slice(), b"two", b"three"] {
        shas.push(blobs.put(content.to_vec()).await.unwrap());
    }
    let version = |v: &str, sha: &str, owner: &str| {
        json!({"id": format!("{owner}:scheduler:fair@{v}"), "customerId": owner, "pluginKind": "scheduler",
            "name": "fair", "version": v, "sha256": sha, "addedTime": T0})
    };
    // v1 is in the history, v2 active, v3 and v4 unreachable (v4 shares v2's binary).
    world.put(ObjectKind::Plugin, version("1", &shas[0], "acme")).await;
    world.put(ObjectKind::Plugin, version("2", &shas[1], "acme")).await;
    world.put(ObjectKind::Plugin, version("3", &shas[2], "acme")).await;
    world.put(ObjectKind::Plugin, version("4", &shas[1], "acme")).await;
    world.put(ObjectKind::Plugin, version("9", &shas[2], "pop")).await;
    world
        .put(
            ObjectKind::PluginActivation,
            json!({"id": "acme:scheduler:fair", "customerId": "acme", "pluginKind": "scheduler", "name": "fair",
                "activeVersion": "2", "history": ["1"], "updatedTime": T0}),
        )
        .await;
    world.at(70);
    let jobs = world.jobs().with_blobs(blobs.clone());
    let report = jobs.run(Job::Reap, false).await.unwrap();
    assert_eq!(report.errors, 0, "{report:?}");
    let kept: Vec<bool> = futures_util::future::join_all(
        [
            "acme:scheduler:fair@1",
            "acme:scheduler:fair@2",
            "acme:scheduler:fair@3",
            "acme:scheduler:fair@4",
            "pop:scheduler:fair@9",
        ]
        .map(|id| world.get(ObjectKind::Plugin, id)),
    )
    .await
    .into_iter()
    .map(|doc| doc.is_some())
    .collect();
    assert_eq!(kept, [true, true, false, false, true], "{report:?}");
    assert!(blobs.get(&shas[1]).await.unwrap().is_some(), "v2 still uses its binary");
    assert!(
        blobs.get(&shas[2]).await.unwrap().is_some(),
        "the built-in still uses its binary"
    );
    assert!(blobs.get(&shas[0]).await.unwrap().is_some());
}

/// A launcher that keeps something of some agendas (as the process
/// launcher keeps report files), recording what it is told to forget.
struct Keeping {
    kept: Vec<(String, i64)>,
    forgotten: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl pop_ports::Launcher for Keeping {
    fn name(&self) -> &'static str {
        "keeping"
    }
    fn accepts(&self, _op_type: &str) -> bool {
        false
    }
    fn durability(&self) -> pop_ports::Durability {
        pop_ports::Durability::Detached
    }
    async fn launch(
        &self,
        _run: &pop_ports::OperationRun,
        _progress: Arc<dyn pop_ports::ProgressSink>,
    ) -> pop_ports::OperationResult {
        unreachable!("nothing is launched here")
    }
    async fn forget_agenda(&self, agenda_id: &str) {
        self.forgotten.lock().unwrap().push(agenda_id.to_owned());
    }
    async fn kept_agendas(&self) -> Result<Vec<(String, i64)>, pop_ports::LaunchError> {
        Ok(self.kept.clone())
    }
}

/// What a launcher kept of finished or deleted agendas past the retention
/// is forgotten; of live or recent ones it is kept (adoption needs it).
#[tokio::test]
async fn reap_forgets_what_launchers_kept_of_finished_agendas_only() {
    let world = World::new().await;
    world
        .agenda("done", json!({"processingState": "COMPLETE", "processingStateMessage": "succeeded", "completedTime": T0 + 50 * MINUTE}))
        .await;
    world.agenda("running", json!({"processingState": "EXECUTING"})).await;
    world.agenda("retrying", failed_pending(T0 + 80 * MINUTE)).await;
    let launcher = Arc::new(Keeping {
        kept: vec![
            ("done".into(), T0),
            ("gone".into(), T0),
            ("running".into(), T0),
            ("retrying".into(), T0),
            ("touched-lately".into(), T0 + 69 * MINUTE),
        ],
        forgotten: Default::default(),
    });
    world.at(70);
    let jobs = world.jobs().with_launchers(vec![launcher.clone()]);
    let report = jobs.run(Job::Reap, false).await.unwrap();
    let mut forgotten = launcher.forgotten.lock().unwrap().clone();
    forgotten.sort();
    assert_eq!(forgotten, ["done", "gone"], "{report:?}");
}
