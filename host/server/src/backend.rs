//! Where the data lives: the embedded default (one SQLite file and a blob
//! directory under the data directory) or AWS (`--backend aws`, feature
//! `aws`: DynamoDB tables and an S3 bucket, found through the SDK's default
//! configuration chain). The queue is the store's `QueuedAgenda` table on
//! either (`StoreQueue`).

use std::sync::Arc;

use anyhow::Context as _;
use pop_offload::{OffloadOptions, OffloadingStore};
use pop_ports::BlobStore;
use pop_store::{CacheOptions, CachedStore, DirBlobStore, SqliteOptions, SqliteStore, Store};

use crate::cli::{BackendKind, ServeOptions};

/// File name of the embedded store inside the data directory.
pub const STORE_FILE: &str = "pop.db";
/// Directory of plugin binaries (content-addressed) inside the data directory.
pub const BLOB_DIR: &str = "blobs";

/// The opened store and blob store.
pub struct Backend {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    /// Where the data is, for the log.
    pub description: String,
}

pub async fn open(options: &ServeOptions) -> anyhow::Result<Backend> {
    match options.backend {
        BackendKind::Embedded => embedded(options),
        BackendKind::Aws => aws(options).await,
    }
}

fn embedded(options: &ServeOptions) -> anyhow::Result<Backend> {
    let path = options.data_dir.join(STORE_FILE);
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .with_context(|| format!("cannot open store {}", path.display()))?;
    let blobs: Arc<dyn BlobStore> = Arc::new(DirBlobStore::open(options.data_dir.join(BLOB_DIR))?);
    // Rows are kept to DynamoDB's 400 KB item; the operations of a larger
    // agenda (or template) go to the blob store, referenced from the row.
    let store = OffloadingStore::new(Arc::new(store), blobs.clone(), OffloadOptions::default());
    // Customers, insights, pools and templates are read on every submission
    // and rarely change: serve them from memory (invalidated on write; one
    // process owns the file, so no other writer can make it stale).
    let store: Arc<dyn Store> = Arc::new(CachedStore::new(Arc::new(store), CacheOptions::default()));
    Ok(Backend {
        store,
        blobs,
        description: path.display().to_string(),
    })
}

#[cfg(feature = "aws")]
async fn aws(options: &ServeOptions) -> anyhow::Result<Backend> {
    let prefix = &options.aws_prefix;
    let names = pop_dynamodb::TableNames::new(prefix.clone());
    let dynamo = pop_dynamodb::DynamoStore::from_env(names).await;
    let bucket = bucket_name(prefix);
    let s3 = pop_s3::S3Blobs::from_env(bucket.clone(), "").await;
    if options.aws_create_resources {
        dynamo.create_tables().await?;
        s3.create_bucket().await?;
    }
    let blobs: Arc<dyn BlobStore> = Arc::new(s3);
    // No read cache: several servers share the tables, and a cache
    // invalidated by one process's writes only would serve the others
    // stale objects.
    let store: Arc<dyn Store> = Arc::new(OffloadingStore::new(
        Arc::new(dynamo),
        blobs.clone(),
        OffloadOptions::default(),
    ));
    Ok(Backend {
        store,
        blobs,
        description: format!("DynamoDB tables {prefix}*, S3 bucket {bucket}"),
    })
}

#[cfg(not(feature = "aws"))]
async fn aws(_options: &ServeOptions) -> anyhow::Result<Backend> {
    anyhow::bail!("this pop was built without AWS support: build it with `--features aws`")
}

/// The bucket of `prefix`: S3 names are 3–63 characters of lowercase
/// letters, digits and `-`.
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
fn bucket_name(prefix: &str) -> String {
    let mut name: String = format!("{prefix}pop-blobs")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_matches('-').to_owned();
    name.truncate(63);
    name
}

#[cfg(test)]
mod tests {
    use super::bucket_name;

    #[test]
    fn bucket_names_are_what_s3_accepts() {
        assert_eq!(bucket_name("Dev_"), "dev-pop-blobs");
        assert_eq!(bucket_name(""), "pop-blobs");
        assert!(bucket_name(&"x".repeat(100)).len() <= 63);
    }
}
