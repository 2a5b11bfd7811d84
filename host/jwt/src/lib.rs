//! The JWT adapter of the `Identity` port (issue 14): what POP's API
//! Gateway Lambda authorizer should have been. A bearer token is a JWT
//! signed with a key of a JWKS fetched from a configured URL and cached
//! (RS256, ES256), or with a shared secret (HS256); its `exp`, `nbf`,
//! `iss` and `aud` are checked; configurable claims name the caller, its
//! accounts, whether it is a super user (never, unless a claim is named and
//! says so) and the insights a puller's token is scoped to.
//!
//! What is refused, with 401: a malformed token, `alg: none` and any
//! algorithm the configured keys do not use (an HS256 token is never
//! checked against an RSA or EC public key: the algorithm confusion
//! attack), an unknown `kid` (after one refetch of the JWKS), a bad
//! signature, an expired or not-yet-valid token, a wrong issuer or
//! audience. A JWKS that cannot be fetched is 503 (`Unavailable`).

mod claims;
mod keys;
mod verifier;

pub use claims::ClaimNames;
pub use keys::KeySource;
pub use verifier::{JwtConfig, JwtIdentity};
