//! [`MemoryBlobStore`]: content-addressed blobs in a map.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use pop_ports::{BlobError, BlobStore, is_blob_address, sha256_hex};

/// Blobs by their sha256, held in memory.
#[derive(Debug, Default)]
pub struct MemoryBlobStore {
    blobs: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryBlobStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many blobs are held (tests of what a writer leaves behind).
    pub fn len(&self) -> usize {
        self.blobs().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn checked(address: &str) -> Result<(), BlobError> {
        if is_blob_address(address) {
            Ok(())
        } else {
            Err(BlobError::InvalidAddress(address.to_owned()))
        }
    }

    fn blobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every change is one insert or remove), so a poisoned lock is safe
        // to keep using.
        self.blobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn put(&self, bytes: Vec<u8>) -> Result<String, BlobError> {
        let address = sha256_hex(&bytes);
        self.blobs().entry(address.clone()).or_insert(bytes);
        Ok(address)
    }

    async fn get(&self, address: &str) -> Result<Option<Vec<u8>>, BlobError> {
        Self::checked(address)?;
        Ok(self.blobs().get(address).cloned())
    }

    async fn delete(&self, address: &str) -> Result<(), BlobError> {
        Self::checked(address)?;
        self.blobs().remove(address);
        Ok(())
    }
}
