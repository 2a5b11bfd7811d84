//! Fencing: only the current delivery of an agenda records anything.
//!
//! A queue and the store share no transaction (SQS cannot join a DynamoDB
//! write), so "the holder of the lease" cannot be checked inside the store
//! write by reading the queue. Instead every delivery carries a token (its
//! message id and receive count) and the executor, when it starts, writes
//! it into the agenda's progress (`fencingToken`, a compare-and-set on the
//! value it read). Every later write of that run is conditional on the
//! token still being its own: once a newer delivery started (the lease ran
//! out and the message came back) or a rerun reset the agenda, the old run
//! records nothing more, whatever queue backs it.

use pop_core::{ObjectKind, QueuedAgenda};
use pop_ports::{Document, Expect, Write};
use serde_json::{Value, json};

/// The progress field holding the current delivery's token.
pub const FIELD: &str = "fencingToken";

/// The token of one delivery: `<message id>/<receive count>`.
pub fn token_of(delivery: &QueuedAgenda) -> String {
    format!(
        "{}/{}",
        delivery.envelope.id.as_deref().unwrap_or_default(),
        delivery.deliveries.unwrap_or(0)
    )
}

/// The token a rerun writes: no delivery holds it, so every run of the
/// earlier attempt stops recording, and the next delivery takes over.
pub fn rerun_token() -> String {
    format!("rerun/{}", uuid::Uuid::now_v7())
}

/// The write that makes `token` the progress's current delivery, applied
/// only if the progress still holds the token read (`stored`), so two
/// deliveries starting at once cannot both take over.
pub fn take_over(progress_id: &str, stored: Option<&Value>, token: &str) -> Write {
    let read = stored.cloned().unwrap_or(Value::Null);
    let patch = json!({ FIELD: token });
    Write::merge_if(
        ObjectKind::AgendaProgress,
        progress_id,
        Expect::field(FIELD, read),
        patch.as_object().cloned().unwrap_or_default(),
    )
}

/// A write that changes nothing and applies only while `token` is the
/// progress's current delivery: put first in every batch of a run, it
/// makes the batch conditional on the run still being the current one.
pub fn guard(progress_id: &str, token: &str) -> Write {
    Write::merge_if(
        ObjectKind::AgendaProgress,
        progress_id,
        Expect::field(FIELD, token),
        Document::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_names_the_message_and_the_delivery() {
        let mut delivery = QueuedAgenda {
            deliveries: Some(3),
            ..Default::default()
        };
        delivery.envelope.id = Some("m1".into());
        assert_eq!(token_of(&delivery), "m1/3");
        assert!(rerun_token().starts_with("rerun/"));
        assert_ne!(rerun_token(), rerun_token());
    }

    #[test]
    fn the_guard_and_the_take_over_pin_the_token() {
        let stored = json!("m1/1");
        let Write::Merge { expect, patch, .. } = take_over("p", Some(&stored), "m1/2") else {
            panic!("a merge");
        };
        assert!(expect.held_by(&json!({"fencingToken": "m1/1"}).as_object().cloned().unwrap_or_default()));
        assert_eq!(patch.get(FIELD), Some(&json!("m1/2")));
        let Write::Merge { expect, patch, .. } = guard("p", "m1/2") else {
            panic!("a merge");
        };
        assert!(patch.is_empty(), "the guard changes nothing");
        assert!(!expect.held_by(&json!({"fencingToken": "m1/1"}).as_object().cloned().unwrap_or_default()));
    }
}
