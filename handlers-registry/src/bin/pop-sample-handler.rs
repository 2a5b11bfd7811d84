//! POP's sample handler (spec §5.6) on `pop-handler`, under the launch contract of §5.2: input
//! from `-payloadFile`, `PAYLOAD` or the compressed segments (`POP_PAYLOAD_TYPE=compressedEnvVar`),
//! progress and result to the pod's annotations (`MY_POD_NAME`, built with feature
//! `kubernetes`), the report file (`POP_REPORT_FILE`) or the log; `HandlerComplete` as the last
//! log line, exit code 0 on success and 1 on failure.

use std::process::ExitCode;

use pop_handler::{Inputs, Reporter};
use pop_handlers_registry::sample::{ActionKind, SamplePayload, step_percent};
use serde_json::Value;

fn main() -> ExitCode {
    pop_handler::run(sample)
}

fn sample(inputs: &Inputs, reporter: &mut Reporter) -> Result<Value, String> {
    let metadata = &inputs.metadata;
    let run_log = RunLog::from_env(metadata.agenda_id.as_deref().unwrap_or_default(), metadata.operation());
    run_log.append("started");
    let payload: SamplePayload = match &inputs.payload {
        Some(_) => inputs.payload_as().map_err(|e| e.to_string())?,
        None => SamplePayload::default(),
    };
    // The resume demonstration of §5.6: only logged.
    if let Some(job_id) = inputs
        .last_progress
        .as_ref()
        .and_then(|p| p.pointer("/params/jobInfo/jobId"))
    {
        println!("Resuming after a previous attempt with jobId {job_id}");
    }
    for action in &payload.actions {
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
    let output = payload.result_payload;
    reporter.succeeded(&output);
    // After the report is out: a line here means this run's success was reported.
    reporter.flush();
    run_log.append("succeeded");
    Ok(output)
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
