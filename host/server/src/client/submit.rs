//! `pop submit FILE [--watch]`: submit an agenda from a JSON file (or `-`
//! for stdin) and optionally follow it to the end.

use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

use super::http::ApiClient;
use super::progress::follow;

/// Returns whether the agenda succeeded (true when not watching).
pub async fn run(client: &ApiClient, file: &Path, watch: bool) -> anyhow::Result<bool> {
    let text = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let agenda: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not a JSON agenda", file.display()))?;
    let reply = client.post("/pop/agenda", &agenda).await?;
    let submitted = &reply["all"][0];
    let agenda_id = submitted["id"].as_str().unwrap_or_default();
    let progress_id = submitted["progressId"].as_str().unwrap_or_default();
    println!("agenda {agenda_id} submitted (progress {progress_id})");
    if watch {
        follow(client, progress_id).await
    } else {
        Ok(true)
    }
}
