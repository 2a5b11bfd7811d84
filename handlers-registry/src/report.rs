//! The report file: the local stand-in for POP's pod annotations (§5.2), launcher side.
//!
//! A handler appends one JSON object per line to the file named by `POP_REPORT_FILE`:
//! `{"progress": <OperationProgress>}` for `pop.report.progress` and `{"result": <any JSON>}`
//! for `pop.report.payload`. Appending lines instead of rewriting one document means the
//! launcher can follow the file while the handler runs and never sees a half-written value.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use pop_core::OperationProgress;
use serde_json::Value;

// The format lives in `pop-handler` (handlers write it); these paths stay valid for launchers.
pub use pop_handler::report::{REPORT_FILE_ENV, ReportLine, ReportWriter};

/// Launcher side: reads the lines appended since the last call.
#[derive(Debug)]
pub struct ReportReader {
    path: PathBuf,
    offset: u64,
    /// The bytes of a line the handler has not finished writing yet.
    partial: Vec<u8>,
}

impl ReportReader {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// The complete lines appended since the last call, each parsed or with its parse error.
    /// A missing file reads as empty: the handler may not have reported yet.
    pub fn read_new(&mut self) -> io::Result<Vec<Result<ReportLine, String>>> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut fresh = Vec::new();
        let read = file.read_to_end(&mut fresh)?;
        self.offset += read as u64;
        self.partial.extend_from_slice(&fresh);
        let Some(last_newline) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Ok(Vec::new());
        };
        let complete: Vec<u8> = self.partial.drain(..=last_newline).collect();
        Ok(complete
            .split(|b| *b == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .map(|line| serde_json::from_slice(line).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(line))))
            .collect())
    }
}

/// What a finished run left in its report file: the handler's COMPLETE `succeeded` progress
/// (with `resultPayload` filled from the reported result) and the result. `None` when the file
/// is missing, or the handler never reported success (it failed, or was cut off mid-run).
/// This is how an executor resuming after a crash recognises an operation that already
/// succeeded although the crash came before the success was recorded.
pub fn settled(path: &Path) -> io::Result<Option<(OperationProgress, Value)>> {
    let mut complete = None;
    let mut result = None;
    for line in ReportReader::new(path).read_new()?.into_iter().flatten() {
        match line {
            ReportLine::Progress(progress) if complete.is_none() => {
                if progress.processing_state == Some(pop_core::ProcessingState::Complete) {
                    complete = Some(progress);
                }
            }
            ReportLine::Progress(_) => {}
            ReportLine::Result(value) => result = Some(value),
        }
    }
    let succeeded = complete.filter(|p| {
        p.processing_state_message
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(pop_core::CompleteStateMessage::Succeeded.as_str()))
    });
    Ok(succeeded.map(|mut progress| {
        let result = result.unwrap_or(Value::Null);
        progress.percent_complete = Some(100.0);
        progress.result_payload = (!result.is_null()).then(|| result.to_string());
        (progress, result)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pop_core::ProcessingState;
    use serde_json::json;
    use std::io::Write;

    #[test]
    fn reader_returns_whole_lines_only_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.jsonl");
        let mut reader = ReportReader::new(&path);
        assert!(reader.read_new().unwrap().is_empty(), "no file yet");

        let mut writer = ReportWriter::open(&path).unwrap();
        let progress = OperationProgress {
            processing_state: Some(ProcessingState::Executing),
            ..Default::default()
        };
        writer.write(&ReportLine::Progress(progress.clone())).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"result\": {\"a\"")
            .unwrap();
        assert_eq!(reader.read_new().unwrap(), [Ok(ReportLine::Progress(progress))]);

        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b": 1}}\nnot json\n")
            .unwrap();
        let lines = reader.read_new().unwrap();
        assert_eq!(lines[0], Ok(ReportLine::Result(json!({"a": 1}))));
        assert!(lines[1].as_ref().unwrap_err().contains("not json"));
        assert!(reader.read_new().unwrap().is_empty());
    }

    #[test]
    fn settled_only_when_the_handler_reported_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.jsonl");
        assert_eq!(settled(&path).unwrap(), None, "no file");
        let mut writer = ReportWriter::open(&path).unwrap();
        let state = |state, message: &str| OperationProgress {
            processing_state: Some(state),
            processing_state_message: Some(message.into()),
            ..Default::default()
        };
        writer
            .write(&ReportLine::Progress(state(ProcessingState::Executing, "working")))
            .unwrap();
        assert_eq!(settled(&path).unwrap(), None, "cut off mid-run");
        writer.write(&ReportLine::Result(json!({"n": 1}))).unwrap();
        writer
            .write(&ReportLine::Progress(state(ProcessingState::Complete, "Succeeded")))
            .unwrap();
        let (progress, result) = settled(&path).unwrap().unwrap();
        assert_eq!(result, json!({"n": 1}));
        assert_eq!(progress.result_payload.as_deref(), Some(r#"{"n":1}"#));
        assert_eq!(progress.percent_complete, Some(100.0));

        let failed = dir.path().join("failed.jsonl");
        let mut writer = ReportWriter::open(&failed).unwrap();
        writer
            .write(&ReportLine::Progress(state(ProcessingState::Complete, "failed")))
            .unwrap();
        writer
            .write(&ReportLine::Progress(state(ProcessingState::Complete, "succeeded")))
            .unwrap();
        assert_eq!(
            settled(&failed).unwrap(),
            None,
            "the first COMPLETE decides, as in the reporter"
        );
    }
}
