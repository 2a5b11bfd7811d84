//! Request and response bodies of the service endpoints (spec §1.13).

use serde::{Deserialize, Serialize};

use super::{AgendaProgress, ProcessingState};

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
