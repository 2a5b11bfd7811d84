//! Counters of plugin calls for operators, per world: who answered (the
//! active version, the last good one after the active failed, or the native
//! built-in), failures by class, and how long the calls took; calls skipped
//! by a circuit breaker, breakers opened, and breakers not closed now.
//! Rendered in Prometheus' text format at `GET /pop/metrics`.
//!
//! Aggregated over tenants on purpose: which tenant's plugin failed is on
//! that plugin's record, where its owner sees it; these figures say how the
//! platform is doing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use pop_core::PluginKind;
use pop_wasm::{AnsweredBy, PluginFailure};

use super::breaker::BreakerState;

/// Upper bounds (seconds) of the call-latency histogram's buckets: from a
/// warm scheduler call (~1 µs) to the 20 ms decision deadline and past it.
const LATENCY_BUCKETS: [f64; 9] = [0.00001, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.02, 0.1];

/// Who gave the answer a call used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Answerer {
    /// The active version.
    Active,
    /// The last version that worked, after the active one failed.
    LastGood,
    /// The native built-in: no plugin, or every version failed.
    Native,
}

impl Answerer {
    fn label(self) -> &'static str {
        match self {
            Answerer::Active => "active",
            Answerer::LastGood => "last-good",
            Answerer::Native => "native",
        }
    }
}

impl From<&AnsweredBy> for Answerer {
    fn from(by: &AnsweredBy) -> Self {
        match by {
            AnsweredBy::Active(_) => Answerer::Active,
            AnsweredBy::LastGood(_) => Answerer::LastGood,
            AnsweredBy::Builtin => Answerer::Native,
        }
    }
}

