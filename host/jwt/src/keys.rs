//! Where the verification keys come from: a JWKS URL (fetched, cached for
//! a while, fetched again once for an unknown `kid`) or an HS256 secret.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use pop_ports::IdentityError;
use tokio::sync::Mutex;

/// Where keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// RS256 and ES256 keys of a JWKS document, kept for `ttl`.
    Jwks { url: String, ttl: Duration },
    /// One shared secret; tokens must be HS256.
    Hs256 { secret: Vec<u8> },
}

/// A key and the one algorithm it verifies.
#[derive(Clone)]
pub struct Key {
    pub key: DecodingKey,
    pub algorithm: Algorithm,
}

/// Least time between two fetches for an unknown `kid`: a flood of tokens
/// naming made-up keys cannot make the server hammer the JWKS endpoint.
const REFETCH_AFTER: Duration = Duration::from_secs(30);

struct Cached {
    keys: HashMap<String, Key>,
    /// A key without `kid`, used when a JWKS has exactly one key.
    only: Option<Key>,
    fetched: Instant,
}

pub struct Keys {
    source: KeySource,
    http: reqwest::Client,
    cache: Mutex<Option<Cached>>,
}

impl Keys {
    pub fn new(source: KeySource) -> Self {
        Self {
            source,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            cache: Mutex::new(None),
        }
    }

    /// The key that verifies a token whose header names `kid`.
    pub async fn key_for(&self, kid: Option<&str>) -> Result<Key, IdentityError> {
        let (url, ttl) = match &self.source {
            KeySource::Hs256 { secret } => {
                return Ok(Key {
                    key: DecodingKey::from_secret(secret),
                    algorithm: Algorithm::HS256,
                });
            }
            KeySource::Jwks { url, ttl } => (url.as_str(), *ttl),
        };
        let mut cache = self.cache.lock().await;
        let stale = cache.as_ref().is_none_or(|c| c.fetched.elapsed() > ttl);
        if stale {
            *cache = Some(self.fetch(url).await?);
        }
        if let Some(key) = find(cache.as_ref(), kid) {
            return Ok(key);
        }
        // An unknown kid: the issuer may have rotated its keys.
        if cache.as_ref().is_some_and(|c| c.fetched.elapsed() > REFETCH_AFTER) {
            *cache = Some(self.fetch(url).await?);
            if let Some(key) = find(cache.as_ref(), kid) {
                return Ok(key);
            }
        }
        Err(IdentityError::Rejected(format!(
            "The token's key {} is not one of the issuer's keys.",
            kid.unwrap_or("(no kid)")
        )))
    }

    async fn fetch(&self, url: &str) -> Result<Cached, IdentityError> {
        let unavailable = |e: reqwest::Error| IdentityError::Unavailable {
            message: format!("cannot fetch the JWKS at {url}: {e}"),
            source: Some(Box::new(e)),
        };
        let set: JwkSet = self
            .http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        let mut keys = HashMap::new();
        let mut unnamed = Vec::new();
        for jwk in &set.keys {
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
                // Other key types are not accepted (and an `oct` key in a
                // public JWKS would be a secret published).
                _ => continue,
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
            let key = Key { key, algorithm };
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.insert(kid.clone(), key);
                }
                None => unnamed.push(key),
            }
        }
        let only = if keys.is_empty() && unnamed.len() == 1 {
            unnamed.pop()
        } else {
            None
        };
        Ok(Cached {
            keys,
            only,
            fetched: Instant::now(),
        })
    }
}

fn find(cache: Option<&Cached>, kid: Option<&str>) -> Option<Key> {
    let cache = cache?;
    match kid {
        Some(kid) => cache.keys.get(kid).cloned(),
        None => cache.only.clone(),
    }
}
