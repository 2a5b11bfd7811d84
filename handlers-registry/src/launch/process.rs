//! The `process` launcher: one local command under the launch contract, followed like POP
//! followed a pod (§5.5), with the report file in place of the pod annotations.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pop_core::{OperationProgress, ProcessingState};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};

use crate::error::LaunchError;
use crate::launch::env::contract_env;
use crate::launch::logs::{DIAGNOSTIC_LOG_LINES, LogRing};
use crate::launch::verdict::{Observed, Stop};
use crate::launch::{LaunchInput, LaunchOutput};
use crate::report::{ReportLine, ReportReader};
use crate::spec::ProcessSpec;

/// How often the report file is read while the handler runs. POP polled annotations every 5 s;
/// a local file is cheap, and a short period keeps progress fresh.
const REPORT_POLL: Duration = Duration::from_millis(200);

/// After the handler exits, how long to keep reading its pipes: a grandchild may still hold
/// them open, and it must not keep the operation running.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Runs `spec` for one operation and waits for it to finish.
///
/// `on_progress` sees each progress the handler reports, in order, until the first COMPLETE one
/// (later ones are ignored, as in POP's reporter). Launch problems (program missing, report file
/// not creatable) are errors; a handler that ran and failed is an [`Outcome::Failed`] with the
/// last log lines as diagnostic payload.
///
/// [`Outcome::Failed`]: crate::Outcome::Failed
pub async fn run_process(
    spec: &ProcessSpec,
    input: &LaunchInput,
    on_progress: impl FnMut(&OperationProgress),
) -> Result<LaunchOutput, LaunchError> {
    run_process_with_clock(spec, input, &now_millis, on_progress).await
}

