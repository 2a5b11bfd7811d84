//! The puller: claims queued agendas for this server to run.
//!
//! One loop serves every insight (POP ran a puller pod per insight): each
//! round it claims, per insight, as many entries as the insight's
//! `executionLimit` leaves room for, and spawns an executor per agenda. It
//! sleeps only when a round claimed nothing, and wakes early when an
//! executor finishes (room again) — the scheduler is woken after claims,
//! since leased entries leave room in the queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pop_core::{Insight, ObjectKind};
use pop_store::Query;
use tokio::sync::Notify;

use super::{Runner, executor};
use crate::domain::body::from_document;
use crate::domain::queue;

/// Most entries claimed for one insight per round.
const MAX_CLAIM: usize = 50;
/// Most insights looked at per round.
const MAX_INSIGHTS: usize = 10_000;

/// Agendas running per insight, shared with the executor tasks.
#[derive(Default)]
struct Running {
    by_insight: Mutex<HashMap<String, usize>>,
    /// Signalled when an executor ends.
    freed: Notify,
}

impl Running {
    fn count(&self, insight_id: &str) -> usize {
        let map = self.by_insight.lock().unwrap_or_else(|e| e.into_inner());
        map.get(insight_id).copied().unwrap_or(0)
    }

    fn add(&self, insight_id: &str) {
        let mut map = self.by_insight.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(insight_id.to_owned()).or_default() += 1;
    }

    fn remove(&self, insight_id: &str) {
        let mut map = self.by_insight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = map.get_mut(insight_id) {
            *count = count.saturating_sub(1);
        }
        drop(map);
        self.freed.notify_one();
    }
}

/// Counts one running agenda until dropped, even if its task panics.
struct Slot {
    running: Arc<Running>,
    insight_id: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.running.remove(&self.insight_id);
    }
}

/// Start the puller. It first takes back the leases its previous process
/// held (they are not running any more), so a restart resumes at once.
pub fn spawn(runner: Arc<Runner>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let puller = runner.config.puller_id.clone();
        // Handlers a crashed predecessor left running would race the new
        // runs of their operations: gone before anything is handed out.
        let runs_dir = runner.config.runs_dir.clone();
        match tokio::task::spawn_blocking(move || pop_handlers_registry::kill_orphans(&runs_dir)).await {
            Ok(0) | Err(_) => {}
            Ok(killed) => tracing::info!(killed, "killed handlers left running by the previous run"),
        }
        match queue::release_held_by(runner.store.as_ref(), &puller).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, puller, "took back the agendas of the previous run"),
            Err(e) => tracing::error!(error = %e, "cannot take back the previous run's agendas"),
        }
        let running = Arc::new(Running::default());
        loop {
            let claimed = match round(&runner, &running).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::error!(error = %e, "pulling agendas failed");
                    0
                }
            };
            if claimed > 0 {
                runner.wake_scheduler.notify_one();
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(runner.config.idle_poll) => {}
                () = running.freed.notified() => {}
            }
        }
    })
}

/// One pass over the insights; returns how many agendas were claimed.
async fn round(runner: &Arc<Runner>, running: &Arc<Running>) -> crate::error::ApiResult<usize> {
    let store = runner.store.as_ref();
    let insights = store
        .query(ObjectKind::Insight, &Query::all().limit(MAX_INSIGHTS), None)
        .await?;
    let mut claimed = 0;
    for doc in insights {
        let Ok(insight) = from_document::<Insight>(doc) else {
            continue;
        };
        let limit = match insight.execution_limit {
            Some(limit) => usize::try_from(limit).unwrap_or(0),
            None => runner.config.default_execution_limit,
        };
        let insight_id = insight.envelope.id.unwrap_or_default();
        let room = limit.saturating_sub(running.count(&insight_id)).min(MAX_CLAIM);
        if room == 0 {
            continue;
        }
        let entries = queue::claim(
            store,
            &insight_id,
            room,
            &runner.config.puller_id,
            runner.config.lease_ms(),
        )
        .await?;
        claimed += entries.len();
        for entry in entries {
            running.add(&insight_id);
            let slot = Slot {
                running: running.clone(),
                insight_id: insight_id.clone(),
            };
            let runner = runner.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let agenda_id = entry.agenda_id.clone().unwrap_or_default();
                if let Err(e) = executor::run(runner, entry).await {
                    tracing::warn!(agenda_id, error = %e, "agenda run ended without an outcome; it will be delivered again");
                }
            });
        }
    }
    Ok(claimed)
}
