//! `pop serve` authenticating bearer JWTs (feature `jwt`, on in
//! `scripts/test.sh`) instead of a token file: tokens minted here with an
//! HS256 secret; the caller comes from the claims, a super user only by the
//! configured claim; expired, foreign-issuer and forged tokens get 401.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::harness::*;

const SECRET: &[u8] = b"the e2e secret, thirty-two bytes";

fn token(claims: Value, secret: &[u8]) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut all = json!({"iss": "https://auth.pop.test/", "aud": "pop", "iat": now, "exp": now + 600});
    for (k, v) in claims.as_object().unwrap() {
        all[k] = v.clone();
    }
    encode(&Header::new(Algorithm::HS256), &all, &EncodingKey::from_secret(secret)).unwrap()
}

#[tokio::test]
async fn callers_are_who_their_jwts_say() {
    let workspace = Workspace::new();
    let secret = workspace.dir.path().join("jwt-secret");
    std::fs::write(&secret, SECRET).unwrap();
    let options = Options::default()
        .env("POP_JWT_ISSUER", "https://auth.pop.test/")
        .env("POP_JWT_AUDIENCE", "pop")
        .env("POP_JWT_HS256_SECRET_FILE", secret.display().to_string())
        .env("POP_JWT_SUPER_USER_CLAIM", "isSuperUser");
    let server = workspace.start_running(&options);
    let admin = server.client(&token(json!({"sub": "root", "isSuperUser": true}), SECRET));
    let alice = server.client(&token(json!({"sub": "alice", "accounts": "acme"}), SECRET));
    let bob = server.client(&token(json!({"sub": "bob", "accounts": ["globex"]}), SECRET));
    admin
        .post(
            "/pop/resourcepool",
            json!({"id": "pool-1", "customerId": "ops", "title": "pool"}),
        )
        .await
        .first();
    let customer = json!({"customerId": "acme", "title": "acme", "resourcePoolId": "pool-1"});
    admin.post("/pop/customer", customer).await.first();
    // Alice acts for acme only; not a super user, whatever she claims.
    let foreign = json!({"customerId": "globex", "title": "globex", "resourcePoolId": "pool-1"});
    let refused = alice.post("/pop/customer", foreign).await;
    assert_eq!(refused.status.as_u16(), 403, "{}", refused.body);
    let claimed = server.client(&token(
        json!({"sub": "eve", "accounts": ["acme"], "superUser": true}),
        SECRET,
    ));
    assert_eq!(claimed.get("/pop/customer/globex").await.status.as_u16(), 404);
    let acme = alice.get("/pop/customer/acme").await.first();
    assert_eq!(acme["customerId"], json!("acme"));
    assert_eq!(
        bob.get("/pop/customer/acme").await.status.as_u16(),
        404,
        "hidden from globex"
    );
    for (what, bad) in [
        (
            "expired",
            token(json!({"sub": "alice", "accounts": ["acme"], "exp": 1}), SECRET),
        ),
        (
            "another issuer",
            token(json!({"sub": "alice", "iss": "https://evil.test/"}), SECRET),
        ),
        (
            "forged",
            token(
                json!({"sub": "alice", "accounts": ["acme"]}),
                b"another secret, thirty-two bytes",
            ),
        ),
        ("malformed", "not.a.jwt".to_owned()),
    ] {
        let reply = server.client(&bad).get("/pop/customer/acme").await;
        assert_eq!(reply.status.as_u16(), 401, "{what}: {}", reply.body);
        assert!(
            reply.body["errorResponse"]["description"].is_string(),
            "{what}: {}",
            reply.body
        );
    }
}
