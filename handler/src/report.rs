//! The report file: the local stand-in for POP's pod annotations (§5.2).
//!
//! A handler appends one JSON object per line to the file named by `POP_REPORT_FILE`:
//! `{"progress": <OperationProgress>}` for `pop.report.progress` and `{"result": <any JSON>}`
//! for `pop.report.payload`. Appending lines instead of rewriting one document means the
//! launcher can follow the file while the handler runs and never sees a half-written value.
//! The launcher's side (the reader) is in `pop-handlers-registry`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use pop_core::OperationProgress;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The environment variable naming the report file.
pub const REPORT_FILE_ENV: &str = "POP_REPORT_FILE";

/// One line of the report file.
// Unboxed: lines are handled one at a time, never collected in bulk.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReportLine {
    Progress(OperationProgress),
    Result(Value),
}

/// Handler side: appends report lines, flushed one by one so a crash loses nothing written.
#[derive(Debug)]
pub struct ReportWriter {
    file: File,
}

impl ReportWriter {
    /// The writer for `POP_REPORT_FILE`, or `None` when the variable is unset (then progress goes
    /// to the log only, like POP's `launchType` local).
    pub fn from_env() -> io::Result<Option<Self>> {
        match std::env::var_os(REPORT_FILE_ENV) {
            Some(path) if !path.is_empty() => Self::open(Path::new(&path)).map(Some),
            _ => Ok(None),
        }
    }

    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { file })
    }

    pub fn write(&mut self, line: &ReportLine) -> io::Result<()> {
        let mut text = serde_json::to_string(line).map_err(io::Error::other)?;
        text.push('\n');
        // One write call per line: with O_APPEND the line lands whole even if the handler has
        // several writers.
        self.file.write_all(text.as_bytes())?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pop_core::ProcessingState;
    use serde_json::json;

    #[test]
    fn line_format_is_one_keyed_object() {
        let line = serde_json::to_string(&ReportLine::Result(json!({"x": 1}))).unwrap();
        assert_eq!(line, r#"{"result":{"x":1}}"#);
        let progress: ReportLine = serde_json::from_str(r#"{"progress":{"processingState":"COMPLETE"}}"#).unwrap();
        assert!(matches!(progress, ReportLine::Progress(p) if p.processing_state == Some(ProcessingState::Complete)));
    }

    #[test]
    fn writer_appends_one_line_per_report() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.jsonl");
        let mut writer = ReportWriter::open(&path).unwrap();
        writer.write(&ReportLine::Result(json!(1))).unwrap();
        ReportWriter::open(&path)
            .unwrap()
            .write(&ReportLine::Result(json!(2)))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"result\":1}\n{\"result\":2}\n"
        );
    }
}
