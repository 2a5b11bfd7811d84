//! `pop ls`: the most recent agendas with their state.

use super::http::ApiClient;
use super::render::bar;

/// Most rows read to find the most recent ones (the API lists oldest first).
const SCAN: usize = 10_000;

pub async fn run(client: &ApiClient, count: usize) -> anyhow::Result<()> {
    let fields = "id,agendaId,customerId,processingState,processingStateMessage,percentComplete,updatedTime";
    let rows = client
        .get_all(&format!("/pop/progress/agenda?bylimit={SCAN}&byfields={fields}"))
        .await?;
    let recent = &rows[rows.len().saturating_sub(count)..];
    if recent.is_empty() {
        println!("no agendas");
        return Ok(());
    }
    // The progress column is a 26-character bar, a space and "100.0%".
    println!("{:<36}  {:<12}  {:<33}  STATE", "AGENDA", "CUSTOMER", "PROGRESS");
    for row in recent {
        let percent = row["percentComplete"].as_f64().unwrap_or(0.0);
        let state = row["processingState"].as_str().unwrap_or("?");
        let message = row["processingStateMessage"].as_str().unwrap_or("");
        println!(
            "{:<36}  {:<12}  {} {:>5.1}%  {state} {message}",
            row["agendaId"].as_str().unwrap_or("?"),
            row["customerId"].as_str().unwrap_or("?"),
            bar(percent),
            percent,
        );
    }
    Ok(())
}
