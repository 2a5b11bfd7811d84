//! The S3 adapter of the `BlobStore` port (issue 14): each blob is the
//! object `<prefix>blobs/<sha256>` of one bucket. Content addressing makes
//! a put idempotent (the same bytes, the same key) and a get of a deleted
//! or never written blob `None`. Throttling, 5xx and connection failures
//! are transient (`Unavailable`), the rest permanent.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use pop_ports::{BlobError, BlobStore, is_blob_address, sha256_hex};

/// S3's error codes worth retrying.
const TRANSIENT_CODES: [&str; 4] = ["SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout"];

pub struct S3Blobs {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Blobs {
    /// Blobs in `bucket`, under `prefix` (e.g. a stage's name).
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    /// On the AWS configuration found the standard way; path-style
    /// addressing when `AWS_ENDPOINT_URL` points at a stand-in (moto).
    pub async fn from_env(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let s3 = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(std::env::var_os("AWS_ENDPOINT_URL").is_some())
            .build();
        Self::new(Client::from_conf(s3), bucket, prefix)
    }

    /// Creates the bucket when it does not exist (development and tests).
    pub async fn create_bucket(&self) -> Result<(), BlobError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {}
            Err(e) => return Err(blob_error(format!("looking for bucket {}", self.bucket), e)),
        }
        match self.client.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()) =>
            {
                Ok(())
            }
            Err(e) => Err(blob_error(format!("creating bucket {}", self.bucket), e)),
        }
    }

    fn key(&self, address: &str) -> String {
        format!("{}blobs/{address}", self.prefix)
    }
}

fn blob_error<E, R>(what: String, error: SdkError<E, R>) -> BlobError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let transient = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => service.err().code().is_some_and(|code| TRANSIENT_CODES.contains(&code)),
        _ => false,
    };
    let message = format!("{what}: {error}");
    if transient {
        BlobError::Unavailable {
            message,
            source: Some(Box::new(error)),
        }
    } else {
        BlobError::backend_caused_by(message, error)
    }
}

fn checked(address: &str) -> Result<&str, BlobError> {
    if is_blob_address(address) {
        Ok(address)
    } else {
        Err(BlobError::InvalidAddress(address.to_owned()))
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(&self, bytes: Vec<u8>) -> Result<String, BlobError> {
        let address = sha256_hex(&bytes);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(&address))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| blob_error(format!("writing blob {address}"), e))?;
        Ok(address)
    }

    async fn get(&self, address: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let address = checked(address)?;
        let reply = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(address))
            .send()
            .await
        {
            Ok(reply) => reply,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(blob_error(format!("reading blob {address}"), e)),
        };
        let bytes = reply.body.collect().await.map_err(|e| BlobError::Unavailable {
            message: format!("reading blob {address}: {e}"),
            source: Some(Box::new(e)),
        })?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    async fn delete(&self, address: &str) -> Result<(), BlobError> {
        let address = checked(address)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(address))
            .send()
            .await
            .map_err(|e| blob_error(format!("deleting blob {address}"), e))?;
        Ok(())
    }
}
