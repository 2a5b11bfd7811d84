//! Authentication: `Authorization: Bearer <token>` resolved to a [`Caller`].
//!
//! Identities come from a token file (the embedded stand-in for POP's API
//! Gateway Lambda authorizer), in this format:
//! `{"tokens":[{"token":"…","userId":"…","accounts":["acme"],"superUser":false}]}`;
//! a puller's or executor's token adds `"insights":["…"]`: it may then use
//! only the ResourcePool service, for those insights.
//! With no file, a super-user token is generated into the data directory.
//!
//! [`Authenticator`] is the token-file adapter of the `Identity` port; the
//! API reaches it only through that trait.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use http::request::Parts;
use pop_core::visibility::Caller;
use pop_ports::{Identity, IdentityError, bearer_token};
use serde::Deserialize;

/// Name of the generated super-user token file inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("cannot read token file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("token file {path} is not valid: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("token file {path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
    #[error("cannot write admin token {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    tokens: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenEntry {
    token: String,
    user_id: String,
    #[serde(default)]
    accounts: Vec<String>,
    #[serde(default)]
    super_user: bool,
    /// A puller's or executor's token: the ResourcePool service only, for
    /// these insights only.
    #[serde(default)]
    insights: Option<Vec<String>>,
}

/// Bearer tokens and the callers they stand for.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    callers: HashMap<String, Caller>,
}

impl Authenticator {
    /// Load identities from a token file.
    pub fn from_token_file(path: &Path) -> Result<Self, AuthConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthConfigError::Read {
            path: path.into(),
            source,
        })?;
        let file: TokenFile = serde_json::from_str(&text).map_err(|source| AuthConfigError::Parse {
            path: path.into(),
            source,
        })?;
        let mut callers = HashMap::new();
        for entry in file.tokens {
            if entry.token.trim().is_empty() {
                return Err(AuthConfigError::Invalid {
                    path: path.into(),
                    problem: "a token is empty".into(),
                });
            }
            let mut caller = Caller::new(entry.user_id, entry.accounts, entry.super_user);
            if let Some(insights) = entry.insights {
                if insights.is_empty() || entry.super_user {
                    return Err(AuthConfigError::Invalid {
                        path: path.into(),
                        problem: format!(
                            "the token of {} is scoped to insights, so it must name at least one and cannot be a super user",
                            caller.user_id
                        ),
                    });
                }
                caller = caller.scoped_to(insights);
            }
            if callers.insert(entry.token, caller).is_some() {
                return Err(AuthConfigError::Invalid {
                    path: path.into(),
                    problem: "a token appears twice".into(),
                });
            }
        }
        Ok(Self { callers })
    }

    /// A single super user whose token lives in `<data_dir>/admin-token`
    /// (created with mode 0600 on first start, reused after).
    pub fn with_admin_token(data_dir: &Path) -> Result<(Self, PathBuf), AuthConfigError> {
        let path = data_dir.join(ADMIN_TOKEN_FILE);
        let token = match std::fs::read_to_string(&path) {
            Ok(existing) if !existing.trim().is_empty() => existing.trim().to_string(),
            _ => {
                let token = random_token();
                write_private(&path, &token).map_err(|source| AuthConfigError::Write {
                    path: path.clone(),
                    source,
                })?;
                token
            }
        };
        let mut callers = HashMap::new();
        callers.insert(token, Caller::new("admin", [], true));
        Ok((Self { callers }, path))
    }
}

#[async_trait]
impl Identity for Authenticator {
    /// The caller behind the request's `Authorization: Bearer` token.
    async fn authenticate(&self, request: &Parts) -> Result<Caller, IdentityError> {
        let token = bearer_token(request)?;
        self.callers
            .get(token)
            .cloned()
            .ok_or_else(|| IdentityError::Rejected("The bearer token is not valid.".into()))
    }
}

fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Write a secret readable by the owner only.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> Parts {
        let mut request = http::Request::new(());
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value.parse().unwrap());
        request.into_parts().0
    }

    fn no_headers() -> Parts {
        http::Request::new(()).into_parts().0
    }

    /// As the API sees it: through the port (pop-http maps these errors to
    /// 401, tested there).
    async fn authenticate(auth: &Authenticator, request: &Parts) -> Result<Caller, IdentityError> {
        Identity::authenticate(auth, request).await
    }

    #[tokio::test]
    async fn token_file_roundtrip_and_rejections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(
            &path,
            r#"{"tokens":[{"token":"t1","userId":"alice","accounts":["acme"],"superUser":false}]}"#,
        )
        .unwrap();
        let auth = Authenticator::from_token_file(&path).unwrap();
        let alice = authenticate(&auth, &headers("Bearer t1")).await.unwrap();
        assert_eq!(alice.user_id, "alice");
        assert!(alice.accounts.contains("acme") && !alice.super_user);
        assert!(matches!(
            authenticate(&auth, &headers("Bearer nope")).await,
            Err(IdentityError::Missing(_) | IdentityError::Rejected(_))
        ));
        assert!(matches!(
            authenticate(&auth, &headers("t1")).await,
            Err(IdentityError::Missing(_) | IdentityError::Rejected(_))
        ));
        assert!(matches!(
            authenticate(&auth, &no_headers()).await,
            Err(IdentityError::Missing(_) | IdentityError::Rejected(_))
        ));

        std::fs::write(&path, r#"{"tokens":[{"token":"t","userId":"a","bogus":1}]}"#).unwrap();
        assert!(matches!(
            Authenticator::from_token_file(&path),
            Err(AuthConfigError::Parse { .. })
        ));
    }

    #[tokio::test]
    async fn a_token_scoped_to_insights_must_name_some_and_cannot_be_a_super_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(
            &path,
            r#"{"tokens":[{"token":"p","userId":"puller","accounts":["ops"],"insights":["i1","i2"]}]}"#,
        )
        .unwrap();
        let auth = Authenticator::from_token_file(&path).unwrap();
        let puller = authenticate(&auth, &headers("Bearer p")).await.unwrap();
        assert!(puller.may_serve("i1") && puller.may_serve("i2") && !puller.may_serve("i3"));
        for refused in [
            r#"{"tokens":[{"token":"p","userId":"puller","accounts":["ops"],"insights":[]}]}"#,
            r#"{"tokens":[{"token":"p","userId":"puller","superUser":true,"insights":["i1"]}]}"#,
        ] {
            std::fs::write(&path, refused).unwrap();
            assert!(
                matches!(
                    Authenticator::from_token_file(&path),
                    Err(AuthConfigError::Invalid { .. })
                ),
                "{refused}"
            );
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn admin_token_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (auth, path) = Authenticator::with_admin_token(dir.path()).unwrap();
        let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(
            authenticate(&auth, &headers(&format!("Bearer {token}")))
                .await
                .unwrap()
                .super_user
        );
        let (again, _) = Authenticator::with_admin_token(dir.path()).unwrap();
        assert!(authenticate(&again, &headers(&format!("Bearer {token}"))).await.is_ok());
    }
}
