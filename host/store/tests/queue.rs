//! `StoreQueue` on a real SQLite file passes the queue suite, on a manual
//! clock (no case sleeps).

use std::sync::Arc;
use std::time::Duration;

use pop_ports::queue::conformance::{QueueUnderTest, run_all};
use pop_store::{ManualClock, SqliteOptions, SqliteStore, StoreQueue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_queue_passes_the_queue_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("pop.db"), SqliteOptions::default()).expect("open");
    let clock = Arc::new(ManualClock::default());
    let queue = Arc::new(StoreQueue::new(Arc::new(store), clock.clone()));
    let pass_time = Arc::new(move |by: Duration| {
        clock.advance(by);
        Box::pin(async {}) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    });
    run_all(QueueUnderTest { queue, pass_time }).await;
}
