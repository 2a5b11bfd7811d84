//! `pop job run <job> [--log-only]`: runs one background job once on the
//! server and prints what it did.

use serde_json::{Value, json};

use super::ApiClient;

pub async fn run(client: &ApiClient, job: &str, log_only: bool) -> anyhow::Result<()> {
    let path = format!("/pop/jobs/{job}/run?logOnly={log_only}");
    let reply = client.post(&path, &json!({})).await?;
    let report = &reply["all"][0];
    let number = |field: &str| report[field].as_u64().unwrap_or(0);
    println!(
        "{job}{}: examined {}, acted on {}, errors {}{}",
        if log_only { " (log only: nothing changed)" } else { "" },
        number("examined"),
        number("acted"),
        number("errors"),
        if report["complete"] == Value::Bool(false) {
            "; more to do at the next run"
        } else {
            ""
        }
    );
    for line in report["actions"].as_array().into_iter().flatten() {
        println!("  {}", line.as_str().unwrap_or_default());
    }
    Ok(())
}
