//! Request and response bodies of the service endpoints (spec §1.13).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AgendaProgress, EpochMillis, Operation, ProcessingState};
use crate::params::ParamsMap;

/// Body of `POST /pop/agenda/service/run`. `payload` is a string holding JSON.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunAgendaRequest {
    pub agenda_template_id: Option<String>,
    pub payload: Option<String>,
}

/// Body of `POST /pop/agenda/service/rerun`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RerunAgendaRequest {
    pub agenda_id: Option<String>,
    #[serde(default)]
    pub params: Vec<String>,
}

/// Body of `POST /pop/progress/agenda/service`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressSummaryRequest {
    pub link_id: Option<String>,
}

/// Rolled-up progress of every agenda sharing one `linkId`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressSummary {
    pub progress_list: Vec<AgendaProgress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_state: Option<ProcessingState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_percent: Option<f64>,
}

/// Body of `POST /pop/resourcepool/service/getAgenda`: claim up to `count`
/// queued agendas of an insight, each leased for `leaseMs` to `puller`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetAgendaRequest {
    pub insight_id: Option<String>,
    pub count: Option<i64>,
    pub lease_ms: Option<i64>,
    pub puller: Option<String>,
}

/// One lease granted by `getAgenda`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub agenda_id: String,
    pub queue_id: String,
    pub lease_expires: EpochMillis,
    pub deliveries: i64,
    /// This delivery's fencing token, held by the agenda's progress while
    /// the delivery is current: `updateAgendaProgress` with it applies only
    /// until another delivery (or a rerun) takes over.
    pub fencing_token: String,
    /// The attempt of the agenda this delivery runs (its progress's
    /// `attemptsCompleted` + 1; `getAgenda` only): with the progress id and
    /// an operation's name it names the operation's run, so a remote
    /// executor finds the pods of this attempt and no other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i64>,
    /// The Kubernetes namespace the agenda's resource pool gives its
    /// customer (`getAgenda` only; absent: the executor's own): where a
    /// remote executor puts the agenda's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Body of `extendLease` and `ackAgenda`. `deliveries`, when given, pins
/// the one delivery the caller holds (a re-claim by the same puller is then
/// a conflict too); `leaseMs` is only read by `extendLease`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRequest {
    pub queue_id: Option<String>,
    pub puller: Option<String>,
    pub lease_ms: Option<i64>,
    pub deliveries: Option<i64>,
}

/// Body of `POST /pop/resourcepool/service/createAgenda`. Each agenda is
/// parsed on its own, so one malformed agenda is reported beside the others.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAgendaRequest {
    pub agendas: Option<Vec<Value>>,
}

/// Body of `POST /pop/resourcepool/service/updateAgendaProgress`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAgendaProgressRequest {
    pub agenda_progress: Option<AgendaProgress>,
    /// The `fencingToken` of the caller's lease: when given, the update
    /// applies only while that delivery is the agenda's current one (409
    /// otherwise). Without it the update is unconditional, as in POP.
    pub fencing_token: Option<String>,
}

/// Body of `POST /pop/resourcepool/service/updateAgenda`: operations to
/// append (a generator's output) and params to merge.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAgendaRequest {
    pub agenda_id: Option<String>,
    pub operations: Option<Vec<Operation>>,
    pub params: Option<ParamsMap>,
}
