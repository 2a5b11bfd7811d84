//! `DirBlobStore`: the embedded `BlobStore` adapter, a directory of
//! content-addressed files.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use pop_ports::{BlobError, BlobStore, is_blob_address, sha256_hex};

type Result<T> = std::result::Result<T, BlobError>;

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
        if !is_blob_address(address) {
            return Err(BlobError::InvalidAddress(address.to_owned()));
        }
        Ok(self.root.join(&address[..2]).join(address))
    }
}

fn backend(path: &Path, e: std::io::Error) -> BlobError {
    BlobError::backend_caused_by(path.display().to_string(), e)
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
        .map_err(|e| BlobError::backend_caused_by("blob task failed", e))?
}
