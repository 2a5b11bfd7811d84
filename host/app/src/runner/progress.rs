//! Progress reports of one agenda's running operations, coalesced.
//!
//! A handler may report as often as it likes (a wasm handler calling
//! `report-progress` in a tight loop reaches millions of reports a
//! second), so reports are not queued: each operation has one slot holding
//! its latest report, which a new report overwrites in place. The executor
//! takes whatever the slots hold at most every [`FLUSH_INTERVAL`], so the
//! memory a handler can make the host spend on its reports is one report
//! per running operation, and the store sees a few writes a second per
//! agenda whatever the handlers do.
//!
//! Reports are bounded too ([`MAX_MESSAGE_BYTES`]): a running report is
//! informational, so an oversized message is *cut* (at a character
//! boundary, marked with `…`) rather than failing the operation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pop_core::{DiagnosticEvent, OperationProgress, ProcessingState};
use tokio::sync::Notify;

/// Longest progress message kept, in bytes (the wasm runtime cuts a
/// plugin's messages to the same length before they reach the host).
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Diagnostics a running report may carry, newest kept.
pub const MAX_REPORT_DIAGNOSTICS: usize = 10;
/// How often the executor writes the latest reports: at most this many
/// progress writes per agenda, 4 a second.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);

/// The latest report of each running operation of one agenda.
#[derive(Default)]
struct Board {
    latest: Mutex<HashMap<String, OperationProgress>>,
    changed: Notify,
}

/// The handlers' side: overwrite an operation's latest report.
#[derive(Clone)]
pub struct ProgressSender {
    board: Arc<Board>,
}

/// The executor's side: wait for reports, take the latest ones.
pub struct ProgressReceiver {
    board: Arc<Board>,
}

/// A board for one agenda run.
pub fn board() -> (ProgressSender, ProgressReceiver) {
    let board = Arc::new(Board::default());
    (ProgressSender { board: board.clone() }, ProgressReceiver { board })
}

impl ProgressSender {
    /// Make `reported` the latest report of operation `name` (bounded).
    pub fn report(&self, name: &str, reported: &OperationProgress) {
        let bounded = bounded(reported);
        self.board.lock().insert(name.to_owned(), bounded);
        self.board.changed.notify_one();
    }

    /// A running report of `percent` and `message`, written into the
    /// operation's slot in place: after the first report of a flush
    /// interval, reporting allocates nothing (the hot path of a wasm
    /// handler's `report-progress`).
    pub fn report_running(&self, name: &str, percent: f64, message: &str) {
        {
            let mut latest = self.board.lock();
            let slot = match latest.get_mut(name) {
                Some(slot) => slot,
                None => latest.entry(name.to_owned()).or_insert_with(|| OperationProgress {
                    processing_state: Some(ProcessingState::Executing),
                    ..Default::default()
                }),
            };
            slot.processing_state = Some(ProcessingState::Executing);
            slot.percent_complete = Some(clamp_percent(percent));
            let text = slot.processing_state_message.get_or_insert_with(String::new);
            text.clear();
            push_cut(text, message, MAX_MESSAGE_BYTES);
        }
        self.board.changed.notify_one();
    }
}

/// One operation's reports, as the launcher port's sink.
struct OperationReports {
    sender: ProgressSender,
    name: String,
}

impl pop_ports::ProgressSink for OperationReports {
    fn report(&self, progress: &OperationProgress) {
        self.sender.report(&self.name, progress);
    }

    fn report_running(&self, percent: f64, message: &str) {
        self.sender.report_running(&self.name, percent, message);
    }
}

impl ProgressSender {
    /// The sink a launcher reports operation `name`'s progress to.
    pub fn for_operation(&self, name: &str) -> std::sync::Arc<dyn pop_ports::ProgressSink> {
        std::sync::Arc::new(OperationReports {
            sender: self.clone(),
            name: name.to_owned(),
        })
    }
}

impl ProgressReceiver {
    /// Resolves once a report arrived since the last [`Self::take`] (or
    /// spuriously, after which `take` returns nothing).
    pub async fn changed(&self) {
        self.board.changed.notified().await;
    }

    /// The latest report of each operation that reported, emptying the board.
    pub fn take(&self) -> Vec<(String, OperationProgress)> {
        let mut latest = self.board.lock();
        latest.drain().collect()
    }

