use super::{BlobError, BlobStore, sha256_hex};

/// The behaviour every [`BlobStore`] must show (S3 will run it too).
pub async fn blob_conformance(store: &dyn BlobStore) {
    let bytes = format!("blob conformance {:?}", std::time::SystemTime::now()).into_bytes();
    let address = store.put(bytes.clone()).await.expect("put");
    assert_eq!(address, sha256_hex(&bytes), "the address is the sha256 of the content");
    assert_eq!(
        store.put(bytes.clone()).await.expect("put again"),
        address,
        "idempotent"
    );
    assert_eq!(store.get(&address).await.expect("get"), Some(bytes));
    let absent = sha256_hex(b"never stored by the conformance suite");
    assert_eq!(store.get(&absent).await.expect("get absent"), None);
    store.delete(&address).await.expect("delete");
    assert_eq!(store.get(&address).await.expect("get deleted"), None);
    store.delete(&address).await.expect("delete absent");
    for trick in ["../etc/passwd", "", &address.to_uppercase()] {
        assert!(
            matches!(store.get(trick).await, Err(BlobError::InvalidAddress(_))),
            "'{trick}' is refused as an address"
        );
    }
}