/// [`run_process`] with the handler's `startedTime` and `completedTime` read from `now` (epoch
/// milliseconds): a launcher passes the application's clock. Timeouts stay on the monotonic
/// clock: they bound a real process, whatever time the application sees.
pub async fn run_process_with_clock(
    spec: &ProcessSpec,
    input: &LaunchInput,
    now: &(dyn Fn() -> i64 + Sync),
    mut on_progress: impl FnMut(&OperationProgress),
) -> Result<LaunchOutput, LaunchError> {
    let report_file = ReportFile::create(input.report_file.as_deref())?;
    let program = spec.resolved_program();
    let mut command = Command::new(&program);
    command.args(&spec.args).envs(&spec.env);
    for (name, value) in contract_env(input, &report_file.path().to_string_lossy())? {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    if let Some(dir) = &spec.working_dir {
        command.current_dir(dir);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group, so a kill reaches whatever the handler started too (a pod's
    // containers die with the pod; a local handler's children must as well).
    #[cfg(unix)]
    command.process_group(0);

    let mut observed = Observed {
        timeout_ms: spec.timeout_ms,
        stdout_timeout_ms: spec.stdout_timeout_ms,
        marker: spec.end_of_log_identifier.clone().filter(|m| !m.is_empty()),
        operation_name: input.operation_name.clone(),
        started_time: now(),
        ..Default::default()
    };
    let program_text = program.display().to_string();
    let mut child = command.spawn().map_err(|source| LaunchError::Spawn {
        program: program_text.clone(),
        source,
    })?;
    // Taken now: once the child is reaped, `id()` is gone, and the group may still have members.
    let group = child.id();
    let mut follower = Follower {
        observed,
        log: LogRing::default(),
        reports: ReportReader::new(report_file.path()),
    };
    let run = follower.follow(&mut child, spec, &mut on_progress).await;
    kill_group(group);
    let run = match run {
        Ok(run) => run,
        Err(source) => {
            return Err(LaunchError::Wait {
                program: program_text,
                source,
            });
        }
    };
    if run.exit.is_none() {
        // Reap the killed handler so it does not linger as a zombie; its status says nothing
        // the stop reason does not.
        let _ = child.wait().await;
    }
    follower.read_reports(&mut on_progress);

    observed = follower.observed;
    observed.exit = run.exit;
    observed.stop = run.stop;
    observed.log_tail = follower.log.tail(DIAGNOSTIC_LOG_LINES);
    observed.completed_time = now();
    Ok(observed.into_output())
}

/// The report file of one run: the caller's durable path (truncated: a report of an earlier,
/// unfinished attempt must not count for this one), or a temporary file.
enum ReportFile {
    Durable(std::path::PathBuf),
    Temporary(tempfile::NamedTempFile),
}

impl ReportFile {
    fn create(durable: Option<&std::path::Path>) -> Result<Self, LaunchError> {
        match durable {
            Some(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(LaunchError::ReportFile)?;
                }
                std::fs::File::create(path).map_err(LaunchError::ReportFile)?;
                Ok(Self::Durable(path.to_owned()))
            }
            None => tempfile::Builder::new()
                .prefix("pop-report-")
                .suffix(".jsonl")
                .tempfile()
                .map(Self::Temporary)
                .map_err(LaunchError::ReportFile),
        }
    }

    fn path(&self) -> &std::path::Path {
        match self {
            Self::Durable(path) => path,
            Self::Temporary(file) => file.path(),
        }
    }
}

/// How following ended.
struct Run {
    exit: Option<std::process::ExitStatus>,
    stop: Option<Stop>,
}

struct Follower {
    observed: Observed,
    log: LogRing,
    reports: ReportReader,
}

impl Follower {
    async fn follow(
        &mut self,
        child: &mut Child,
        spec: &ProcessSpec,
        on_progress: &mut impl FnMut(&OperationProgress),
    ) -> std::io::Result<Run> {
        let mut stdout = child.stdout.take().map(lines);
        let mut stderr = child.stderr.take().map(lines);
        let deadline = Instant::now() + Duration::from_millis(spec.timeout_ms);
        let quiet_limit = Duration::from_millis(spec.stdout_timeout_ms);
        let mut last_activity = Instant::now();
        let mut drain_until = None;
        let mut exit = None;
        let mut poll = interval(REPORT_POLL);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if exit.is_some() && stdout.is_none() && stderr.is_none() {
                return Ok(Run { exit, stop: None });
            }
            // Each branch is cancel safe (`next_segment`, `wait`, `tick`, `sleep_until`), so the
            // losers of a round lose nothing.
            tokio::select! {
                line = next_line(&mut stdout), if stdout.is_some() => {
                    self.absorb_line(line?, &mut stdout, &mut last_activity);
                }
                line = next_line(&mut stderr), if stderr.is_some() => {
                    self.absorb_line(line?, &mut stderr, &mut last_activity);
                }
                status = child.wait(), if exit.is_none() => {
                    exit = Some(status?);
                    drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
                }
                _ = poll.tick() => self.read_reports(on_progress),
                _ = sleep_until(deadline) => return Ok(Run { exit, stop: exit.is_none().then_some(Stop::Timeout) }),
                _ = sleep_until(last_activity + quiet_limit), if exit.is_none() => {
                    return Ok(Run { exit: None, stop: Some(Stop::Quiet) });
                }
                _ = sleep_until(drain_until.unwrap_or(deadline)), if drain_until.is_some() => {
                    return Ok(Run { exit, stop: None });
                }
            }
        }
    }

    /// One stdout/stderr line, or the end of that stream (`None`).
    fn absorb_line(&mut self, line: Option<String>, stream: &mut Option<Lines>, last_activity: &mut Instant) {
        let Some(line) = line else {
            *stream = None;
            return;
        };
        *last_activity = Instant::now();
        if self
            .observed
            .marker
            .as_deref()
            .is_some_and(|marker| line.contains(marker))
        {
            self.observed.marker_seen = true;
        }
        self.log.push(line);
    }

    fn read_reports(&mut self, on_progress: &mut impl FnMut(&OperationProgress)) {
        let lines = match self.reports.read_new() {
            Ok(lines) => lines,
            // Reported like a log line: it shows up in the failure diagnostics if it matters.
            Err(e) => vec![Err(format!("cannot read the report file: {e}"))],
        };
        for line in lines {
            match line {
                Ok(ReportLine::Progress(progress)) => {
                    let frozen = self
                        .observed
                        .progress
                        .as_ref()
                        .is_some_and(|p| p.processing_state == Some(ProcessingState::Complete));
                    if !frozen {
                        on_progress(&progress);
                        self.observed.progress = Some(progress);
                    }
                }
                Ok(ReportLine::Result(result)) => self.observed.result = Some(result),
                Err(problem) => self.log.push(format!("[pop launcher] ignored report line: {problem}")),
            }
        }
    }
}

type Lines = tokio::io::Split<BufReader<Box<dyn AsyncRead + Send + Unpin>>>;

fn lines(stream: impl AsyncRead + Send + Unpin + 'static) -> Lines {
    let boxed: Box<dyn AsyncRead + Send + Unpin> = Box::new(stream);
    BufReader::new(boxed).split(b'\n')
}

/// The next line of a stream, decoded leniently: a handler's stray non-UTF-8 byte must not end
/// the follow.
async fn next_line(stream: &mut Option<Lines>) -> std::io::Result<Option<String>> {
    let Some(stream) = stream else { return Ok(None) };
    Ok(stream.next_segment().await?.map(|bytes| {
        let text = String::from_utf8_lossy(&bytes);
        text.strip_suffix('\r').unwrap_or(&text).to_owned()
    }))
}

/// Kills the handler's process group: the handler if it still runs (timeout, quietness) and
/// anything it left behind. Harmless when everything has exited already.
fn kill_group(group: Option<u32>) {
    #[cfg(unix)]
    if let Some(pid) = group.and_then(|pid| i32::try_from(pid).ok()) {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    #[cfg(not(unix))]
    let _ = group;
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
