//! The data-object rules below the plugin host: generic CRUD with POP's
//! per-kind rules, client-written fields, progress documents, fencing
//! tokens, queue leases and the backlog layout. The services that need plugin
//! decisions (submission, run/rerun, the resource-pool services) are in
//! [`crate::services`], above [`crate::plugins`].

pub mod body;
pub mod fence;
pub mod objects;
pub mod progress;
pub mod queue;
pub mod references;
pub mod scheduling;

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
