//! The puller: claims queued agendas for this server to run.
//!
//! One long-polling loop per insight (POP ran a puller pod per insight):
//! each claims as many entries as the insight's `executionLimit` leaves
//! room for, waiting in the queue's claim until work is enqueued (SQS's
//! `WaitTimeSeconds`), and starts an executor per agenda. An idle server
//! therefore spends nothing between releases, and a release is picked up
//! the moment the scheduler enqueues it. A supervisor starts and stops the
//! loops as insights come and go. The scheduler is woken after claims,
//! since leased entries leave room in the queue.
//!
//! Shutdown ([`Puller::drain`]) stops claiming, lets running agendas finish
//! within a bound, then stops the rest and releases their leases so that
//! another puller takes them at once: nothing is left with no owner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pop_core::{Insight, ObjectKind, QueuedAgenda};
use pop_ports::Query;
use tokio::sync::{Notify, watch};
use tokio::task::{AbortHandle, JoinHandle};

use super::{Runner, executor};
use crate::domain::typed::TypedStore;

/// Most entries claimed for one insight per claim.
const MAX_CLAIM: usize = 50;
/// Most insights served.
const MAX_INSIGHTS: usize = 10_000;
/// How often the supervisor looks for new and deleted insights (and at
/// once when the scheduler released work).
const INSIGHT_REFRESH: Duration = Duration::from_secs(1);

/// Agendas running per insight, shared with the executor tasks.
#[derive(Default)]
struct Running {
    by_insight: Mutex<HashMap<String, usize>>,
    /// The running executors, by queue entry id, for shutdown.
    executors: Mutex<HashMap<String, (QueuedAgenda, AbortHandle)>>,
    /// Signalled (to every waiter) when an executor ends.
    freed: Notify,
}

impl Running {
    fn count(&self, insight_id: &str) -> usize {
        let map = self.by_insight.lock().unwrap_or_else(|e| e.into_inner());
        map.get(insight_id).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        let map = self.executors.lock().unwrap_or_else(|e| e.into_inner());
        map.len()
    }

    fn add(&self, insight_id: &str) {
        let mut map = self.by_insight.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(insight_id.to_owned()).or_default() += 1;
    }

    fn remove(&self, insight_id: &str, entry_id: &str) {
        {
            let mut map = self.by_insight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = map.get_mut(insight_id) {
                *count = count.saturating_sub(1);
            }
        }
        self.executors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(entry_id);
        self.freed.notify_waiters();
    }
}

/// Counts one running agenda until dropped, even if its task panics or is
/// aborted.
struct Slot {
    running: Arc<Running>,
    insight_id: String,
    entry_id: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.running.remove(&self.insight_id, &self.entry_id);
    }
}

/// The running puller.
pub struct Puller {
    runner: Arc<Runner>,
    running: Arc<Running>,
    stop: watch::Sender<bool>,
    supervisor: JoinHandle<()>,
}

/// Start the puller. It first takes back the leases its previous process
/// held (they are not running any more), so a restart resumes at once.
pub fn spawn(runner: Arc<Runner>) -> Puller {
    let running = Arc::new(Running::default());
    let (stop, stopped) = watch::channel(false);
    let supervisor = tokio::spawn(supervise(runner.clone(), running.clone(), stopped));
    Puller {
        runner,
        running,
        stop,
        supervisor,
    }
}

impl Puller {
    /// Stop claiming; wait up to `bound` for the running agendas to finish;
    /// stop the others and release their leases. Returns how many were
    /// released unfinished.
    pub async fn drain(self, bound: Duration) -> usize {
        let _ = self.stop.send(true);
        let _ = self.supervisor.await;
        let clock = self.runner.clock.clone();
        let deadline = clock.sleep(bound);
        tokio::pin!(deadline);
        loop {
            let freed = self.running.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.running.total() == 0 {
                return 0;
            }
            tokio::select! {
                () = &mut freed => {}
                () = &mut deadline => break,
            }
        }
        let left: Vec<(QueuedAgenda, AbortHandle)> = self
            .running
            .executors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, held)| held)
            .collect();
        for (entry, executor) in &left {
            executor.abort();
            if let Err(e) = self.runner.queue.release(entry).await {
                tracing::warn!(error = %e, agenda = ?entry.agenda_id, "cannot release an unfinished agenda; its lease will run out");
            }
        }
        left.len()
    }
}

