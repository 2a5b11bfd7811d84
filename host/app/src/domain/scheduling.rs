//! The scheduling path: gather one insight's backlog into a scheduler input,
//! and persist the scheduler's state after a decision. Which scheduler
//! decides (a WebAssembly plugin, with native fallback) is the plugin
//! registry's business; this module only moves data.

use std::collections::HashMap;

use pop_core::scheduling::{CustomerList, PendingAgenda, ScheduleInput, ScheduleOutput};
use pop_core::{Insight, InsightScheduleInfo, ObjectKind, ReadyAgenda};
use pop_ports::{Document, Query, Queue, Store, Write};
use serde_json::{Value, json};

use super::body::{from_document, str_field, to_document};
use crate::error::AppResult;

/// The most backlog rows offered to one decision.
pub const MAX_BACKLOG: usize = 100_000;

/// One insight's backlog, laid out as the scheduler world expects.
#[derive(Debug, Clone, Default)]
pub struct Backlog {
    pub info_id: String,
    /// The ReadyAgenda rows, oldest first; `pending[i]` describes `rows[i]`.
    pub rows: Vec<ReadyAgenda>,
    pub customers: CustomerList,
    pub pending: Vec<PendingAgenda>,
    pub running: Vec<u32>,
    pub config: String,
    pub state: Vec<u8>,
    /// Rows released longer than [`REDRIVE_AFTER`] ago whose queue message
    /// may never have been enqueued (see `ReadyAgenda::released_at`).
    pub stale_releases: Vec<ReadyAgenda>,
}

/// How long after its release a backlog row counts as left behind by a
/// scheduler that died before enqueuing it. A live scheduler enqueues and
/// deletes within milliseconds; a redundant re-drive is harmless anyway
/// (the enqueue is idempotent, and a run of an agenda that already ran
/// finds its succeeded operations done).
pub const REDRIVE_AFTER_MS: i64 = 30_000;

impl Backlog {
    pub fn input(&self, now_ms: u64, free_slots: u32) -> ScheduleInput<'_> {
        ScheduleInput {
            now_ms,
            free_slots,
            customers: self.customers.ids(),
            pending: &self.pending,
            running: &self.running,
            config: &self.config,
            state: &self.state,
        }
    }
}

/// POP's schedule-info id of an insight.
pub fn info_id(insight: &Insight) -> String {
    format!(
        "{}-{}",
        insight.resource_pool_id.as_deref().unwrap_or_default(),
        insight.envelope.id.as_deref().unwrap_or_default()
    )
}

/// Read the backlog of `insight`: its ReadyAgendas (oldest first), the
/// customers of its pool (pool order, then any other customer with work),
/// its scheduler configuration and the scheduler's persisted state.
pub async fn gather(store: &dyn Store, queue: &dyn Queue, insight: &Insight, now: i64) -> AppResult<Backlog> {
    let insight_id = insight.envelope.id.clone().unwrap_or_default();
    let query = Query::by("insightId", insight_id.clone()).limit(MAX_BACKLOG);
    let mut rows: Vec<ReadyAgenda> = store
        .query(ObjectKind::ReadyAgenda, &query, None)
        .await?
        .into_iter()
        .map(from_document)
        .collect::<AppResult<_>>()?;
    rows.sort_by_key(|r| r.added.unwrap_or(0));
    let (released, mut rows): (Vec<_>, Vec<_>) = std::mem::take(&mut rows)
        .into_iter()
        .partition(|r| r.released_at.is_some());
    rows.shrink_to_fit();
    let stale_releases = released
        .into_iter()
        .filter(|r| r.released_at.unwrap_or(0) <= now.saturating_sub(REDRIVE_AFTER_MS))
        .collect();
    let pool_customers = match insight.resource_pool_id.as_deref() {
        Some(pool) => {
            store
                .query(ObjectKind::Customer, &Query::by("resourcePoolId", pool), None)
                .await?
        }
        None => Vec::new(),
    };
    let mut customers = CustomerList::new();
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut customer_index = |id: &str| -> u32 {
        if let Some(&at) = index.get(id) {
            return at;
        }
        let at = customers.push(id);
        index.insert(id.to_owned(), at);
        at
    };
    for id in pool_customers.iter().filter_map(|c| str_field(c, "id")) {
        customer_index(id);
    }
    let mut pending = Vec::with_capacity(rows.len());
    for row in &rows {
        let customer = customer_index(row.envelope.customer_id.as_deref().unwrap_or_default());
        let priority = row
            .priority
            .unwrap_or(0)
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        pending.push(PendingAgenda {
            customer,
            priority,
            added_ms: row.added.unwrap_or(0).max(0) as u64,
        });
    }
    let info_id = info_id(insight);
    let info = store.get(ObjectKind::InsightScheduleInfo, &info_id).await?;
    let state = info
        .as_ref()
        .and_then(|doc| doc.get("schedulerState"))
        .map(decode_state)
        .unwrap_or_default();
    let config = insight
        .scheduler_config
        .as_ref()
        .map(Value::to_string)
        .unwrap_or_else(|| "{}".into());
    // Released and not finished: the insight's queue entries, waiting or
    // under a puller's lease. Fair schedulers count them against their
    // customer, so a customer with work in flight does not also take the
    // next free slots.
    let mut running = vec![0u32; customers.len()];
    for entry in queue.list(&insight_id, MAX_BACKLOG).await? {
        if let Some(&customer) = entry.envelope.customer_id.as_deref().and_then(|id| index.get(id)) {
            running[customer as usize] += 1;
        }
    }
    Ok(Backlog {
        info_id,
        rows,
        customers,
        pending,
        running,
        config,
        state,
        stale_releases,
    })
}

