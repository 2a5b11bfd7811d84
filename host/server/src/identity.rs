//! Who callers are: the token file (the default; a generated super-user
//! token without one) or, with feature `jwt` and `--jwt-issuer`, bearer
//! JWTs verified by `pop-jwt` — the same validation the AWS authorizer
//! applies, so both deployments authenticate alike.

use std::sync::Arc;

use pop_ports::Identity;
use pop_token_file::Authenticator;

use crate::cli::ServeOptions;

pub fn open(options: &ServeOptions) -> anyhow::Result<Arc<dyn Identity>> {
    if let Some(issuer) = &options.jwt.jwt_issuer {
        return jwt(options, issuer);
    }
    Ok(Arc::new(match &options.tokens {
        Some(path) => Authenticator::from_token_file(path)?,
        None => {
            let (auth, path) = Authenticator::with_admin_token(&options.data_dir)?;
            println!("pop admin token (super user) is in {}", path.display());
            auth
        }
    }))
}

#[cfg(feature = "jwt")]
fn jwt(options: &ServeOptions, issuer: &str) -> anyhow::Result<Arc<dyn Identity>> {
    use anyhow::Context as _;
    let settings = &options.jwt;
    let audience = settings
        .jwt_audience
        .clone()
        .context("--jwt-issuer needs --jwt-audience (the `aud` tokens must carry)")?;
    let keys = match (&settings.jwt_jwks_url, &settings.jwt_hs256_secret_file) {
        (Some(url), None) => pop_jwt::KeySource::Jwks {
            url: url.clone(),
            ttl: std::time::Duration::from_secs(settings.jwt_jwks_ttl_secs),
        },
        (None, Some(path)) => {
            let secret = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let secret = secret.trim_ascii().to_vec();
            anyhow::ensure!(
                secret.len() >= 32,
                "the HS256 secret in {} is shorter than 32 bytes",
                path.display()
            );
            pop_jwt::KeySource::Hs256 { secret }
        }
        _ => anyhow::bail!("--jwt-issuer needs exactly one of --jwt-jwks-url and --jwt-hs256-secret-file"),
    };
    if options.tokens.is_some() {
        tracing::warn!("--tokens is ignored: callers are authenticated by their JWTs");
    }
    let claims = pop_jwt::ClaimNames {
        accounts: settings.jwt_accounts_claim.clone(),
        super_user: settings.jwt_super_user_claim.clone(),
        insights: settings.jwt_insights_claim.clone(),
        ..pop_jwt::ClaimNames::default()
    };
    let config = pop_jwt::JwtConfig {
        issuer: issuer.to_owned(),
        audience,
        keys,
        claims,
        leeway_secs: settings.jwt_leeway_secs,
    };
    tracing::info!(issuer, "callers are authenticated by bearer JWTs");
    Ok(Arc::new(pop_jwt::JwtIdentity::new(config)))
}

#[cfg(not(feature = "jwt"))]
fn jwt(_options: &ServeOptions, _issuer: &str) -> anyhow::Result<Arc<dyn Identity>> {
    anyhow::bail!("this pop was built without JWT support: build it with `--features jwt`")
}
