//! Where reports go once the [`Reporter`](super::Reporter) has decided what to send, and the two
//! local destinations: the report file and the log.

use pop_core::OperationProgress;
use serde_json::{Value, json};

use crate::report::{ReportLine, ReportWriter};

/// A destination of reports. The reporter calls [`Sink::complete`] at most once, and nothing
/// after it; a sink may deliver in the background, [`Sink::flush`] waits for that.
pub trait Sink: Send {
    /// An in-between progress (EXECUTING and the like).
    fn progress(&mut self, progress: &OperationProgress);
    /// The COMPLETE progress, and the result (`pop.report.payload`) when there is one.
    fn complete(&mut self, progress: &OperationProgress, result: Option<&Value>);
    /// Returns once everything handed over was delivered or given up on.
    fn flush(&mut self) {}
}

/// The log (stdout), POP's `launchType` local: one `report: <line>` per report.
#[derive(Debug, Default)]
pub struct LogSink;

impl Sink for LogSink {
    fn progress(&mut self, progress: &OperationProgress) {
        log_line(&ReportLine::Progress(progress.clone()), None);
    }

    fn complete(&mut self, progress: &OperationProgress, result: Option<&Value>) {
        if let Some(result) = result {
            log_line(&ReportLine::Result(result.clone()), None);
        }
        log_line(&ReportLine::Progress(progress.clone()), None);
    }
}

/// The report file of `POP_REPORT_FILE`; a line that cannot be written goes to the log instead,
/// so it is not lost from sight.
#[derive(Debug)]
pub struct FileSink {
    writer: ReportWriter,
}

impl FileSink {
    pub fn new(writer: ReportWriter) -> Self {
        Self { writer }
    }

    fn write(&mut self, line: ReportLine) {
        if let Err(e) = self.writer.write(&line) {
            log_line(&line, Some(&e.to_string()));
        }
    }
}

impl Sink for FileSink {
    fn progress(&mut self, progress: &OperationProgress) {
        self.write(ReportLine::Progress(progress.clone()));
    }

    fn complete(&mut self, progress: &OperationProgress, result: Option<&Value>) {
        // The result first, so whoever sees COMPLETE already has the output.
        if let Some(result) = result {
            self.write(ReportLine::Result(result.clone()));
        }
        self.write(ReportLine::Progress(progress.clone()));
    }
}

fn log_line(line: &ReportLine, problem: Option<&str>) {
    match problem {
        Some(problem) => println!("report ({problem}): {}", json!(line)),
        None => println!("report: {}", json!(line)),
    }
}
