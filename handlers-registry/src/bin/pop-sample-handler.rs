//! POP's sample handler (spec §5.6) as a local process, under the launch contract of §5.2 in
//! its local form (see `handlers-registry/README.md`): input from `PAYLOAD` (or `-payloadFile`),
//! progress and result as JSON lines in `POP_REPORT_FILE`, `HandlerComplete` as the last log
//! line, exit code 0 on success and 1 on failure.

use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use pop_core::{DiagnosticEvent, OperationProgress, ParamsMap, ProcessingState};
use pop_handlers_registry::report::{ReportLine, ReportWriter};
use pop_handlers_registry::sample::{ActionKind, SamplePayload, step_percent};
use serde_json::{Value, json};

/// Environment fields logged at start ("Operation metadata"), in POP's order.
const METADATA: [&str; 8] = [
    "CID",
    "AGENDA_ID",
    "OPERATION_NAME",
    "OPERATION_ID",
    "CUSTOMER_ID",
    "PROGRESS_ID",
    "MY_POD_NAME",
    "LOG_LEVEL",
];

const END_OF_LOG: &str = "HandlerComplete";

fn main() -> ExitCode {
    let clock = Instant::now();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    for name in METADATA {
        if let Some(value) = env(name) {
            println!("Operation metadata - {name} : {value}");
        }
    }
    let operation = env("OPERATION_NAME").unwrap_or_default();
    let run_log = RunLog::from_env(&env("AGENDA_ID").unwrap_or_default(), &operation);
    run_log.append("started");
    let mut reporter = Reporter::new(&operation);
    let outcome = Inputs::read().and_then(|inputs| run(&inputs, &mut reporter));
    let (status, code, output) = match outcome {
        Ok(output) => {
            reporter.succeeded(&output);
            // After the report: a line here means this run's success was reported.
            run_log.append("succeeded");
            ("succeeded", ExitCode::SUCCESS, output)
        }
        Err(problem) => {
            println!("ERROR {problem}");
            reporter.failed(&problem);
            ("failed", ExitCode::FAILURE, Value::Null)
        }
    };
    println!(
        "cid={} operationId={} owner={} conclusionStatus={status} elapsedTime={} operation={operation} payload={output}",
        env("CID").unwrap_or_default(),
        env("OPERATION_ID").unwrap_or_default(),
        env("CUSTOMER_ID").unwrap_or_default(),
        clock.elapsed().as_millis(),
    );
    // Last line, always: the follower treats it as "the log is complete".
    println!("{END_OF_LOG}");
    code
}

/// `POP_SAMPLE_RUN_LOG`: a file that gets `<agendaId> <operation> started|succeeded` for each run,
/// so a user (or a test) can count how often each operation really ran and succeeded.
struct RunLog {
    path: Option<String>,
    prefix: String,
}

impl RunLog {
    fn from_env(agenda_id: &str, operation: &str) -> Self {
        Self {
            path: std::env::var("POP_SAMPLE_RUN_LOG").ok().filter(|p| !p.is_empty()),
            prefix: format!("{agenda_id} {operation}"),
        }
    }

    fn append(&self, event: &str) {
        use std::io::Write as _;
        let Some(path) = &self.path else { return };
        let line = format!("{} {event}\n", self.prefix);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(e) = written {
            println!("cannot append to POP_SAMPLE_RUN_LOG {path}: {e}");
        }
    }
}

/// The payload and prior progress, from the environment or the `-payloadFile` /
/// `-lastProgressFile` arguments of §5.2 (files win, as they exist for payloads too big for an
/// environment variable).
struct Inputs {
    payload: SamplePayload,
    last_progress: Option<Value>,
}

impl Inputs {
    fn read() -> Result<Self, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let arg = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
        let source = |flag: &str, var: &str| -> Result<Option<String>, String> {
            match arg(flag) {
                Some(path) => std::fs::read_to_string(path)
                    .map(Some)
                    .map_err(|e| format!("cannot read {path}: {e}")),
                None => Ok(std::env::var(var).ok().filter(|v| !v.trim().is_empty())),
            }
        };
        if std::env::var_os("POP_PAYLOAD_TYPE").is_some_and(|t| t == "compressedEnvVar") {
            return Err("compressed payloads (POP_PAYLOAD_TYPE=compressedEnvVar) are not supported".into());
        }
        let payload = match source("-payloadFile", "PAYLOAD")? {
            Some(text) => serde_json::from_str(&text).map_err(|e| format!("Failed to parse the payload: {e}"))?,
            None => SamplePayload::default(),
        };
        let last_progress = source("-lastProgressFile", "LAST_PROGRESS")?
            .map(|text| serde_json::from_str(&text).map_err(|e| format!("Failed to parse LAST_PROGRESS: {e}")))
            .transpose()?;
        Ok(Self { payload, last_progress })
    }
}

