//! Content-addressed blob storage (plugin binaries): the `BlobStore` port.
//! The embedded adapter is a directory; S3 is the distributed one.

#[cfg(feature = "conformance")]
mod conformance;

use async_trait::async_trait;
#[cfg(feature = "conformance")]
pub use conformance::blob_conformance;
use sha2::{Digest, Sha256};

use crate::BoxError;

/// The lower-case hex sha256 of `bytes`: the address of a blob.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Is `address` a sha256 address (64 lower-case hex digits)? Adapters
/// refuse anything else before it can become a path or a key.
pub fn is_blob_address(address: &str) -> bool {
    address.len() == 64 && address.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("'{0}' is not a sha256 blob address")]
    InvalidAddress(String),
    /// Transient: retrying later may succeed.
    #[error("blob store unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Permanent.
    #[error("blob store failed: {message}")]
    Backend {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl BlobError {
    pub fn backend_caused_by(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Immutable blobs addressed by the sha256 of their content.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Store `bytes` durably and return their address. Storing the same
    /// bytes twice is a no-op returning the same address.
    async fn put(&self, bytes: Vec<u8>) -> Result<String, BlobError>;
    /// The blob at `address`, if any.
    async fn get(&self, address: &str) -> Result<Option<Vec<u8>>, BlobError>;
    /// Remove the blob at `address` (absent is not an error).
    async fn delete(&self, address: &str) -> Result<(), BlobError>;
}
