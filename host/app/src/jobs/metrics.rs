//! Counters of the background jobs, per job: runs, failed runs, documents
//! examined, objects acted on, failed actions, and when the last run
//! started. Rendered in Prometheus' text format at `GET /pop/metrics`,
//! next to the plugin counters.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use pop_core::EpochMillis;

use super::{Job, Report};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JobCounters {
    pub runs: u64,
    pub failed_runs: u64,
    pub examined: u64,
    pub acted: u64,
    pub errors: u64,
    pub last_run: Option<EpochMillis>,
}

/// One metric family: name, help text, and the value of a job's counters.
type Family = (&'static str, &'static str, fn(&JobCounters) -> Option<u64>);

/// The counters of one process (reset on restart, as Prometheus counters
/// are).
#[derive(Default)]
pub struct JobMetrics {
    counters: Mutex<BTreeMap<Job, JobCounters>>,
}

impl JobMetrics {
    /// Counts a run of `job` that started at `started`: its report, or
    /// `None` when the run failed.
    pub fn record(&self, job: Job, report: Option<&Report>, started: EpochMillis) {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let entry = counters.entry(job).or_default();
        entry.runs += 1;
        entry.last_run = Some(started);
        match report {
            Some(report) => {
                entry.examined += report.examined;
                entry.acted += report.acted;
                entry.errors += report.errors;
            }
            None => entry.failed_runs += 1,
        }
    }

    pub fn of(&self, job: Job) -> JobCounters {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.get(&job).copied().unwrap_or_default()
    }

    /// Prometheus text: one family per counter, a `job` label each.
    pub fn render(&self) -> String {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let families: [Family; 6] = [
            ("pop_job_runs_total", "Runs of each background job.", |c| Some(c.runs)),
            ("pop_job_failed_runs_total", "Runs that failed as a whole.", |c| {
                Some(c.failed_runs)
            }),
            ("pop_job_examined_total", "Documents the job looked at.", |c| {
                Some(c.examined)
            }),
            ("pop_job_acted_total", "Objects the job acted on.", |c| Some(c.acted)),
            (
                "pop_job_errors_total",
                "Actions that failed (retried by a later run).",
                |c| Some(c.errors),
            ),
            (
                "pop_job_last_run_timestamp_ms",
                "When the job's last run started (epoch ms).",
                |c| c.last_run.and_then(|t| u64::try_from(t).ok()),
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in families {
            let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for job in Job::ALL {
                let counters = counters.get(&job).copied().unwrap_or_default();
                if let Some(value) = value(&counters) {
                    let _ = writeln!(out, "{name}{{job=\"{job}\"}} {value}");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_counted_per_job_and_rendered() {
        let metrics = JobMetrics::default();
        let report = Report {
            examined: 7,
            acted: 2,
            errors: 1,
            ..Default::default()
        };
        metrics.record(Job::Reap, Some(&report), 1_000);
        metrics.record(Job::Reap, None, 2_000);
        let reap = metrics.of(Job::Reap);
        assert_eq!(
            (reap.runs, reap.failed_runs, reap.examined, reap.acted, reap.errors),
            (2, 1, 7, 2, 1)
        );
        assert_eq!(reap.last_run, Some(2_000));
        let text = metrics.render();
        assert!(text.contains("pop_job_runs_total{job=\"reap\"} 2"), "{text}");
        assert!(text.contains("pop_job_acted_total{job=\"reap\"} 2"), "{text}");
        assert!(text.contains("pop_job_runs_total{job=\"retry\"} 0"), "{text}");
        assert!(
            text.contains("pop_job_last_run_timestamp_ms{job=\"reap\"} 2000"),
            "{text}"
        );
        assert!(!text.contains("pop_job_last_run_timestamp_ms{job=\"retry\"}"), "{text}");
    }
}