async fn supervise(runner: Arc<Runner>, running: Arc<Running>, mut stopped: watch::Receiver<bool>) {
    let puller = runner.config.puller_id.clone();
    // Handlers a crashed predecessor left running would race the new runs
    // of their operations: gone before anything is handed out.
    for launcher in runner.launchers.all() {
        match launcher.reap_orphans().await {
            Ok(0) => {}
            Ok(reaped) => tracing::info!(
                reaped,
                launcher = launcher.name(),
                "stopped runs left by the previous process"
            ),
            Err(e) => {
                tracing::error!(error = %e, launcher = launcher.name(), "cannot stop the runs left by the previous process")
            }
        }
    }
    match runner.queue.release_held_by(&puller).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, puller, "took back the agendas of the previous run"),
        Err(e) => tracing::error!(error = %e, "cannot take back the previous run's agendas"),
    }
    let mut loops: HashMap<String, JoinHandle<()>> = HashMap::new();
    loop {
        match insight_ids(&runner).await {
            Ok(ids) => {
                loops.retain(|id, task| {
                    let keep = ids.contains(id) && !task.is_finished();
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                for id in ids {
                    loops.entry(id.clone()).or_insert_with(|| {
                        tokio::spawn(serve_insight(runner.clone(), running.clone(), id, stopped.clone()))
                    });
                }
            }
            Err(e) => tracing::error!(error = %e, "listing insights to pull from failed"),
        }
        tokio::select! {
            () = runner.clock.sleep(INSIGHT_REFRESH) => {}
            () = runner.released.notified() => {}
            _ = stopped.wait_for(|stop| *stop) => break,
        }
    }
    // The loops stop at their next step; a claim in progress is given back.
    for (_, task) in loops {
        let _ = task.await;
    }
}

/// The insights this server's puller serves: all but those of resource
/// pools that external pullers serve.
async fn insight_ids(runner: &Runner) -> crate::error::AppResult<std::collections::HashSet<String>> {
    let text = |doc: &pop_ports::Document, field: &str| doc.get(field).and_then(|v| v.as_str()).map(String::from);
    let external: std::collections::HashSet<String> = runner
        .store
        .query(ObjectKind::ResourcePool, &Query::all().limit(MAX_INSIGHTS), None)
        .await?
        .iter()
        .filter(|pool| pool.get("external").and_then(|v| v.as_bool()) == Some(true))
        .filter_map(|pool| text(pool, "id"))
        .collect();
    let docs = runner
        .store
        .query(ObjectKind::Insight, &Query::all().limit(MAX_INSIGHTS), None)
        .await?;
    Ok(docs
        .iter()
        .filter(|doc| text(doc, "resourcePoolId").is_none_or(|pool| !external.contains(&pool)))
        .filter_map(|doc| text(doc, "id"))
        .collect())
}

/// How many agendas `insight_id` may run at once.
async fn execution_limit(runner: &Runner, insight_id: &str) -> crate::error::AppResult<Option<usize>> {
    let Some(insight) = runner.store.load::<Insight>(insight_id).await? else {
        return Ok(None);
    };
    Ok(Some(match insight.execution_limit {
        Some(limit) => usize::try_from(limit).unwrap_or(0),
        None => runner.config.default_execution_limit,
    }))
}

/// One insight's loop: claim while there is room, wait in the claim.
async fn serve_insight(
    runner: Arc<Runner>,
    running: Arc<Running>,
    insight_id: String,
    mut stopped: watch::Receiver<bool>,
) {
    let wait = runner.config.claim_wait;
    loop {
        if *stopped.borrow() {
            return;
        }
        let freed = running.freed.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        let limit = match execution_limit(&runner, &insight_id).await {
            Ok(Some(limit)) => limit,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(insight = insight_id, error = %e, "reading an insight to pull from failed");
                runner.clock.sleep(wait).await;
                continue;
            }
        };
        let room = limit.saturating_sub(running.count(&insight_id)).min(MAX_CLAIM);
        if room == 0 {
            tokio::select! {
                () = &mut freed => {}
                () = runner.clock.sleep(wait) => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
            continue;
        }
        let claim = runner
            .queue
            .claim(&insight_id, room, &runner.config.puller_id, runner.config.lease, wait);
        let entries = tokio::select! {
            claimed = claim => claimed,
            // Stopping while waiting: nothing was handed out.
            _ = stopped.wait_for(|stop| *stop) => return,
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => {
                tracing::error!(insight = insight_id, error = %e, "pulling agendas failed");
                runner.clock.sleep(wait).await;
                continue;
            }
        };
        if entries.is_empty() {
            continue;
        }
        runner.wake_scheduler.notify_one();
        for entry in entries {
            start_executor(&runner, &running, &insight_id, entry);
        }
    }
}

fn start_executor(runner: &Arc<Runner>, running: &Arc<Running>, insight_id: &str, entry: QueuedAgenda) {
    let entry_id = entry.envelope.id.clone().unwrap_or_default();
    running.add(insight_id);
    let slot = Slot {
        running: running.clone(),
        insight_id: insight_id.to_owned(),
        entry_id: entry_id.clone(),
    };
    // Registered before the task can end, so its slot's removal finds it.
    let mut executors = running.executors.lock().unwrap_or_else(|e| e.into_inner());
    let task = tokio::spawn({
        let runner = runner.clone();
        let entry = entry.clone();
        async move {
            let _slot = slot;
            let agenda_id = entry.agenda_id.clone().unwrap_or_default();
            if let Err(e) = executor::run(runner, entry).await {
                tracing::warn!(agenda_id, error = %e, "agenda run ended without an outcome; it will be delivered again");
            }
        }
    });
    executors.insert(entry_id, (entry, task.abort_handle()));
}
