//! The in-memory adapters pass the same suites as the embedded ones.

use std::sync::Arc;
use std::time::Duration;

use pop_memory::{MemoryBlobStore, MemoryQueue, MemoryStore};
use pop_ports::queue::conformance::{QueueUnderTest, run_all as queue_suite};
use pop_ports::{ManualClock, blob_conformance, conformance as store_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_passes_the_store_suite() {
    store_suite::run_all(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_queue_passes_the_queue_suite_on_a_manual_clock() {
    let clock = Arc::new(ManualClock::default());
    let queue = Arc::new(MemoryQueue::new(clock.clone()));
    let pass_time = Arc::new(move |by: Duration| {
        clock.advance(by);
        Box::pin(async {}) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    });
    queue_suite(QueueUnderTest { queue, pass_time }).await;
}

#[tokio::test]
async fn the_memory_blob_store_passes_the_blob_suite() {
    blob_conformance(&MemoryBlobStore::new()).await;
}
