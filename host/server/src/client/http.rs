//! A small JSON client for the POP API: bearer token, `{all, count}`
//! envelopes unwrapped, `errorResponse` bodies turned into readable errors.

use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use serde_json::Value;

use crate::cli::ClientOptions;

pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ApiClient {
    pub fn new(options: &ClientOptions) -> anyhow::Result<Self> {
        let token = match &options.token {
            Some(token) => token.clone(),
            None => read_token(&options.data_dir)?,
        };
        Ok(Self {
            http: reqwest::Client::new(),
            base: options.server.trim_end_matches('/').to_owned(),
            token,
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// The objects of an `{all, count}` reply.
    pub async fn get_all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let reply = self.get(path).await?;
        Ok(reply["all"].as_array().cloned().unwrap_or_default())
    }

    /// The one object of an `{all: [object]}` reply.
    pub async fn get_one(&self, path: &str) -> anyhow::Result<Value> {
        self.get_all(path)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("{path}: no object in the reply"))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the POP server at {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let error = &body["errorResponse"];
            let text = error["description"]
                .as_str()
                .or_else(|| error["title"].as_str())
                .map_or_else(|| body.to_string(), str::to_owned);
            bail!("{status}: {text}");
        }
        Ok(body)
    }
}

fn read_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(pop_token_file::ADMIN_TOKEN_FILE);
    let token = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no token: pass --token or set POP_TOKEN (or run next to the data directory, {} not readable)",
            path.display()
        )
    })?;
    Ok(token.trim().to_owned())
}