/// The write that persists the scheduler's new state (and who decided) for
/// the next decision; part of the same atomic write as the release.
pub fn state_write(
    backlog: &Backlog,
    insight: &Insight,
    output: &ScheduleOutput,
    decided_by: &str,
    now: i64,
) -> AppResult<Write> {
    let mut info = InsightScheduleInfo {
        last_executed: Some(now),
        scheduler_state: Some(encode_state(&output.state)),
        last_scheduler: Some(decided_by.to_string()),
        ..Default::default()
    };
    info.envelope.id = Some(backlog.info_id.clone());
    info.envelope.customer_id = insight.envelope.customer_id.clone();
    let doc: Document = to_document(&info)?;
    Ok(Write::put(ObjectKind::InsightScheduleInfo, doc))
}

/// Scheduler state is opaque bytes; built-ins write UTF-8 JSON, which is
/// kept readable as a string. Anything else is stored as an array of bytes.
pub fn encode_state(state: &[u8]) -> Value {
    match std::str::from_utf8(state) {
        Ok(text) => json!(text),
        Err(_) => json!(state),
    }
}

pub fn decode_state(value: &Value) -> Vec<u8> {
    match value {
        Value::String(text) => text.as_bytes().to_vec(),
        Value::Array(bytes) => bytes.iter().filter_map(|b| b.as_u64().map(|b| b as u8)).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pop_core::QueuedAgenda;
    use pop_memory::{MemoryQueue, MemoryStore};
    use pop_ports::ManualClock;

    use super::*;

    fn ready(id: &str, customer: &str, added: i64) -> Document {
        let mut row = ReadyAgenda {
            insight_id: Some("work".into()),
            agenda_id: Some(id.into()),
            added: Some(added),
            ..Default::default()
        };
        row.envelope.id = Some(id.into());
        row.envelope.customer_id = Some(customer.into());
        to_document(&row).unwrap()
    }

    fn queued(id: &str, customer: &str, insight: &str) -> QueuedAgenda {
        let mut entry = QueuedAgenda {
            insight_id: Some(insight.into()),
            agenda_id: Some(id.into()),
            ..Default::default()
        };
        entry.envelope.id = Some(id.into());
        entry.envelope.customer_id = Some(customer.into());
        entry
    }

    #[tokio::test]
    async fn running_counts_the_insights_queue_entries_per_customer() {
        let store = MemoryStore::new();
        let queue = MemoryQueue::new(Arc::new(ManualClock::default()));
        let released = |id: &str, at: i64| {
            let mut row = ready(id, "hooli", 0);
            row.insert("releasedAt".into(), json!(at));
            row
        };
        store
            .write(vec![
                Write::put(ObjectKind::ReadyAgenda, ready("r1", "acme", 1)),
                Write::put(ObjectKind::ReadyAgenda, ready("r2", "globex", 2)),
                Write::put(ObjectKind::ReadyAgenda, ready("r3", "initech", 3)),
                // Released: no longer pending; the old one is re-driven.
                Write::put(ObjectKind::ReadyAgenda, released("r4", 1_000)),
                Write::put(ObjectKind::ReadyAgenda, released("r5", 100_000)),
            ])
            .await
            .unwrap();
        queue
            .enqueue(vec![
                queued("q1", "acme", "work"),
                queued("q2", "acme", "work"),
                queued("q3", "initech", "work"),
                // Another insight's queue, and a customer with nothing pending.
                queued("q4", "globex", "other"),
                queued("q5", "umbrella", "work"),
            ])
            .await
            .unwrap();
        let mut insight = Insight::default();
        insight.envelope.id = Some("work".into());
        let backlog = gather(&store, &queue, &insight, 100_000).await.unwrap();
        assert_eq!(
            backlog.customers.ids().iter().collect::<Vec<_>>(),
            ["acme", "globex", "initech"]
        );
        assert_eq!(backlog.running, [2, 0, 1]);
        let stale: Vec<_> = backlog.stale_releases.iter().map(|r| r.envelope.id.clone()).collect();
        assert_eq!(
            stale,
            [Some("r4".to_string())],
            "released 99 s ago, past REDRIVE_AFTER_MS"
        );
        let input = backlog.input(0, 1);
        assert_eq!(input.running.len(), input.customers.len());
    }

    #[test]
    fn state_round_trips_text_and_bytes() {
        for state in [
            b"".to_vec(),
            br#"{"pendingCustomerIds":["a"]}"#.to_vec(),
            vec![0, 159, 146, 150, 255],
        ] {
            assert_eq!(decode_state(&encode_state(&state)), state);
        }
    }
}
