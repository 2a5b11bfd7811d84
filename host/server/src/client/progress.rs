//! `pop progress ID [--watch]`: an agenda's progress, once or live.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use serde_json::Value;

use super::http::ApiClient;
use super::render::{is_complete, outcome_lines, progress_lines, succeeded};

/// How often `--watch` polls.
const POLL: Duration = Duration::from_millis(250);

/// Print the progress of `id` (an agenda id or a progress id). With `watch`,
/// redraw until the agenda completes and return whether it succeeded.
pub async fn run(client: &ApiClient, id: &str, watch: bool) -> anyhow::Result<bool> {
    let progress_id = progress_id_of(client, id).await?;
    if watch {
        return follow(client, &progress_id).await;
    }
    let progress = load(client, &progress_id).await?;
    for line in progress_lines(&progress).into_iter().chain(outcome_lines(&progress)) {
        println!("{line}");
    }
    Ok(true)
}

/// Redraw the progress until COMPLETE; on a terminal the block is redrawn in
/// place, otherwise each change is printed once.
pub async fn follow(client: &ApiClient, progress_id: &str) -> anyhow::Result<bool> {
    let terminal = std::io::stdout().is_terminal();
    let mut drawn: Vec<String> = Vec::new();
    loop {
        let progress = load(client, progress_id).await?;
        let lines = progress_lines(&progress);
        if lines != drawn {
            let mut out = std::io::stdout().lock();
            if terminal && !drawn.is_empty() {
                // Up over the previous block, then clear to the end of screen.
                write!(out, "\x1b[{}A\x1b[J", drawn.len())?;
            }
            for line in &lines {
                writeln!(out, "{line}")?;
            }
            out.flush()?;
            drawn = lines;
        }
        if is_complete(&progress) {
            for line in outcome_lines(&progress) {
                println!("{line}");
            }
            return Ok(succeeded(&progress));
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn load(client: &ApiClient, progress_id: &str) -> anyhow::Result<Value> {
    client.get_one(&format!("/pop/progress/agenda/{progress_id}")).await
}

/// An agenda id names its progress through `progressId`; anything else is
/// taken as a progress id.
async fn progress_id_of(client: &ApiClient, id: &str) -> anyhow::Result<String> {
    match client.get_one(&format!("/pop/agenda/{id}")).await {
        Ok(agenda) => Ok(agenda["progressId"].as_str().unwrap_or(id).to_owned()),
        Err(_) => Ok(id.to_owned()),
    }
}
