//! `DynamoStore` passes the `Store` conformance suite, unchanged from the
//! embedded runs, on moto's DynamoDB through the real AWS SDK.

use std::sync::Arc;

use pop_dynamodb::{DynamoStore, TableNames};
use pop_ports::Store;
use pop_ports::store::conformance;
use pop_test_moto::{Moto, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_store_conforms_on_moto() {
    let moto = Moto::start();
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let store = DynamoStore::new(client, TableNames::new(unique("conf")));
    store.create_tables().await.expect("tables created");
    // Creating them again finds them.
    store.create_tables().await.expect("existing tables kept");
    let store: Arc<dyn Store> = Arc::new(store);
    conformance::run_all(store).await;
}
