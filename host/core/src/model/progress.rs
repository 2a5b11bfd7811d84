use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AgendaInsight, Envelope, EpochMillis, ObjectKind, data_object};
use crate::params::ParamsMap;

/// Where an agenda or operation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProcessingState {
    Waiting,
    Executing,
    Complete,
}

/// `processingStateMessage` values when COMPLETE (lower-case on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompleteStateMessage {
    Succeeded,
    Failed,
}

impl CompleteStateMessage {
    pub fn as_str(self) -> &'static str {
        match self {
            CompleteStateMessage::Succeeded => "succeeded",
            CompleteStateMessage::Failed => "failed",
        }
    }
}

/// `processingStateMessage` while WAITING.
pub const WAITING_PENDING: &str = "pending";

/// Progress of one agenda. `operationProgress` is not stored on the row: reads
/// attach it from the OperationProgress table, writes fan it out there.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgendaProgress {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agenda_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_state: Option<ProcessingState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_state_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_progress: Option<Vec<OperationProgress>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostic_events: Option<Vec<DiagnosticEvent>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_completed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_attempts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_time: Option<EpochMillis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_time: Option<EpochMillis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent_complete: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<ParamsMap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agenda_insight: Option<AgendaInsight>,
    /// The delivery that runs the agenda now (`<queue message id>/<receive
    /// count>`): the executor's writes are conditional on it, so a run whose
    /// lease was lost records nothing, whatever queue backs it. Set by the
    /// executor when it starts and by a rerun; never by a client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<String>,
    /// The token of the attempt a rerun started, while it may still run
    /// (empty once that attempt is not pending): a rerun is refused while
    /// one is under way. Server-set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun_attempt: Option<String>,
    /// Automatic retry: `pending`, `gaveUp` or empty ([`crate::retry::fields`]).
    /// Server-set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_state: Option<String>,
    /// When the pending retry is due (epoch ms). Server-set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_time: Option<EpochMillis>,
}
data_object!(AgendaProgress, ObjectKind::AgendaProgress);

/// Progress of one operation; `id = "<agendaProgressId>-<operationName>"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationProgress {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agenda_progress_id: Option<String>,
    /// The operation's *name*.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_state: Option<ProcessingState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_state_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent_complete: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_time: Option<EpochMillis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_time: Option<EpochMillis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_time: Option<EpochMillis>,
    /// The operation's output as a JSON *string* (POP compatibility).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostic_events: Option<Vec<DiagnosticEvent>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<ParamsMap>,
}
data_object!(OperationProgress, ObjectKind::OperationProgress);

impl OperationProgress {
    /// POP's operation progress id.
    pub fn id_for(agenda_progress_id: &str, operation_name: &str) -> String {
        format!("{agenda_progress_id}-{operation_name}")
    }
}

/// Something worth telling the owner about an agenda or operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticEvent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<EpochMillis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}
