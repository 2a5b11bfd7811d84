//! POP's failure wording (spec §2.4, §5.3.2), in one place so the executor,
//! the tests and any log matcher agree.

use std::collections::BTreeSet;

use crate::model::DiagnosticEvent;

/// Dependencies complete, yet some reference still resolves to nothing.
pub const PENDING_REFERENCES: &str = "All dependencies have been completed but there are still pending references.";

/// Start of the agenda-level diagnostic when nothing can make progress.
pub const DEADLOCK_PREFIX: &str = "DEADLOCK";

/// How many stuck operations the deadlock diagnostic names; with 10,000
/// operations the full list would be a useless megabyte of text.
const DEADLOCK_LISTED: usize = 50;

pub fn invalid_references_message(operation: &str, invalid: &BTreeSet<String>) -> String {
    let list: Vec<&str> = invalid.iter().map(String::as_str).collect();
    format!("Operation {operation} has invalid references: {}", list.join(", "))
}

pub(super) fn event(message: String) -> DiagnosticEvent {
    DiagnosticEvent {
        message: Some(message),
        ..Default::default()
    }
}

/// `stuck`: (operation, the dependencies it still waits for), in agenda order.
pub(super) fn deadlock(stuck: &[(&str, Vec<&str>)]) -> DiagnosticEvent {
    let mut msg = format!(
        "{DEADLOCK_PREFIX}: no operation is running or ready, but {} operation(s) are pending:",
        stuck.len()
    );
    for (op, waits) in stuck.iter().take(DEADLOCK_LISTED) {
        msg.push_str(&format!(" {op} waits for [{}];", waits.join(", ")));
    }
    if stuck.len() > DEADLOCK_LISTED {
        msg.push_str(&format!(" … and {} more.", stuck.len() - DEADLOCK_LISTED));
    }
    event(msg)
}
