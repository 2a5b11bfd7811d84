//! The data-object rules below the plugin host: generic CRUD with POP's
//! per-kind rules, client-written fields, progress documents, fencing
//! tokens, queue leases and the backlog layout. The services that need plugin
//! decisions (submission, run/rerun, the resource-pool services) are in
//! [`crate::services`], above [`crate::plugins`].

pub mod batch;
pub mod body;
pub mod fence;
pub mod objects;
pub mod placement;
pub mod progress;
pub mod queue;
pub mod references;
pub mod retry;
pub mod scheduling;
pub mod typed;

// Time is not read here: every time the application writes comes from the
// `Clock` port, passed in as `now` (epoch milliseconds, POP's date format).

/// A new object id: a UUIDv7, so that ids sort in creation order (a store
/// keyed by id, like DynamoDB, then keeps insertion order without a
/// sequence column).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_sort_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| super::new_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "ids made one after another sort in that order");
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
    }
}
