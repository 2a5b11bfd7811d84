//! Text rendering of agenda progress for the terminal.

use serde_json::Value;

const BAR_WIDTH: usize = 24;

/// `[##########..............]`
pub fn bar(percent: f64) -> String {
    let filled = ((percent.clamp(0.0, 100.0) / 100.0) * BAR_WIDTH as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), ".".repeat(BAR_WIDTH - filled))
}

fn state_of(progress: &Value) -> String {
    let state = progress["processingState"].as_str().unwrap_or("?");
    match progress["processingStateMessage"].as_str() {
        Some(message) if !message.is_empty() => format!("{state} {message}"),
        _ => state.to_owned(),
    }
}

fn percent_of(progress: &Value) -> f64 {
    progress["percentComplete"].as_f64().unwrap_or(0.0)
}

/// One line for the agenda and one per operation, names aligned.
pub fn progress_lines(progress: &Value) -> Vec<String> {
    let ops = progress["operationProgress"].as_array().cloned().unwrap_or_default();
    let width = ops
        .iter()
        .filter_map(|op| op["operation"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(0)
        .max("agenda".len());
    let mut lines = vec![format!(
        "{:width$}  {} {:>5.1}%  {}",
        "agenda",
        bar(percent_of(progress)),
        percent_of(progress),
        state_of(progress)
    )];
    for op in &ops {
        lines.push(format!(
            "{:width$}  {} {:>5.1}%  {}",
            op["operation"].as_str().unwrap_or("?"),
            bar(percent_of(op)),
            percent_of(op),
            state_of(op)
        ));
    }
    lines
}

/// Results and diagnostics of a finished agenda.
pub fn outcome_lines(progress: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for op in progress["operationProgress"].as_array().into_iter().flatten() {
        if let Some(result) = op["resultPayload"].as_str().filter(|r| !r.is_empty() && *r != "{}") {
            lines.push(format!("{} → {result}", op["operation"].as_str().unwrap_or("?")));
        }
    }
    for event in progress["diagnosticEvents"].as_array().into_iter().flatten() {
        lines.push(format!("diagnostic: {}", event["message"].as_str().unwrap_or("")));
        if let Some(payload) = event["payload"].as_array() {
            lines.extend(payload.iter().filter_map(Value::as_str).map(|l| format!("    {l}")));
        }
    }
    lines
}

pub fn is_complete(progress: &Value) -> bool {
    progress["processingState"] == "COMPLETE"
}

pub fn succeeded(progress: &Value) -> bool {
    is_complete(progress) && progress["processingStateMessage"] == "succeeded"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bars_and_lines() {
        assert_eq!(bar(0.0), format!("[{}]", ".".repeat(BAR_WIDTH)));
        assert_eq!(bar(100.0), format!("[{}]", "#".repeat(BAR_WIDTH)));
        assert_eq!(bar(50.0).matches('#').count(), BAR_WIDTH / 2);
        assert_eq!(bar(250.0), bar(100.0));
        let progress = json!({"processingState": "EXECUTING", "processingStateMessage": "Running Operations",
            "percentComplete": 50.0, "operationProgress": [
                {"operation": "first-step", "processingState": "COMPLETE", "processingStateMessage": "succeeded",
                 "percentComplete": 100.0, "resultPayload": "{\"n\":1}"},
                {"operation": "b", "processingState": "EXECUTING", "percentComplete": 0.0}]});
        let lines = progress_lines(&progress);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("agenda    "), "{lines:?}");
        assert!(lines[1].contains("100.0%  COMPLETE succeeded"), "{lines:?}");
        assert!(lines[2].starts_with("b         "), "{lines:?}");
        assert_eq!(outcome_lines(&progress), ["first-step → {\"n\":1}"]);
        assert!(!is_complete(&progress));
    }
}
