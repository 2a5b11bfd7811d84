//! The ResourcePool service over HTTP (spec §3.9), as a puller and an
//! executor outside the server call it: claims (`getAgenda`), the lease's
//! heartbeat and end (`extendLease`, `ackAgenda`) and progress reports
//! (`updateAgendaProgress`), with a token scoped to the insights served.
//! Failures keep their class, so a ledger can tell a lost lease (409) from
//! an outage worth retrying (5xx, no connection) and a refusal (other 4xx).

use std::time::Duration;

use pop_core::Lease;
use serde_json::{Value, json};

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    /// 409: the lease is held by another delivery, or the progress by
    /// another fencing token.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The server could not be reached or answered 5xx / 429.
    #[error("the POP server is unavailable: {0}")]
    Unavailable(String),
    /// Any other refusal (401, 403, 404, 400, 422).
    #[error("refused ({status}): {message}")]
    Refused { status: u16, message: String },
}

/// What one `getAgenda` handed out.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    pub agendas: Vec<Value>,
    /// The progress of each agenda that already ran in part.
    pub progresses: Vec<Value>,
    pub leases: Vec<Lease>,
}

impl Claim {
    /// The delivery of `lease`: its agenda and, when it ran in part, its progress.
    pub fn parts_of(&self, lease: &Lease) -> (Option<Value>, Option<Value>) {
        let agenda = self
            .agendas
            .iter()
            .find(|a| a["id"].as_str() == Some(lease.agenda_id.as_str()))
            .cloned();
        let progress_id = agenda
            .as_ref()
            .and_then(|a| a["progressId"].as_str().map(str::to_owned));
        let progress = progress_id.and_then(|id| {
            self.progresses
                .iter()
                .find(|p| p["id"].as_str() == Some(id.as_str()))
                .cloned()
        });
        (agenda, progress)
    }
}

/// A client of one POP server's ResourcePool service.
#[derive(Clone)]
pub struct ResourcePoolClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl ResourcePoolClient {
    pub fn new(server: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .build()
                .unwrap_or_default(),
            base: server.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    pub fn server(&self) -> &str {
        &self.base
    }

    /// The token, handed on to the executor pods this puller starts.
    #[cfg_attr(not(feature = "kubernetes"), allow(dead_code))]
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Claim up to `count` agendas of `insight_id`, leased for `lease` to `puller`.
    pub async fn get_agenda(
        &self,
        insight_id: &str,
        count: usize,
        lease: Duration,
        puller: &str,
    ) -> Result<Claim, ServiceError> {
        let body = json!({"insightId": insight_id, "count": count, "leaseMs": millis(lease), "puller": puller});
        let reply = self.post("getAgenda", &body).await?;
        let list = |field: &str| reply[field].as_array().cloned().unwrap_or_default();
        let leases = serde_json::from_value(reply["leases"].clone())
            .map_err(|e| ServiceError::Unavailable(format!("getAgenda answered leases that do not parse: {e}")))?;
        Ok(Claim {
            agendas: list("agendas"),
            progresses: list("agendaProgresses"),
            leases,
        })
    }

    /// The lease's heartbeat.
    pub async fn extend_lease(&self, lease: &Lease, puller: &str, length: Duration) -> Result<(), ServiceError> {
        let body = json!({"queueId": lease.queue_id, "puller": puller, "deliveries": lease.deliveries,
            "leaseMs": millis(length)});
        self.post("extendLease", &body).await.map(drop)
    }

    /// The delivery is done.
    pub async fn ack_agenda(&self, lease: &Lease, puller: &str) -> Result<(), ServiceError> {
        let body = json!({"queueId": lease.queue_id, "puller": puller, "deliveries": lease.deliveries});
        self.post("ackAgenda", &body).await.map(drop)
    }

    /// An executor's progress report, applied only while `fencing_token`
    /// is the progress's current delivery.
    pub async fn update_agenda_progress(&self, progress: Value, fencing_token: &str) -> Result<(), ServiceError> {
        let body = json!({"agendaProgress": progress, "fencingToken": fencing_token});
        self.post("updateAgendaProgress", &body).await.map(drop)
    }

    /// An insight the token serves.
    pub async fn insight(&self, insight_id: &str) -> Result<Value, ServiceError> {
        let reply = self
            .send(self.http.get(format!("{}/pop/insight/{insight_id}", self.base)))
            .await?;
        reply["all"]
            .as_array()
            .and_then(|all| all.first())
            .cloned()
            .ok_or_else(|| ServiceError::Refused {
                status: 404,
                message: format!("insight {insight_id} not found"),
            })
    }

    async fn post(&self, operation: &str, body: &Value) -> Result<Value, ServiceError> {
        let url = format!("{}/pop/resourcepool/service/{operation}", self.base);
        self.send(self.http.post(url).json(body)).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, ServiceError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| ServiceError::Unavailable(format!("{}: {e}", self.base)))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let error = &body["errorResponse"];
        let message = error["description"]
            .as_str()
            .or_else(|| error["title"].as_str())
            .map_or_else(|| body.to_string(), str::to_owned);
        Err(match status.as_u16() {
            409 => ServiceError::Conflict(message),
            429 | 500.. => ServiceError::Unavailable(format!("{status}: {message}")),
            code => ServiceError::Refused { status: code, message },
        })
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
