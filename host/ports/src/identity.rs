//! The `Identity` port: who is calling. The embedded adapter reads a token
//! file; a JWT validator and the API Gateway authorizer context are others.

use async_trait::async_trait;
use pop_core::visibility::Caller;

use crate::BoxError;

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No credentials, or not in a form this authenticator reads (401).
    #[error("{0}")]
    Missing(String),
    /// Credentials that do not authenticate anyone (401).
    #[error("{0}")]
    Rejected(String),
    /// Transient: the authenticator could not decide now (a key set that
    /// cannot be fetched); retrying later may succeed (503).
    #[error("authentication unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl IdentityError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Resolves a request's credentials (its headers) to a [`Caller`].
#[async_trait]
pub trait Identity: Send + Sync + 'static {
    async fn authenticate(&self, request: &http::request::Parts) -> Result<Caller, IdentityError>;
}

/// The bearer token of `request`: `Authorization: Bearer <token>`.
pub fn bearer_token(request: &http::request::Parts) -> Result<&str, IdentityError> {
    let header = request
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| IdentityError::Missing("The Authorization header is required.".into()))?;
    header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| IdentityError::Missing("The Authorization header must be 'Bearer <token>'.".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(authorization: Option<&str>) -> http::request::Parts {
        let mut builder = http::Request::builder();
        if let Some(value) = authorization {
            builder = builder.header(http::header::AUTHORIZATION, value);
        }
        builder.body(()).expect("request").into_parts().0
    }

    #[test]
    fn the_bearer_token_is_read_and_other_schemes_refused() {
        assert_eq!(bearer_token(&parts(Some("Bearer abc "))).ok(), Some("abc"));
        assert_eq!(bearer_token(&parts(Some("bearer abc"))).ok(), Some("abc"));
        assert!(matches!(
            bearer_token(&parts(Some("Basic abc"))),
            Err(IdentityError::Missing(_))
        ));
        assert!(matches!(bearer_token(&parts(None)), Err(IdentityError::Missing(_))));
    }
}
