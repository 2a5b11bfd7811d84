//! The scheduler loop: every interval, each insight's queue is topped up to
//! its `queueSize` waiting (unleased) entries from the insight's backlog, by
//! the insight's scheduler plugin. Releasing is one atomic write per
//! insight: the backlog rows go, the queue entries come, and the scheduler's
//! new state is saved, so a crash between decisions loses or duplicates
//! nothing. Submission never waits on this loop.

use std::sync::Arc;
use std::time::Duration;

use pop_core::{Insight, ObjectKind, QueuedAgenda};
use pop_store::{Query, Store, Write};

use crate::domain::body::{from_document, to_document};
use crate::domain::scheduling::state_write;
use crate::domain::{now_millis, queue};
use crate::error::ApiResult;
use crate::plugins::PluginHost;

/// The most insights scheduled per tick.
const MAX_INSIGHTS: usize = 10_000;

/// What one insight's turn released.
#[derive(Debug, Clone, PartialEq)]
pub struct Released {
    pub insight_id: String,
    pub agenda_ids: Vec<String>,
    pub decided_by: String,
}

/// Shortest pause between two rounds started by [`spawn`]'s `wake`: a burst
/// of wake-ups costs one round, not one each.
const MIN_WAKE_SPACING: Duration = Duration::from_millis(10);

/// Run [`tick`] every `interval`, and early when `wake` is notified (the
/// puller claimed entries, so queues have room), until the task is dropped.
pub fn spawn(
    store: Arc<dyn Store>,
    plugins: Arc<PluginHost>,
    interval: Duration,
    wake: Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(interval);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = timer.tick() => {}
                () = wake.notified() => {
                    tokio::time::sleep(MIN_WAKE_SPACING).await;
                    timer.reset();
                }
            }
            if let Err(e) = tick(store.as_ref(), &plugins).await {
                tracing::error!(error = %e, "scheduling round failed");
            }
        }
    })
}

/// One scheduling round over every insight; an insight that fails is logged
/// and does not stop the others.
pub async fn tick(store: &dyn Store, plugins: &PluginHost) -> ApiResult<Vec<Released>> {
    let insights = store
        .query(ObjectKind::Insight, &Query::all().limit(MAX_INSIGHTS), None)
        .await?;
    let mut released = Vec::new();
    for doc in insights {
        let insight: Insight = match from_document(doc) {
            Ok(insight) => insight,
            Err(e) => {
                tracing::error!(error = %e, "skipping an unreadable insight");
                continue;
            }
        };
        match top_up(store, plugins, &insight).await {
            Ok(Some(r)) => released.push(r),
            Ok(None) => {}
            Err(e) => tracing::error!(insight = ?insight.envelope.id, error = %e, "scheduling an insight failed"),
        }
    }
    Ok(released)
}

/// Fill one insight's queue up to `queueSize`.
async fn top_up(store: &dyn Store, plugins: &PluginHost, insight: &Insight) -> ApiResult<Option<Released>> {
    let insight_id = insight.envelope.id.clone().unwrap_or_default();
    let size = insight.queue_size.unwrap_or(0).max(0) as u64;
    if size == 0 {
        return Ok(None);
    }
    let by_insight = Query::by("insightId", insight_id.clone());
    // Like SQS's visible messages: entries under a live lease are being run
    // by a puller and do not take a slot; an expired one waits again.
    let waiting = Some(queue::claimable(now_millis()));
    let queued = store.count(ObjectKind::QueuedAgenda, &by_insight, waiting).await?;
    let free = size.saturating_sub(queued);
    if free == 0 || store.count(ObjectKind::ReadyAgenda, &by_insight, None).await? == 0 {
        return Ok(None);
    }
    let decision = plugins.decide(insight, free.min(u64::from(u32::MAX)) as u32).await?;
    let now = now_millis();
    let mut writes = Vec::with_capacity(decision.released.len() * 2 + 1);
    let mut agenda_ids = Vec::with_capacity(decision.released.len());
    for row in &decision.released {
        let id = row.envelope.id.clone().unwrap_or_default();
        let mut queued = QueuedAgenda {
            insight_id: row.insight_id.clone(),
            agenda_id: row.agenda_id.clone(),
            added: row.added,
            priority: row.priority,
            queued_time: Some(now),
            released_by: Some(decision.decided_by.clone()),
            ..Default::default()
        };
        queued.envelope.id = Some(id.clone());
        queued.envelope.customer_id = row.envelope.customer_id.clone();
        queued.envelope.added_time = Some(now);
        queued.envelope.updated_time = Some(now);
        writes.push(Write::delete(ObjectKind::ReadyAgenda, id));
        writes.push(Write::put(ObjectKind::QueuedAgenda, to_document(&queued)?));
        agenda_ids.push(row.agenda_id.clone().unwrap_or_default());
    }
    writes.push(state_write(
        &decision.backlog,
        insight,
        &decision.output,
        &decision.decided_by,
    )?);
    store.write(writes).await?;
    tracing::debug!(
        insight = insight_id,
        released = agenda_ids.len(),
        by = decision.decided_by,
        "queue topped up"
    );
    Ok(Some(Released {
        insight_id,
        agenda_ids,
        decided_by: decision.decided_by,
    }))
}
