//! DynamoDB's failures as the port's: throttling, 5xx and connection
//! failures are transient (`Unavailable`), the rest permanent (`Backend`),
//! the SDK's error kept as the source.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use pop_ports::StoreError;

/// Why the store could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot create the DynamoDB tables: {0}")]
    Tables(#[source] StoreError),
}

/// Error codes DynamoDB answers when retrying later helps.
const TRANSIENT_CODES: [&str; 6] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
];

/// Whether retrying the call that failed with `error` may help.
pub fn is_transient<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            let status = service.raw().status();
            status.is_server_error()
                || status.as_u16() == 429
                || service.err().code().is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        _ => false,
    }
}

/// `error` of the call described by `what`.
pub fn sdk_error<E>(what: String, error: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = is_transient(&error);
    let message = match error.as_service_error().and_then(ProvideErrorMetadata::message) {
        Some(detail) => format!("{what}: {detail}"),
        None => format!("{what}: {error}"),
    };
    if transient {
        StoreError::Unavailable {
            message,
            source: Some(Box::new(error)),
        }
    } else {
        StoreError::Backend {
            message,
            source: Some(Box::new(error)),
        }
    }
}
