//! A remote run's [`Ledger`]: the ResourcePool service over HTTP.
//!
//! Each batch of the executor's writes becomes one `updateAgendaProgress`
//! carrying the lease's fencing token, so the server applies it only while
//! this delivery is the agenda's current one (409 otherwise: the lease was
//! lost); the heartbeat is `extendLease`, the end `ackAgenda`. The
//! progress was taken over for the lease's token by `getAgenda` itself.

use std::time::Duration;

use async_trait::async_trait;
use pop_app::runner::{Ledger, LedgerError};
use pop_core::{Lease, ObjectKind};
use pop_ports::Write;
use serde_json::{Map, Value};

use super::service::{ResourcePoolClient, ServiceError};

/// The AgendaProgress fields an executor reports (`updateAgendaProgress`
/// takes no others).
const REPORTED: [&str; 7] = [
    "processingState",
    "processingStateMessage",
    "percentComplete",
    "startedTime",
    "completedTime",
    "diagnosticEvents",
    "operationProgress",
];

/// Writes per request: one request is one server-side update, which splits
/// operation rows into the store's transactions itself.
const WRITES_PER_REPORT: usize = 500;

pub struct RemoteLedger {
    client: ResourcePoolClient,
    lease: Lease,
    puller: String,
    lease_time: Duration,
    progress_id: String,
}

impl RemoteLedger {
    pub fn new(
        client: ResourcePoolClient,
        lease: Lease,
        puller: String,
        lease_time: Duration,
        progress_id: String,
    ) -> Self {
        Self {
            client,
            lease,
            puller,
            lease_time,
            progress_id,
        }
    }
}

fn ledger_error(error: ServiceError) -> LedgerError {
    match error {
        ServiceError::Conflict(_) => LedgerError::LeaseLost,
        // The agenda or its progress is gone (deleted, reaped): nothing
        // more to record for it.
        ServiceError::Refused { status: 404, .. } => LedgerError::LeaseLost,
        ServiceError::Unavailable(message) => LedgerError::Transient(message),
        refused @ ServiceError::Refused { .. } => LedgerError::Permanent(refused.to_string()),
    }
}

#[async_trait]
impl Ledger for RemoteLedger {
    fn max_writes(&self) -> usize {
        WRITES_PER_REPORT
    }

    async fn take_over(&self) -> Result<(), LedgerError> {
        // getAgenda wrote this lease's token into the progress.
        Ok(())
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<(), LedgerError> {
        let report = progress_report(&self.progress_id, writes);
        self.client
            .update_agenda_progress(report, &self.lease.fencing_token)
            .await
            .map_err(ledger_error)
    }

    async fn extend_lease(&self) -> Result<(), LedgerError> {
        self.client
            .extend_lease(&self.lease, &self.puller, self.lease_time)
            .await
            .map_err(ledger_error)
    }

    async fn acknowledge(&self) -> Result<(), LedgerError> {
        self.client
            .ack_agenda(&self.lease, &self.puller)
            .await
            .map_err(ledger_error)
    }
}

/// One `agendaProgress` body from a batch of the executor's writes: the
/// agenda's fields merged in order, and one entry per operation, its
/// writes merged in order (a batch may start and finish an operation).
pub fn progress_report(progress_id: &str, writes: Vec<Write>) -> Value {
    let mut agenda = Map::new();
    let mut operations: Vec<(String, Map<String, Value>)> = Vec::new();
    for write in writes {
        let (kind, fields) = match write {
            Write::Merge { kind, patch, .. } => (kind, patch),
            Write::Put { kind, doc, .. } => (kind, doc),
            Write::Delete { kind, id, .. } => {
                tracing::warn!(?kind, id, "an executor's delete has no remote form; not sent");
                continue;
            }
        };
        match kind {
            ObjectKind::AgendaProgress => {
                for (field, value) in fields {
                    if REPORTED.contains(&field.as_str()) && !value.is_null() {
                        agenda.insert(field, value);
                    }
                }
            }
            ObjectKind::OperationProgress => {
                let Some(name) = fields.get("operation").and_then(Value::as_str).map(str::to_owned) else {
                    continue;
                };
                let entry = match operations.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, entry)) => entry,
                    None => {
                        operations.push((name, Map::new()));
                        &mut operations.last_mut().expect("just pushed").1
                    }
                };
                entry.extend(fields.into_iter().filter(|(_, v)| !v.is_null()));
            }
            other => tracing::warn!(kind = ?other, "an executor's write of this kind has no remote form; not sent"),
        }
    }
    agenda.insert("id".into(), Value::String(progress_id.to_owned()));
    if !operations.is_empty() {
        let entries = operations.into_iter().map(|(_, entry)| Value::Object(entry)).collect();
        agenda.insert("operationProgress".into(), Value::Array(entries));
    }
    Value::Object(agenda)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn merge(kind: ObjectKind, id: &str, patch: Value) -> Write {
        Write::merge(kind, id, patch.as_object().cloned().unwrap())
    }

    #[test]
    fn a_batch_becomes_one_report_with_its_writes_merged_in_order() {
        let writes = vec![
            merge(
                ObjectKind::AgendaProgress,
                "p1",
                json!({"processingState": "EXECUTING", "percentComplete": 0.0, "updatedTime": 5, "attemptsCompleted": 1}),
            ),
            merge(
                ObjectKind::OperationProgress,
                "p1-a",
                json!({"operation": "a", "processingState": "EXECUTING", "startedTime": 1}),
            ),
            Write::put(
                ObjectKind::OperationProgress,
                json!({"id": "p1-b", "operation": "b", "processingState": "WAITING"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            ),
            merge(
                ObjectKind::OperationProgress,
                "p1-a",
                json!({"operation": "a", "processingState": "COMPLETE", "processingStateMessage": "succeeded"}),
            ),
            merge(ObjectKind::AgendaProgress, "p1", json!({"percentComplete": 50.0})),
        ];
        assert_eq!(
            progress_report("p1", writes),
            json!({
                "processingState": "EXECUTING",
                "percentComplete": 50.0,
                "id": "p1",
                "operationProgress": [
                    {"operation": "a", "processingState": "COMPLETE", "startedTime": 1,
                        "processingStateMessage": "succeeded"},
                    {"id": "p1-b", "operation": "b", "processingState": "WAITING"},
                ],
            })
        );
    }

    #[test]
    fn a_heartbeat_touch_is_an_empty_report() {
        let touch = merge(ObjectKind::AgendaProgress, "p1", json!({"updatedTime": 9}));
        assert_eq!(progress_report("p1", vec![touch]), json!({"id": "p1"}));
    }
}
