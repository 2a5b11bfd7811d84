//! The embedded `Launcher` adapter for the handlers registry's `process`
//! entries: each operation run is a local process under the launch contract
//! (`handlers-registry/README.md`), reporting through a JSON-lines file.
//!
//! The report file is the durable part: it lives under the runs directory,
//! one per (agenda, operation), so that
//!
//! * a handler that finished just before the server died left its success
//!   there, and the next delivery adopts it instead of running it again
//!   ([`Launcher::adopt`]);
//! * a handler still running when the server died is found by the report
//!   file its environment names and killed with its process group before
//!   the work is handed out again ([`Launcher::reap_orphans`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use pop_core::{EpochMillis, OperationProgress};
use pop_handlers_registry::{
    HandlerSpec, LaunchInput, Outcome, Registry, kill_orphans, report, run_process_with_clock,
};
use pop_ports::{Clock, Durability, LaunchError, Launcher, OperationResult, OperationRun, ProgressSink};

/// Runs the registry's `process` handlers.
pub struct ProcessLauncher {
    registry: Arc<Registry>,
    runs_dir: PathBuf,
    clock: Arc<dyn Clock>,
}

impl ProcessLauncher {
    /// Handlers of `registry` reporting under `runs_dir` (kept across
    /// restarts of the same data directory).
    pub fn new(registry: Arc<Registry>, runs_dir: PathBuf, clock: Arc<dyn Clock>) -> Self {
        Self {
            registry,
            runs_dir,
            clock,
        }
    }

    fn agenda_dir(&self, agenda_id: &str) -> PathBuf {
        self.runs_dir.join(short_hash(agenda_id))
    }

    /// Where `run`'s handler reports: the same path for every attempt of
    /// the operation, so a successor finds it.
    pub fn report_file(&self, run: &OperationRun) -> PathBuf {
        self.agenda_dir(&run.agenda_id)
            .join(format!("{}.jsonl", short_hash(&run.name)))
    }
}

