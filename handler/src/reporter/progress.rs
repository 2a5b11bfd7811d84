//! The shape of the progress a handler reports (what `pop-sample-handler` always sent, after
//! POP's reporter): the operation's name, a `JobId` param fixed for the process, `startedTime`
//! the handler's start, `completedTime` on COMPLETE.

use std::time::{SystemTime, UNIX_EPOCH};

use pop_core::{OperationProgress, ParamsMap, ProcessingState};

#[derive(Debug, Clone)]
pub(crate) struct ProgressShape {
    operation: Option<String>,
    started: i64,
    job_id: String,
}

impl ProgressShape {
    pub(crate) fn new(operation: Option<String>) -> Self {
        Self {
            operation,
            started: now_millis(),
            job_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    pub(crate) fn progress(&self, state: ProcessingState, message: &str) -> OperationProgress {
        let mut params = ParamsMap::new();
        params.insert("JobId", self.job_id.clone());
        OperationProgress {
            operation: self.operation.clone(),
            processing_state: Some(state),
            processing_state_message: Some(message.to_owned()),
            started_time: Some(self.started),
            completed_time: (state == ProcessingState::Complete).then(now_millis),
            params: Some(params),
            ..Default::default()
        }
    }
}

pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
