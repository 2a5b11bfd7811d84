//! What the API does, independent of HTTP: generic data-object CRUD with
//! POP's per-kind rules, agenda submission, progress updates, the agenda
//! services, and the queue leases and resource-pool services of pullers and
//! executors. Handlers in `api` only translate HTTP to these calls.

pub mod body;
pub mod fence;
pub mod objects;
pub mod progress;
pub mod queue;
pub mod references;
pub mod resourcepool;
pub mod scheduling;
pub mod service;
pub mod submission;

use std::time::{SystemTime, UNIX_EPOCH};

use pop_core::EpochMillis;

/// Wall-clock now as epoch milliseconds, POP's date format.
pub fn now_millis() -> EpochMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as EpochMillis)
        .unwrap_or(0)
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