#[derive(Default)]
struct Latency {
    /// Per bucket of [`LATENCY_BUCKETS`], calls at or under its bound.
    buckets: [u64; LATENCY_BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Counters {
    answers: BTreeMap<(&'static str, Answerer), u64>,
    failures: BTreeMap<(&'static str, &'static str), u64>,
    latency: BTreeMap<&'static str, Latency>,
    /// Versions not called because their breaker was open, per world.
    skipped: BTreeMap<&'static str, u64>,
    /// Breakers opened, per world.
    tripped: BTreeMap<&'static str, u64>,
}

/// The counters of one server (process-wide, reset on restart, as
/// Prometheus counters are).
#[derive(Default)]
pub struct PluginMetrics {
    counters: Mutex<Counters>,
}

impl PluginMetrics {
    /// A call of a `kind` plugin was answered by `by` after `elapsed`
    /// (fallbacks included).
    pub fn answered(&self, kind: PluginKind, by: Answerer, elapsed: Duration) {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *counters.answers.entry((kind.world(), by)).or_default() += 1;
        let latency = counters.latency.entry(kind.world()).or_default();
        let seconds = elapsed.as_secs_f64();
        for (bucket, &bound) in latency.buckets.iter_mut().zip(&LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        latency.sum += seconds;
        latency.count += 1;
    }

    /// A version of a `kind` plugin failed.
    pub fn failed(&self, kind: PluginKind, failure: &PluginFailure) {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *counters
            .failures
            .entry((kind.world(), failure_code(failure)))
            .or_default() += 1;
    }

    /// `count` versions of a `kind` plugin were skipped by their breaker.
    pub fn skipped(&self, kind: PluginKind, count: usize) {
        if count > 0 {
            let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
            *counters.skipped.entry(kind.world()).or_default() += count as u64;
        }
    }

    /// A breaker of a `kind` plugin opened.
    pub fn tripped(&self, kind: PluginKind) {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *counters.tripped.entry(kind.world()).or_default() += 1;
    }

    /// Everything, in Prometheus' text exposition format (version 0.0.4),
    /// with `breakers`, the breakers not closed now, as gauges.
    pub fn render(&self, breakers: &[(PluginKind, BreakerState)]) -> String {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        out.push_str("# HELP pop_plugin_answers_total Plugin calls by world and by who answered.\n");
        out.push_str("# TYPE pop_plugin_answers_total counter\n");
        for ((world, by), count) in &counters.answers {
            let _ = writeln!(
                out,
                "pop_plugin_answers_total{{world=\"{world}\",answered_by=\"{}\"}} {count}",
                by.label()
            );
        }
        out.push_str("# HELP pop_plugin_failures_total Failed plugin calls by world and failure.\n");
        out.push_str("# TYPE pop_plugin_failures_total counter\n");
        for ((world, failure), count) in &counters.failures {
            let _ = writeln!(
                out,
                "pop_plugin_failures_total{{world=\"{world}\",failure=\"{failure}\"}} {count}"
            );
        }
        out.push_str("# HELP pop_plugin_call_seconds Plugin calls, fallbacks included, by world.\n");
        out.push_str("# TYPE pop_plugin_call_seconds histogram\n");
        for (world, latency) in &counters.latency {
            for (bound, count) in LATENCY_BUCKETS.iter().zip(latency.buckets) {
                let _ = writeln!(
                    out,
                    "pop_plugin_call_seconds_bucket{{world=\"{world}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "pop_plugin_call_seconds_bucket{{world=\"{world}\",le=\"+Inf\"}} {}",
                latency.count
            );
            let _ = writeln!(out, "pop_plugin_call_seconds_sum{{world=\"{world}\"}} {}", latency.sum);
            let _ = writeln!(
                out,
                "pop_plugin_call_seconds_count{{world=\"{world}\"}} {}",
                latency.count
            );
        }
        out.push_str("# HELP pop_plugin_breaker_skipped_total Plugin versions not called because their circuit breaker was open.\n");
        out.push_str("# TYPE pop_plugin_breaker_skipped_total counter\n");
        for (world, count) in &counters.skipped {
            let _ = writeln!(out, "pop_plugin_breaker_skipped_total{{world=\"{world}\"}} {count}");
        }
        out.push_str(
            "# HELP pop_plugin_breaker_opened_total Circuit breakers opened (per plugin version and tenant).\n",
        );
        out.push_str("# TYPE pop_plugin_breaker_opened_total counter\n");
        for (world, count) in &counters.tripped {
            let _ = writeln!(out, "pop_plugin_breaker_opened_total{{world=\"{world}\"}} {count}");
        }
        out.push_str("# HELP pop_plugin_breakers Circuit breakers not closed now, by world and state.\n");
        out.push_str("# TYPE pop_plugin_breakers gauge\n");
        let mut open: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
        for (kind, state) in breakers {
            let state = match state {
                BreakerState::Open => "open",
                BreakerState::HalfOpen => "half-open",
                BreakerState::Closed => continue,
            };
            *open.entry((kind.world(), state)).or_default() += 1;
        }
        for ((world, state), count) in open {
            let _ = writeln!(
                out,
                "pop_plugin_breakers{{world=\"{world}\",state=\"{state}\"}} {count}"
            );
        }
        out
    }
}

/// A short machine-readable code for a failure (also the status code of
/// the diagnostic on the plugin's record).
pub fn failure_code(failure: &PluginFailure) -> &'static str {
    match failure {
        PluginFailure::OutOfFuel { .. } => "out-of-fuel",
        PluginFailure::Timeout => "timeout",
        PluginFailure::OutOfMemory => "out-of-memory",
        PluginFailure::StackOverflow => "stack-overflow",
        PluginFailure::Trap(_) => "trap",
        PluginFailure::BadOutput(_) => "bad-output",
        PluginFailure::Refused(_) => "refused",
        PluginFailure::Instantiate(_) => "instantiate",
        PluginFailure::WrongKind { .. } => "wrong-kind",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let metrics = PluginMetrics::default();
        metrics.answered(PluginKind::Scheduler, Answerer::Active, Duration::from_micros(50));
        metrics.answered(PluginKind::Scheduler, Answerer::Native, Duration::from_millis(30));
        metrics.failed(PluginKind::Scheduler, &PluginFailure::Timeout);
        metrics.skipped(PluginKind::Scheduler, 2);
        metrics.tripped(PluginKind::Scheduler);
        let breakers = [
            (PluginKind::Scheduler, BreakerState::Open),
            (PluginKind::Scheduler, BreakerState::Open),
            (PluginKind::InsightMatcher, BreakerState::HalfOpen),
        ];
        let text = metrics.render(&breakers);
        for line in [
            "pop_plugin_answers_total{world=\"scheduler\",answered_by=\"active\"} 1",
            "pop_plugin_answers_total{world=\"scheduler\",answered_by=\"native\"} 1",
            "pop_plugin_failures_total{world=\"scheduler\",failure=\"timeout\"} 1",
            "pop_plugin_call_seconds_bucket{world=\"scheduler\",le=\"0.00001\"} 0",
            "pop_plugin_call_seconds_bucket{world=\"scheduler\",le=\"0.0001\"} 1",
            "pop_plugin_call_seconds_bucket{world=\"scheduler\",le=\"0.02\"} 1",
            "pop_plugin_call_seconds_bucket{world=\"scheduler\",le=\"0.1\"} 2",
            "pop_plugin_call_seconds_bucket{world=\"scheduler\",le=\"+Inf\"} 2",
            "pop_plugin_call_seconds_count{world=\"scheduler\"} 2",
            "pop_plugin_breaker_skipped_total{world=\"scheduler\"} 2",
            "pop_plugin_breaker_opened_total{world=\"scheduler\"} 1",
            "pop_plugin_breakers{world=\"scheduler\",state=\"open\"} 2",
            "pop_plugin_breakers{world=\"insight-matcher\",state=\"half-open\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        assert!(
            !text.contains("answers_total{world=\"insight-matcher\""),
            "nothing counted, nothing shown"
        );
    }
}
