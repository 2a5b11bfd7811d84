use pop_store::{BlobStore, DirBlobStore, blob_conformance, sha256_hex};

#[tokio::test]
async fn dir_blob_store_conforms_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirBlobStore::open(dir.path().join("blobs")).unwrap();
    blob_conformance(&store).await;
    let address = store.put(b"kept".to_vec()).await.unwrap();
    drop(store);
    let reopened = DirBlobStore::open(dir.path().join("blobs")).unwrap();
    assert_eq!(reopened.get(&address).await.unwrap(), Some(b"kept".to_vec()));
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
