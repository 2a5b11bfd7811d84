//! `S3Blobs` passes the `BlobStore` conformance suite, unchanged from the
//! embedded runs, on moto's S3 through the real AWS SDK.

use pop_ports::{BlobStore, blob_conformance};
use pop_s3::S3Blobs;
use pop_test_moto::{Moto, unique};

#[tokio::test]
async fn s3_blobs_conform_on_moto() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let blobs = S3Blobs::new(client, unique("pop-blobs-"), "test/");
    blobs.create_bucket().await.expect("bucket created");
    blobs.create_bucket().await.expect("an existing bucket is kept");
    blob_conformance(&blobs).await;
    // Content-addressed: the same bytes, the same address; a bad address is refused.
    let first = blobs.put(b"same".to_vec()).await.unwrap();
    assert_eq!(blobs.put(b"same".to_vec()).await.unwrap(), first);
    assert!(matches!(
        blobs.get("../etc/passwd").await,
        Err(pop_ports::BlobError::InvalidAddress(_))
    ));
}
