//! The background jobs (spec §6, fixed): automatic [`retry`] of failed
//! agendas, the [`reclaim`]er of work no lease or loop will move again, and
//! the data [`reap`]er.
//!
//! Each job is a function of (store, queue, clock, settings) → a [`Report`]
//! of what it did: `pop serve` runs each at its interval ([`spawn`]), an
//! operator runs one once (`POST /pop/jobs/{job}/run`, `pop job run`), and
//! a scheduled Lambda will call the same function. A run is bounded in
//! documents examined and in time, walks its kind with a cursor kept
//! between runs (so a large table is covered a page per run), and acts only
//! through conditional writes: two processes running the same job at once
//! never act twice on one object. `log_only` reports what it would do.

mod metrics;
/// Walks `kind` (matching `query`, passing `filter`) from the walk's
/// cursor within `budget`, handing each page's documents to `act`.
/// Returns whether the walk reached the end.
macro_rules! walk {
    ($jobs:expr, $walk:expr, $kind:expr, $query:expr, $filter:expr, $budget:expr, $report:expr, |$doc:ident| $act:block) => {{
        let mut budget = $budget;
        let mut from = $jobs.cursor($walk);
        while let Some(page_size) = budget.next_page($jobs.now()) {
            let page = $jobs
                .store
                .scan($kind, &$query, $filter, from.as_ref(), page_size)
                .await?;
            $report.examined += page.docs.len() as u64;
            budget.spend(page_size).await;
            for $doc in &page.docs {
                $act
            }
            from = page.next;
            if from.is_none() {
                break;
            }
        }
        let done = from.is_none();
        $jobs.keep_cursor($walk, from);
        done
    }};
}

pub mod reap;
pub mod reclaim;
pub mod retry;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pop_core::EpochMillis;
use pop_ports::{BlobStore, Clock, Launcher, Queue, ScanCursor, Store};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use metrics::JobMetrics;

use crate::error::AppResult;

/// The jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Job {
    Retry,
    Reclaim,
    Reap,
}

impl Job {
    pub const ALL: [Job; 3] = [Job::Retry, Job::Reclaim, Job::Reap];

    pub fn name(self) -> &'static str {
        match self {
            Job::Retry => "retry",
            Job::Reclaim => "reclaim",
            Job::Reap => "reap",
        }
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Job {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Job::ALL
            .into_iter()
            .find(|job| job.name() == s)
            .ok_or_else(|| format!("unknown job {s:?}: one of retry, reclaim, reap"))
    }
}

/// How one job runs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSettings {
    /// Between two runs in `pop serve` (zero: never run on its own).
    pub interval: Duration,
    /// Most documents one run looks at (its pages together).
    pub batch: usize,
    /// Most time one run takes; it stops between pages when it is over.
    pub max_run: Duration,
    /// Pause between two pages of a run: the rate limit that leaves the
    /// store to the foreground (real time: it paces work, it is not a
    /// time the application records).
    pub page_pause: Duration,
    /// Report what would be done, change nothing.
    pub log_only: bool,
}

impl JobSettings {
    fn every(interval: Duration) -> Self {
        Self {
            interval,
            batch: 500,
            max_run: Duration::from_secs(20),
            page_pause: Duration::from_millis(10),
            log_only: false,
        }
    }
}

