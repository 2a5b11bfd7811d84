//! Verifying a bearer token and mapping it to a caller.

use std::collections::HashSet;

use async_trait::async_trait;
use jsonwebtoken::{Validation, decode, decode_header};
use pop_core::visibility::Caller;
use pop_ports::{Identity, IdentityError, bearer_token};
use serde_json::{Map, Value};

use crate::claims::ClaimNames;
use crate::keys::{KeySource, Keys};

/// What a token must be.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud` (one of the token's audiences).
    pub audience: String,
    pub keys: KeySource,
    pub claims: ClaimNames,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

/// The JWT `Identity` adapter.
pub struct JwtIdentity {
    config: JwtConfig,
    keys: Keys,
}

fn rejected(message: impl Into<String>) -> IdentityError {
    IdentityError::Rejected(message.into())
}

impl JwtIdentity {
    pub fn new(config: JwtConfig) -> Self {
        let keys = Keys::new(config.keys.clone());
        Self { config, keys }
    }

    /// The caller `token` stands for, or why it stands for nobody.
    pub async fn verify(&self, token: &str) -> Result<Caller, IdentityError> {
        // `alg: none` and unknown algorithms do not even parse.
        let header = decode_header(token).map_err(|e| rejected(format!("The token is not a valid JWT: {e}.")))?;
        let key = self.keys.key_for(header.kid.as_deref()).await?;
        // The key decides the algorithm, never the token: an HS256 token
        // is not checked against a public key as if it were a secret.
        if header.alg != key.algorithm {
            return Err(rejected(format!(
                "The token's algorithm {:?} is not the one of its key ({:?}).",
                header.alg, key.algorithm
            )));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.validate_nbf = true;
        validation.leeway = self.config.leeway_secs;
        validation.required_spec_claims = HashSet::from(["exp".to_owned(), "iss".to_owned(), "aud".to_owned()]);
        let data = decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| rejected(format!("The token was refused: {e}.")))?;
        self.config.claims.caller(&data.claims).map_err(rejected)
    }
}

#[async_trait]
impl Identity for JwtIdentity {
    async fn authenticate(&self, request: &http::request::Parts) -> Result<Caller, IdentityError> {
        let token = bearer_token(request)?;
        self.verify(token).await
    }
}
