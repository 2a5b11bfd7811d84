//! Recording plugin failures where the plugin's owner sees them: a log line,
//! and on the failing version's record a failure count and the latest
//! diagnostics. Writes are batched per version (at most one in flight), so
//! a plugin failing on every call cannot flood the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pop_core::{DiagnosticEvent, ObjectKind};
use pop_ports::{Store, Write};
use pop_wasm::PluginFailure;
use serde_json::{Value, json};

use super::metrics::failure_code;
use pop_ports::Clock;

/// Diagnostics kept on a plugin version, newest last.
pub const KEPT_DIAGNOSTICS: usize = 10;
/// How long failures of one version gather before they are written.
const FLUSH_DELAY: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Pending {
    count: i64,
    events: Vec<DiagnosticEvent>,
}

/// Failures waiting to be written, per plugin version id.
pub struct FailureLog {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    pending: Arc<Mutex<HashMap<String, Pending>>>,
}

impl FailureLog {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            pending: Arc::default(),
        }
    }

    /// Record that version `version_id` failed; must run inside the tokio runtime.
    pub fn record(&self, version_id: &str, failure: &PluginFailure) {
        tracing::warn!(plugin = version_id, %failure, "plugin call failed; the host fell back");
        let event = DiagnosticEvent {
            message: Some(failure.to_string()),
            status_code: Some(failure_code(failure).into()),
            time: Some(self.clock.now_millis()),
            ..Default::default()
        };
        let first = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let entry = pending.entry(version_id.to_string());
            let first = matches!(entry, std::collections::hash_map::Entry::Vacant(_));
            let slot = entry.or_default();
            slot.count += 1;
            slot.events.push(event);
            if slot.events.len() > KEPT_DIAGNOSTICS {
                slot.events.remove(0);
            }
            first
        };
        if first {
            let (store, pending, id) = (self.store.clone(), self.pending.clone(), version_id.to_string());
            tokio::spawn(async move {
                tokio::time::sleep(FLUSH_DELAY).await;
                let batch = pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                if let Some(batch) = batch
                    && let Err(e) = flush(store.as_ref(), &id, batch).await
                {
                    tracing::error!(plugin = id, error = %e, "could not record plugin failures");
                }
            });
        }
    }
}

async fn flush(store: &dyn Store, id: &str, batch: Pending) -> Result<(), pop_ports::StoreError> {
    let Some(stored) = store.get(ObjectKind::Plugin, id).await? else {
        return Ok(());
    };
    let count = stored.get("failureCount").and_then(Value::as_i64).unwrap_or(0) + batch.count;
    let mut events: Vec<Value> = stored
        .get("diagnosticEvents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    events.extend(
        batch
            .events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or(Value::Null)),
    );
    let skip = events.len().saturating_sub(KEPT_DIAGNOSTICS);
    let events: Vec<Value> = events.into_iter().skip(skip).collect();
    let patch = json!({"failureCount": count, "diagnosticEvents": events});
    store
        .write(vec![Write::merge(
            ObjectKind::Plugin,
            id,
            patch.as_object().cloned().unwrap_or_default(),
        )])
        .await?;
    Ok(())
}