/// The jobs' settings.
#[derive(Debug, Clone, PartialEq)]
pub struct JobsConfig {
    pub retry: JobSettings,
    pub reclaim: JobSettings,
    pub reap: JobSettings,
    /// The reclaimer leaves alone what changed more recently than this
    /// (a WAITING or EXECUTING agenda in neither backlog nor queue may be
    /// between two steps of a release or a completion).
    pub reclaim_after: Duration,
    /// A queue entry delivered this many times without completing is
    /// poison: its agenda is failed instead of run again.
    pub max_deliveries: u32,
    /// How long completed agendas (with their progress and operation
    /// progress) are kept after they completed.
    pub retention: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            retry: JobSettings::every(Duration::from_secs(1)),
            reclaim: JobSettings::every(Duration::from_secs(60)),
            reap: JobSettings::every(Duration::from_secs(300)),
            reclaim_after: Duration::from_secs(300),
            max_deliveries: 10,
            retention: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

impl JobsConfig {
    pub fn settings(&self, job: Job) -> &JobSettings {
        match job {
            Job::Retry => &self.retry,
            Job::Reclaim => &self.reclaim,
            Job::Reap => &self.reap,
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub job: String,
    pub log_only: bool,
    /// Documents looked at.
    pub examined: u64,
    /// Objects acted on (or that would have been, with `log_only`).
    pub acted: u64,
    /// Actions that failed (the next run tries again).
    pub errors: u64,
    /// What was done, one line each (the first [`MAX_LINES`]).
    pub actions: Vec<String>,
    /// Whether the walk reached the end of what it scans (else the next
    /// run goes on from where this one stopped).
    pub complete: bool,
}

/// Lines kept in a report.
pub const MAX_LINES: usize = 200;

impl Report {
    fn new(job: Job, log_only: bool) -> Self {
        Self {
            job: job.name().into(),
            log_only,
            complete: true,
            ..Default::default()
        }
    }

    /// Counts one action and keeps its line.
    fn acted(&mut self, line: String) {
        self.acted += 1;
        tracing::info!(job = %self.job, log_only = self.log_only, "{line}");
        if self.actions.len() < MAX_LINES {
            self.actions.push(line);
        }
    }

    /// Counts one failed action and keeps its line.
    fn failed(&mut self, line: String) {
        self.errors += 1;
        tracing::warn!(job = %self.job, "{line}");
        if self.actions.len() < MAX_LINES {
            self.actions.push(format!("error: {line}"));
        }
    }
}

/// The engines and settings the jobs run on, their cursors and counters.
pub struct Jobs {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    pub config: JobsConfig,
    pub metrics: JobMetrics,
    /// Launchers whose leftovers (report files, completed pods) the reaper
    /// removes after the retention.
    launchers: Vec<Arc<dyn Launcher>>,
    /// Where plugin binaries are, to delete those no version uses.
    blobs: Option<Arc<dyn BlobStore>>,
    /// Where each walk goes on at the next run (per job and walk).
    cursors: Mutex<HashMap<&'static str, ScanCursor>>,
    /// One run of a job at a time in this process (two processes may still
    /// overlap: every action is conditional).
    running: tokio::sync::Mutex<()>,
}

impl Jobs {
    pub fn new(store: Arc<dyn Store>, queue: Arc<dyn Queue>, clock: Arc<dyn Clock>, config: JobsConfig) -> Self {
        Self {
            store,
            queue,
            clock,
            config,
            metrics: JobMetrics::default(),
            launchers: Vec::new(),
            blobs: None,
            cursors: Mutex::default(),
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// The same jobs, reaping what `launchers` leave behind too.
    pub fn with_launchers(self, launchers: Vec<Arc<dyn Launcher>>) -> Self {
        Self { launchers, ..self }
    }

    /// The same jobs, deleting the binaries of the plugin versions they reap.
    pub fn with_blobs(self, blobs: Arc<dyn BlobStore>) -> Self {
        Self {
            blobs: Some(blobs),
            ..self
        }
    }

    fn now(&self) -> EpochMillis {
        self.clock.now_millis()
    }

    /// Runs `job` once with its settings, `log_only` forced on if asked.
    pub async fn run(&self, job: Job, log_only: bool) -> AppResult<Report> {
        let _one_at_a_time = self.running.lock().await;
        let mut settings = self.config.settings(job).clone();
        settings.log_only |= log_only;
        let budget = Budget::new(&settings, self.now());
        let started = self.now();
        let outcome = match job {
            Job::Retry => retry::run(self, &settings, budget).await,
            Job::Reclaim => reclaim::run(self, &settings, budget).await,
            Job::Reap => reap::run(self, &settings, budget).await,
        };
        self.metrics.record(job, outcome.as_ref().ok(), started);
        outcome
    }

    fn cursor(&self, walk: &'static str) -> Option<ScanCursor> {
        self.cursors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(walk)
            .cloned()
    }

    /// Keeps where `walk` goes on; `None`: it reached the end, start over.
    fn keep_cursor(&self, walk: &'static str, next: Option<ScanCursor>) {
        let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
        match next {
            Some(next) => cursors.insert(walk, next),
            None => cursors.remove(walk),
        };
    }
}

/// What is left of one run: documents to examine and time.
#[derive(Debug, Clone, Copy)]
struct Budget {
    documents: usize,
    deadline: EpochMillis,
    pause: Duration,
    /// Whether a page was handed out already (the pause goes between pages).
    started: bool,
}

/// Documents one page examines.
const PAGE: usize = 100;

impl Budget {
    fn new(settings: &JobSettings, now: EpochMillis) -> Self {
        let max_run = i64::try_from(settings.max_run.as_millis()).unwrap_or(i64::MAX);
        Self {
            documents: settings.batch.max(1),
            deadline: now.saturating_add(max_run),
            pause: settings.page_pause,
            started: false,
        }
    }

    /// The next page's size, `None` when the run is out of budget.
    fn next_page(&self, now: EpochMillis) -> Option<usize> {
        (self.documents > 0 && now < self.deadline).then(|| self.documents.min(PAGE))
    }

    /// Spends a page of `examined` documents, after the pause that paces
    /// the pages of a run.
    async fn spend(&mut self, examined: usize) {
        if self.started && !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        self.started = true;
        self.documents = self.documents.saturating_sub(examined.max(1));
    }
}

/// How long a stop waits for the runs in progress.
const STOP_BOUND: Duration = Duration::from_secs(5);

/// Runs every job at its interval until `stop` turns true; a run's failure
/// is logged and counted, and the next run tries again.
pub fn spawn(jobs: Arc<Jobs>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for job in Job::ALL {
            let interval = jobs.config.settings(job).interval;
            if interval.is_zero() {
                continue;
            }
            let (jobs, mut stop) = (jobs.clone(), stop.clone());
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        () = jobs.clock.sleep(interval) => {}
                        _ = stop.wait_for(|stopped| *stopped) => return,
                    }
                    // A run in progress when the stop comes is let finish
                    // (within the bound below): the stop is checked between runs.
                    match jobs.run(job, false).await {
                        Ok(report) if report.acted > 0 || report.errors > 0 => tracing::info!(
                            %job, examined = report.examined, acted = report.acted, errors = report.errors, "job ran"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(%job, error = %e, "job failed"),
                    }
                }
            });
        }
        let _ = stop.wait_for(|stopped| *stopped).await;
        // Runs in progress get a bound to finish; past it they are cut
        // between two conditional writes, and every such cut leaves a state
        // the next run (here or elsewhere) moves on.
        let finished = tokio::time::timeout(STOP_BOUND, async { while tasks.join_next().await.is_some() {} }).await;
        if finished.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    })
}