#[async_trait]
impl Launcher for ProcessLauncher {
    fn name(&self) -> &'static str {
        "process"
    }

    fn accepts(&self, op_type: &str) -> bool {
        matches!(self.registry.get(op_type), Some(HandlerSpec::Process(_)))
    }

    fn durability(&self) -> Durability {
        Durability::Detached
    }

    async fn launch(&self, run: &OperationRun, progress: Arc<dyn ProgressSink>) -> OperationResult {
        let started = self.clock.now_millis();
        let spec = match self.registry.get(run.op_type()) {
            Some(HandlerSpec::Process(spec)) => spec,
            _ => {
                let message = format!(
                    "Operation type {} is not a process handler (operation: {})",
                    run.op_type(),
                    run.name
                );
                return OperationResult::failed_with(started, message, started);
            }
        };
        let input = LaunchInput {
            payload: run.payload.clone(),
            last_progress: run.last_progress.clone(),
            cid: Some(run.cid.clone()),
            agenda_id: Some(run.agenda_id.clone()),
            operation_name: Some(run.name.clone()),
            operation_id: run.operation.id.clone(),
            customer_id: Some(run.customer_id.clone()),
            progress_id: Some(run.progress_id.clone()),
            log_level: None,
            report_file: Some(self.report_file(run)),
        };
        // The directory is named by a hash: it says whose it is, for the
        // data reaper (`kept_agendas`).
        let dir = self.agenda_dir(&run.agenda_id);
        let agenda_id = run.agenda_id.clone();
        let _ = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(AGENDA_FILE), agenda_id))
        })
        .await;
        let clock = self.clock.clone();
        let read_clock = move || clock.now_millis();
        let launched = run_process_with_clock(spec, &input, &read_clock, |reported: &OperationProgress| {
            progress.report(reported)
        })
        .await;
        let now = self.clock.now_millis();
        match launched {
            Ok(output) => match output.outcome {
                Outcome::Succeeded { output: value } => OperationResult::succeeded(output.progress, value, now),
                // The launcher already added the diagnostic with the log tail.
                Outcome::Failed { .. } => OperationResult::failed(output.progress, None, now),
            },
            Err(e) => {
                OperationResult::failed_with(started, format!("Failed to execute operation: {} ({e})", run.name), now)
            }
        }
    }

    /// A handler that finished before the server crashed left its success
    /// in its report file; the crash came before the success was recorded.
    async fn adopt(&self, run: &OperationRun) -> Option<OperationResult> {
        let path = self.report_file(run);
        let settled = tokio::task::spawn_blocking(move || report::settled(&path)).await;
        match settled {
            Ok(Ok(Some((progress, output)))) => {
                tracing::info!(
                    agenda = run.agenda_id,
                    operation = run.name,
                    "adopting the result of a handler run that finished before a restart"
                );
                Some(OperationResult::succeeded(progress, output, self.clock.now_millis()))
            }
            Ok(Ok(None)) => None,
            Ok(Err(e)) => {
                tracing::warn!(operation = run.name, error = %e, "cannot read an earlier report; running again");
                None
            }
            Err(e) => {
                tracing::warn!(operation = run.name, error = %e, "reading an earlier report failed; running again");
                None
            }
        }
    }

    /// Reports matter only until the agenda's outcome is recorded.
    async fn forget_agenda(&self, agenda_id: &str) {
        let dir = self.agenda_dir(agenda_id);
        let removed = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || remove_dir(&dir)
        })
        .await;
        if let Ok(Err(e)) = removed {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove an agenda's reports");
        }
    }

    /// Every agenda directory, by the agenda id written into it at launch.
    async fn kept_agendas(&self) -> Result<Vec<(String, EpochMillis)>, LaunchError> {
        let runs_dir = self.runs_dir.clone();
        let kept = tokio::task::spawn_blocking(move || agenda_dirs(&runs_dir)).await;
        match kept {
            Ok(Ok(kept)) => Ok(kept),
            Ok(Err(e)) => Err(LaunchError::Failed {
                message: format!("cannot list the report directories: {e}"),
                source: Some(Box::new(e)),
            }),
            Err(e) => Err(LaunchError::Failed {
                message: "the report directory listing stopped".into(),
                source: Some(Box::new(e)),
            }),
        }
    }

    async fn reap_orphans(&self) -> Result<usize, LaunchError> {
        let runs_dir = self.runs_dir.clone();
        tokio::task::spawn_blocking(move || kill_orphans(&runs_dir))
            .await
            .map_err(|e| LaunchError::Failed {
                message: "the orphan search stopped".into(),
                source: Some(Box::new(e)),
            })
    }
}

/// The file in each agenda directory naming its agenda (directories are
/// named by a hash of the id).
const AGENDA_FILE: &str = "agenda-id";

/// (agenda id, newest write) of every agenda directory under `runs_dir`.
fn agenda_dirs(runs_dir: &Path) -> std::io::Result<Vec<(String, EpochMillis)>> {
    let entries = match std::fs::read_dir(runs_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other?,
    };
    let mut kept = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let Ok(agenda_id) = std::fs::read_to_string(dir.join(AGENDA_FILE)) else {
            continue;
        };
        if let Some(written) = newest_write(&dir)? {
            kept.push((agenda_id, written));
        }
    }
    Ok(kept)
}

/// When the newest file of `dir` (or the directory itself) was written, in
/// epoch ms.
fn newest_write(dir: &Path) -> std::io::Result<Option<EpochMillis>> {
    let millis = |meta: std::fs::Metadata| {
        meta.modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok())
    };
    let mut newest = millis(std::fs::metadata(dir)?);
    for entry in std::fs::read_dir(dir)?.flatten() {
        if let Ok(meta) = entry.metadata() {
            newest = newest.max(millis(meta));
        }
    }
    Ok(newest)
}

fn remove_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A file-name-safe, fixed-length name for user-chosen text.
fn short_hash(text: &str) -> String {
    pop_ports::sha256_hex(text.as_bytes())[..32].to_owned()
}