    /// Drop what a finished operation reported last: its completion
    /// supersedes it.
    pub fn forget(&self, name: &str) {
        self.board.lock().remove(name);
    }
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, OperationProgress>> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What of a running report is kept: its state, percent, message and a
/// few diagnostics, each bounded. A result arrives with the operation's
/// completion, never with a running report.
fn bounded(reported: &OperationProgress) -> OperationProgress {
    let diagnostics = reported.diagnostic_events.as_ref().map(|events| {
        let skip = events.len().saturating_sub(MAX_REPORT_DIAGNOSTICS);
        events.iter().skip(skip).map(bounded_diagnostic).collect()
    });
    OperationProgress {
        processing_state: reported.processing_state,
        processing_state_message: reported.processing_state_message.as_deref().map(cut),
        percent_complete: reported.percent_complete.map(clamp_percent),
        diagnostic_events: diagnostics,
        ..Default::default()
    }
}

fn bounded_diagnostic(event: &DiagnosticEvent) -> DiagnosticEvent {
    let payload = event
        .payload
        .as_ref()
        .filter(|p| serde_json::to_vec(p).is_ok_and(|bytes| bytes.len() <= MAX_MESSAGE_BYTES));
    DiagnosticEvent {
        message: event.message.as_deref().map(cut),
        status_code: event.status_code.as_deref().map(cut),
        time: event.time,
        stack_trace: event.stack_trace.as_deref().map(cut),
        payload: payload.cloned(),
    }
}

fn clamp_percent(percent: f64) -> f64 {
    if percent.is_nan() {
        0.0
    } else {
        percent.clamp(0.0, 100.0)
    }
}

/// `text`, cut to [`MAX_MESSAGE_BYTES`].
pub fn cut(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_MESSAGE_BYTES));
    push_cut(&mut out, text, MAX_MESSAGE_BYTES);
    out
}

/// Append `text` to `out`, cut at a character boundary so that what is
/// appended is at most `max` bytes, the last three of them `…` when cut.
fn push_cut(out: &mut String, text: &str, max: usize) {
    if text.len() <= max {
        out.push_str(text);
        return;
    }
    const MARK: &str = "…";
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&text[..end]);
    out.push_str(MARK);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_coalesce_latest_wins_per_operation() {
        let (sender, receiver) = board();
        for i in 0..10_000 {
            sender.report_running("a", f64::from(i) / 100.0, &format!("step {i}"));
        }
        sender.report_running("b", 5.0, "b");
        let mut taken = receiver.take();
        taken.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(taken.len(), 2, "one report per operation, not one per call");
        assert_eq!(taken[0].1.processing_state_message.as_deref(), Some("step 9999"));
        assert_eq!(taken[0].1.percent_complete, Some(99.99));
        assert_eq!(taken[1].1.processing_state_message.as_deref(), Some("b"));
        assert!(receiver.take().is_empty(), "taking empties the board");
    }

    #[test]
    fn messages_are_cut_at_a_character_boundary() {
        let (sender, receiver) = board();
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        sender.report_running("a", 200.0, &long);
        let process_report = OperationProgress {
            processing_state: Some(ProcessingState::Executing),
            processing_state_message: Some("x".repeat(10 * MAX_MESSAGE_BYTES)),
            percent_complete: Some(f64::NAN),
            result_payload: Some("y".repeat(1 << 20)),
            diagnostic_events: Some(vec![DiagnosticEvent::default(); 50]),
            ..Default::default()
        };
        sender.report("b", &process_report);
        let taken: HashMap<_, _> = receiver.take().into_iter().collect();
        let a = &taken["a"];
        let message = a.processing_state_message.as_deref().unwrap_or_default();
        assert!(
            message.len() <= MAX_MESSAGE_BYTES && message.ends_with('…'),
            "{}",
            message.len()
        );
        assert_eq!(a.percent_complete, Some(100.0));
        let b = &taken["b"];
        assert!(b.processing_state_message.as_deref().unwrap_or_default().len() <= MAX_MESSAGE_BYTES);
        assert_eq!(b.percent_complete, Some(0.0));
        assert_eq!(b.result_payload, None, "results come with the completion");
        assert_eq!(b.diagnostic_events.as_ref().map(Vec::len), Some(MAX_REPORT_DIAGNOSTICS));
    }

    #[test]
    fn a_finished_operation_is_forgotten() {
        let (sender, receiver) = board();
        sender.report_running("a", 1.0, "running");
        receiver.forget("a");
        assert!(receiver.take().is_empty());
    }

    #[tokio::test]
    async fn a_report_wakes_the_executor_even_before_it_waits() {
        let (sender, receiver) = board();
        sender.report_running("a", 1.0, "early");
        // notify_one keeps a permit: the report before the wait is not lost.
        receiver.changed().await;
        assert_eq!(receiver.take().len(), 1);
    }
}
