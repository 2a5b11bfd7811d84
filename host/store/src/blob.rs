//! Content-addressed blob storage (plugin binaries): the `BlobStore` port
//! and its embedded implementation, a directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::{Result, StoreError};

/// The lower-case hex sha256 of `bytes`: the address of a blob.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Immutable blobs addressed by the sha256 of their content.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Store `bytes` durably and return their address. Storing the same
    /// bytes twice is a no-op returning the same address.
    async fn put(&self, bytes: Vec<u8>) -> Result<String>;
    /// The blob at `address`, if any.
    async fn get(&self, address: &str) -> Result<Option<Vec<u8>>>;
    /// Remove the blob at `address` (absent is not an error).
    async fn delete(&self, address: &str) -> Result<()>;
}

/// Blobs as files `<root>/<aa>/<sha256>` (written to a temporary file,
/// fsynced, then renamed into place, so a reader never sees half a blob).
#[derive(Debug, Clone)]
pub struct DirBlobStore {
    root: PathBuf,
}

impl DirBlobStore {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| backend(&root, e))?;
        Ok(Self { root })
    }

    fn path_of(&self, address: &str) -> Result<PathBuf> {
        let valid = address.len() == 64 && address.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return Err(StoreError::InvalidDocument(format!(
                "'{address}' is not a sha256 blob address"
            )));
        }
        Ok(self.root.join(&address[..2]).join(address))
    }
}

fn backend(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{}: {e}", path.display()))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("blob paths have a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait]
impl BlobStore for DirBlobStore {
    async fn put(&self, bytes: Vec<u8>) -> Result<String> {
        let this = self.clone();
        run_blocking(move || {
            let address = sha256_hex(&bytes);
            let path = this.path_of(&address)?;
            if !path.exists() {
                write_atomically(&path, &bytes).map_err(|e| backend(&path, e))?;
            }
            Ok(address)
        })
        .await
    }

    async fn get(&self, address: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path_of(address)?;
        run_blocking(move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(backend(&path, e)),
        })
        .await
    }

    async fn delete(&self, address: &str) -> Result<()> {
        let path = self.path_of(address)?;
        run_blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(backend(&path, e)),
        })
        .await
    }
}

async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("blob task failed: {e}")))?
}

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
    assert!(
        matches!(store.get("../etc/passwd").await, Err(StoreError::InvalidDocument(_))),
        "no path tricks"
    );
}
