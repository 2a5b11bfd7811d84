//! The authorizer's verdicts on real tokens, minted here with keys made
//! here: an ES256 key served as a JWKS on loopback, and an HS256 secret.
//! Valid tokens become POP's caller; expired, not yet valid, wrong issuer
//! or audience, bad signature, unknown `kid`, `alg: none`, HS/ES confusion
//! and malformed tokens are refused, and nobody is a super user by default.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePrivateKey;
use pop_jwt::{ClaimNames, JwtConfig, JwtIdentity, KeySource};
use pop_ports::IdentityError;
use serde_json::{Value, json};

const ISSUER: &str = "https://auth.example.test/";
const AUDIENCE: &str = "pop-api";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

struct Issuer {
    key: EncodingKey,
    jwk: Value,
}

/// A fresh P-256 key: its signing form and its public JWK.
fn ec_issuer(kid: &str) -> Issuer {
    let signing = SigningKey::random(&mut rand_core::OsRng);
    let der = signing.to_pkcs8_der().unwrap();
    let point = signing.verifying_key().to_encoded_point(false);
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())});
    Issuer {
        key: EncodingKey::from_ec_der(der.as_bytes()),
        jwk,
    }
}

/// Serves `{"keys": jwks}` on loopback; its URL.
async fn serve_jwks(jwks: Vec<Value>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let body = json!({"keys": jwks});
    let router = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let body = body.clone();
            async move { axum::Json(body) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{address}/jwks.json")
}

fn claims(extra: Value) -> Value {
    let mut claims = json!({"sub": "alice", "accounts": ["acme"], "iss": ISSUER, "aud": AUDIENCE,
        "iat": now(), "exp": now() + 600});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

fn es256(issuer: &Issuer, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    encode(&header, claims, &issuer.key).unwrap()
}

fn config(keys: KeySource) -> JwtConfig {
    JwtConfig {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        keys,
        claims: ClaimNames::default(),
        leeway_secs: 0,
    }
}

fn refused(outcome: Result<pop_core::visibility::Caller, IdentityError>, what: &str) {
    match outcome {
        Err(IdentityError::Rejected(message)) => assert!(!message.is_empty(), "{what}"),
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn es256_tokens_of_the_jwks_are_verified_and_everything_else_refused() {
    let issuer = ec_issuer("k1");
    let stranger = ec_issuer("k1");
    let url = serve_jwks(vec![issuer.jwk.clone()]).await;
    let identity = JwtIdentity::new(config(KeySource::Jwks {
        url,
        ttl: Duration::from_secs(300),
    }));

    let caller = identity
        .verify(&es256(&issuer, "k1", &claims(json!({}))))
        .await
        .unwrap();
    assert_eq!(caller.user_id, "alice");
    assert!(caller.accounts.contains("acme"));
    assert!(!caller.super_user, "nobody is a super user by default");
    let claimed = claims(json!({"isSuperUser": true, "superUser": true}));
    assert!(
        !identity
            .verify(&es256(&issuer, "k1", &claimed))
            .await
            .unwrap()
            .super_user
    );

    refused(
        identity
            .verify(&es256(&issuer, "k1", &claims(json!({"exp": now() - 60}))))
            .await,
        "expired",
    );
    refused(
        identity
            .verify(&es256(&issuer, "k1", &claims(json!({"nbf": now() + 600}))))
            .await,
        "not yet valid",
    );
    refused(
        identity
            .verify(&es256(&issuer, "k1", &claims(json!({"iss": "https://evil.test/"}))))
            .await,
        "issuer",
    );
    refused(
        identity
            .verify(&es256(&issuer, "k1", &claims(json!({"aud": "other-api"}))))
            .await,
        "audience",
    );
    refused(
        identity.verify(&es256(&stranger, "k1", &claims(json!({})))).await,
        "bad signature",
    );
    refused(
        identity.verify(&es256(&issuer, "k9", &claims(json!({})))).await,
        "unknown kid",
    );
    let no_exp = {
        let mut c = claims(json!({}));
        c.as_object_mut().unwrap().remove("exp");
        c
    };
    refused(identity.verify(&es256(&issuer, "k1", &no_exp)).await, "no exp");
    // alg none: a header and claims with no signature.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
        URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
    );
    refused(identity.verify(&none).await, "alg none");
    // HS/ES confusion: an HS256 token "signed" with the public key's bytes.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let public = serde_json::to_vec(&issuer.jwk).unwrap();
    let confused = encode(&header, &claims(json!({})), &EncodingKey::from_secret(&public)).unwrap();
    refused(identity.verify(&confused).await, "HS256 against a public key");
    for malformed in ["", "abc", "a.b.c", "....", "eyJhbGciOiJFUzI1NiJ9.e30"] {
        refused(identity.verify(malformed).await, malformed);
    }
}

#[tokio::test]
async fn hs256_tokens_need_the_secret_and_claims_map_as_configured() {
    let secret = b"a secret of thirty-two bytes....".to_vec();
    let mut config = config(KeySource::Hs256 { secret: secret.clone() });
    config.claims = ClaimNames {
        accounts: "custom:accounts".into(),
        super_user: Some("custom:isSuperUser".into()),
        insights: Some("custom:insights".into()),
        ..ClaimNames::default()
    };
    let identity = JwtIdentity::new(config);
    let token = |claims: &Value, secret: &[u8]| {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let admin = claims(json!({"custom:accounts": "a|b", "custom:isSuperUser": true}));
    let caller = identity.verify(&token(&admin, &secret)).await.unwrap();
    assert!(caller.super_user);
    assert_eq!(caller.accounts.len(), 2);
    let puller = claims(json!({"custom:accounts": ["ops"], "custom:insights": ["insight-remote"]}));
    let caller = identity.verify(&token(&puller, &secret)).await.unwrap();
    assert!(caller.may_serve("insight-remote") && !caller.may_serve("insight-other"));
    refused(
        identity
            .verify(&token(&admin, b"another secret of 32 bytes......"))
            .await,
        "wrong secret",
    );
    // An ES256 token is refused by an HS256 configuration.
    let issuer = ec_issuer("k1");
    refused(
        identity.verify(&es256(&issuer, "k1", &claims(json!({})))).await,
        "ES256 against a secret",
    );
}

#[tokio::test]
async fn a_jwks_that_cannot_be_fetched_is_unavailable_not_a_refusal() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let identity = JwtIdentity::new(config(KeySource::Jwks {
        url: format!("http://127.0.0.1:{port}/jwks.json"),
        ttl: Duration::from_secs(300),
    }));
    let issuer = ec_issuer("k1");
    match identity.verify(&es256(&issuer, "k1", &claims(json!({})))).await {
        Err(error @ IdentityError::Unavailable { .. }) => assert!(error.is_transient()),
        other => panic!("expected unavailable, got {other:?}"),
    }
}