fn run(inputs: &Inputs, reporter: &mut Reporter) -> Result<Value, String> {
    // The resume demonstration of §5.6: only logged.
    if let Some(job_id) = inputs
        .last_progress
        .as_ref()
        .and_then(|p| p.pointer("/params/jobInfo/jobId"))
    {
        println!("Resuming after a previous attempt with jobId {job_id}");
    }
    for action in &inputs.payload.actions {
        if let Some((steps, step)) = action.sleep_steps() {
            for done in 1..=steps {
                std::thread::sleep(step);
                reporter.executing(&format!("Sleeping {done}/{steps}"), step_percent(done, steps));
            }
        }
        match action.kind()? {
            ActionKind::Log { message } => println!("{message}"),
            ActionKind::Exception { message } => return Err(message),
            ActionKind::ExternalExecute { args } => external_execute(&args),
        }
    }
    Ok(inputs.payload.result_payload.clone())
}

/// POP ran a utility pod here and only logged its errors; locally the args are a command line.
fn external_execute(args: &[String]) {
    let Some((program, rest)) = args.split_first() else {
        println!("externalExecute: no externalArgs, nothing to run");
        return;
    };
    match std::process::Command::new(program).args(rest).output() {
        Ok(out) => {
            for line in String::from_utf8_lossy(&out.stdout)
                .lines()
                .chain(String::from_utf8_lossy(&out.stderr).lines())
            {
                println!("externalExecute: {line}");
            }
            println!("externalExecute: {program} finished with {}", out.status);
        }
        Err(e) => println!("externalExecute: cannot run {program}: {e}"),
    }
}

/// The reporter of §5.2: progress with a JobId fixed for this process, to the report file or,
/// without one, to the log.
struct Reporter {
    writer: Option<ReportWriter>,
    operation: String,
    started: i64,
    job_id: String,
}

impl Reporter {
    fn new(operation: &str) -> Self {
        let writer = ReportWriter::from_env().unwrap_or_else(|e| {
            println!("cannot open the report file, reporting to the log: {e}");
            None
        });
        Self {
            writer,
            operation: operation.to_owned(),
            started: now_millis(),
            job_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    fn progress(&self, state: ProcessingState, message: &str) -> OperationProgress {
        let mut params = ParamsMap::new();
        params.insert("JobId", self.job_id.clone());
        OperationProgress {
            operation: Some(self.operation.clone()).filter(|o| !o.is_empty()),
            processing_state: Some(state),
            processing_state_message: Some(message.to_owned()),
            started_time: Some(self.started),
            params: Some(params),
            ..Default::default()
        }
    }

    fn executing(&mut self, message: &str, percent: f64) {
        let progress = OperationProgress {
            percent_complete: Some(percent),
            ..self.progress(ProcessingState::Executing, message)
        };
        self.send(&[ReportLine::Progress(progress)]);
    }

    fn succeeded(&mut self, output: &Value) {
        let progress = OperationProgress {
            percent_complete: Some(100.0),
            completed_time: Some(now_millis()),
            result_payload: Some(output.to_string()),
            ..self.progress(ProcessingState::Complete, "succeeded")
        };
        // The result first, so whoever sees COMPLETE already has the output.
        self.send(&[ReportLine::Result(output.clone()), ReportLine::Progress(progress)]);
    }

    fn failed(&mut self, problem: &str) {
        let event = DiagnosticEvent {
            message: Some(format!(
                "An unknown error has occurred with operation: {}",
                self.operation
            )),
            time: Some(now_millis()),
            stack_trace: Some(problem.to_owned()),
            ..Default::default()
        };
        let progress = OperationProgress {
            completed_time: Some(now_millis()),
            diagnostic_events: Some(vec![event]),
            ..self.progress(ProcessingState::Complete, "failed")
        };
        self.send(&[ReportLine::Progress(progress)]);
    }

    fn send(&mut self, lines: &[ReportLine]) {
        for line in lines {
            let written = match &mut self.writer {
                Some(writer) => writer.write(line).map_err(|e| e.to_string()),
                None => Err("no POP_REPORT_FILE".to_owned()),
            };
            if let Err(why) = written {
                println!("report ({why}): {}", json!(line));
            }
        }
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
