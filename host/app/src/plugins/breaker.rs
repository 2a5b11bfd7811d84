//! Circuit breakers: a plugin version that keeps failing for a tenant
//! stops being called for that tenant for a while.
//!
//! Without them a plugin that fails on every call (a scheduler that always
//! runs into its deadline) is called on every round, forever: each call
//! costs its whole budget before the host falls back, and the tenant's
//! decisions pay it every time. With them, after [`BreakerPolicy::threshold`]
//! consecutive failures of one version for one tenant the breaker *opens*:
//! calls skip that version at once (the cell falls back to the last good
//! version, then the native algorithm, without calling it) until the
//! backoff has passed. Then one call is let through as a probe
//! (*half-open*): a success closes the breaker, a failure opens it again
//! for twice as long, up to [`BreakerPolicy::max_backoff_ms`]. A new upload
//! or activation in the slot resets its breakers: the owner changed
//! something, so it gets a fresh chance.
//!
//! Breakers are per (version, tenant) like warm instances: one tenant's
//! failures of a global plugin do not close it for the others. They live in
//! memory only; a restart starts them closed.
//!
//! Time comes from a [`Clock`] so tests drive it by hand, without sleeping.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pop_core::PluginKind;
use pop_wasm::{Answer, CompiledPlugin, PluginFailure};
use serde::Serialize;

use pop_ports::Clock;

use super::Slot;

/// When breakers open and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open a breaker.
    pub threshold: u32,
    /// How long a breaker stays open the first time.
    pub base_backoff_ms: u64,
    /// The longest it stays open, however long the version keeps failing.
    pub max_backoff_ms: u64,
}

impl Default for BreakerPolicy {
    /// Three failures in a row (one is bad luck, three a pattern); open for
    /// 1 s, doubling to at most a minute, so a version that fails forever
    /// costs one call a minute and one that recovers is back within its
    /// current backoff.
    fn default() -> Self {
        Self {
            threshold: 3,
            base_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
        }
    }
}

impl BreakerPolicy {
    /// How long a breaker opened for the `times`-th time in a row stays open.
    fn backoff_ms(&self, times: u32) -> u64 {
        let doublings = times.saturating_sub(1).min(63);
        self.base_backoff_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_backoff_ms)
    }
}

/// What a breaker lets a call do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: call.
    Call,
    /// Half-open: this call is the one probe.
    Probe,
    /// Open (or another call is probing): do not call; fall back.
    Skip,
}

/// A breaker's state as shown on the plugin record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    fn severity(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// One breaker, as shown on the plugin record (`breaker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerView {
    pub state: BreakerState,
    pub consecutive_failures: u32,
    /// When the next probe may run (the breaker's clock; epoch ms in the
    /// server); `None` when closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_until: Option<u64>,
}

impl BreakerView {
    pub const CLOSED: Self = Self {
        state: BreakerState::Closed,
        consecutive_failures: 0,
        open_until: None,
    };

    /// The worse of two (to show one breaker for several tenants).
    pub fn worse(self, other: Self) -> Self {
        let key = |v: &Self| (v.state.severity(), v.consecutive_failures);
        if key(&other) > key(&self) { other } else { self }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    kind: PluginKind,
    failures: u32,
    /// Times opened in a row (the backoff doubles with each).
    opened: u32,
    open_until: u64,
    /// When the probe in flight started.
    probe_started: Option<u64>,
}

impl Entry {
    fn state(&self, policy: &BreakerPolicy, now: u64) -> BreakerState {
        if self.failures < policy.threshold {
            BreakerState::Closed
        } else if self.probe_started.is_some() || now >= self.open_until {
            BreakerState::HalfOpen
        } else {
            BreakerState::Open
        }
    }
}

/// What a failure did to its breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tripped {
    /// Still closed, or already open.
    No,
    /// This failure opened it, until then.
    Opened { until: u64 },
}

/// The breakers of every (plugin version, tenant) that failed lately.
/// Versions that succeed have no entry, so the common case costs one
/// uncontended lock and a lookup in an empty map.
pub struct Breakers {
    clock: Arc<dyn Clock>,
    policy: BreakerPolicy,
    /// version id (`<slot>@<version>`) → tenant → breaker.
    entries: Mutex<HashMap<String, HashMap<String, Entry>>>,
}

impl Breakers {
    /// Now on the clock, in the breakers' unsigned milliseconds.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.now_millis()).unwrap_or(0)
    }

    pub fn new(clock: Arc<dyn Clock>, policy: BreakerPolicy) -> Self {
        Self {
            clock,
            policy,
            entries: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Entry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May `tenant` call `version` now?
    pub fn admit(&self, version: &str, tenant: &str) -> Admission {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(version).and_then(|t| t.get_mut(tenant)) else {
            return Admission::Call;
        };
        if entry.failures < self.policy.threshold {
            return Admission::Call;
        }
        let now = self.now_ms();
        if let Some(started) = entry.probe_started {
            // A probe whose outcome never came back (its task died) does
            // not keep the breaker half-open forever.
            if now < started.saturating_add(self.policy.max_backoff_ms) {
                return Admission::Skip;
            }
        } else if now < entry.open_until {
            return Admission::Skip;
        }
        entry.probe_started = Some(now);
        Admission::Probe
    }

    /// The call `admission` let through succeeded: the breaker closes.
    pub fn succeeded(&self, version: &str, tenant: &str) {
        let mut entries = self.lock();
        if let Some(tenants) = entries.get_mut(version) {
            tenants.remove(tenant);
            if tenants.is_empty() {
                entries.remove(version);
            }
        }
    }

    /// The call `admission` let through failed.
    pub fn failed(&self, kind: PluginKind, version: &str, tenant: &str, admission: Admission) -> Tripped {
        let now = self.now_ms();
        let mut entries = self.lock();
        let entry = entries
            .entry(version.to_owned())
            .or_default()
            .entry(tenant.to_owned())
            .or_insert(Entry {
                kind,
                failures: 0,
                opened: 0,
                open_until: 0,
                probe_started: None,
            });
        entry.failures = entry.failures.saturating_add(1);
        let opens = match admission {
            Admission::Probe => {
                entry.probe_started = None;
                true
            }
            // Calls admitted before the breaker opened may still fail
            // after it: only the one that reaches the threshold opens it.
            Admission::Call | Admission::Skip => entry.failures == self.policy.threshold,
        };
        if !opens {
            return Tripped::No;
        }
        entry.opened = entry.opened.saturating_add(1);
        entry.open_until = now.saturating_add(self.policy.backoff_ms(entry.opened));
        Tripped::Opened {
            until: entry.open_until,
        }
    }

    /// Forget the breakers of every version of slot `slot_id` (a new
    /// upload or activation there).
    pub fn reset_slot(&self, slot_id: &str) {
        let prefix = format!("{slot_id}@");
        self.lock().retain(|version, _| !version.starts_with(&prefix));
    }

    /// The breaker of `version` for each tenant that has one.
    pub fn views(&self, version: &str) -> Vec<(String, BreakerView)> {
        let now = self.now_ms();
        let entries = self.lock();
        let Some(tenants) = entries.get(version) else {
            return Vec::new();
        };
        tenants
            .iter()
            .map(|(tenant, entry)| (tenant.clone(), self.view(entry, now)))
            .collect()
    }

    fn view(&self, entry: &Entry, now: u64) -> BreakerView {
        let state = entry.state(&self.policy, now);
        BreakerView {
            state,
            consecutive_failures: entry.failures,
            open_until: (state != BreakerState::Closed).then_some(entry.open_until),
        }
    }

    /// Breakers not closed, per world (for `/pop/metrics`).
    pub fn not_closed(&self) -> Vec<(PluginKind, BreakerState)> {
        let now = self.now_ms();
        self.lock()
            .values()
            .flat_map(HashMap::values)
            .map(|entry| (entry.kind, entry.state(&self.policy, now)))
            .filter(|(_, state)| *state != BreakerState::Closed)
            .collect()
    }
}

/// How a guarded call went: the answer, the failures of the versions that
/// were called, and the versions skipped or opened on the way.
pub struct Guarded<R> {
    pub answer: Answer<R>,
    pub failures: Vec<(String, PluginFailure)>,
    /// Versions not called because their breaker was open.
    pub skipped: usize,
    /// Versions whose breaker this call opened, and until when.
    pub opened: Vec<(String, u64)>,
}

impl<R> Guarded<R> {
    /// The answer's value, and the rest (who answered, failures, skips) to
    /// account for.
    pub fn split(self) -> (R, Guarded<()>) {
        let Answer { value, by } = self.answer;
        let rest = Guarded {
            answer: Answer { value: (), by },
            failures: self.failures,
            skipped: self.skipped,
            opened: self.opened,
        };
        (value, rest)
    }
}

/// [`pop_wasm::PluginCell::call`] on `slot` for `tenant`, with breakers: a
/// version whose breaker is open is not called (the cell falls back at
/// once), and each called version's outcome feeds its breaker.
pub fn call<R>(
    breakers: &Breakers,
    kind: PluginKind,
    slot: &Slot,
    tenant: &str,
    mut run: impl FnMut(&CompiledPlugin) -> Result<R, PluginFailure>,
    builtin: impl FnOnce() -> R,
) -> Guarded<R> {
    // Set by `run` when it skipped a version, read by `on_failure`, which
    // the cell calls right after with the (made-up) failure: a skip is a
    // fallback, not a failure of the plugin.
    let skipping = Cell::new(false);
    let skipped = Cell::new(0usize);
    let opened = RefCell::new(Vec::new());
    let mut failures = Vec::new();
    let answer = slot.cell.call(
        |plugin| {
            let version = slot.label(plugin);
            let admission = breakers.admit(&version, tenant);
            if admission == Admission::Skip {
                skipping.set(true);
                skipped.set(skipped.get() + 1);
                return Err(PluginFailure::Refused("circuit breaker open".into()));
            }
            let result = run(plugin);
            match &result {
                Ok(_) => breakers.succeeded(&version, tenant),
                Err(_) => {
                    if let Tripped::Opened { until } = breakers.failed(kind, &version, tenant, admission) {
                        opened.borrow_mut().push((version, until));
                    }
                }
            }
            result
        },
        builtin,
        &mut |plugin, failure| {
            if !skipping.replace(false) {
                failures.push((slot.label(plugin), failure.clone()));
            }
        },
    );
    Guarded {
        answer,
        failures,
        skipped: skipped.get(),
        opened: opened.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use pop_ports::ManualClock;
    use std::time::Duration;

    use super::*;

    fn now(clock: &ManualClock) -> u64 {
        u64::try_from(clock.now_millis()).unwrap()
    }

    const V: &str = "acme:scheduler:picker@1";
    const KIND: PluginKind = PluginKind::Scheduler;

    fn breakers() -> (Arc<ManualClock>, Breakers) {
        let clock = Arc::new(ManualClock::at(1_000_000));
        let policy = BreakerPolicy {
            threshold: 3,
            base_backoff_ms: 100,
            max_backoff_ms: 350,
        };
        (clock.clone(), Breakers::new(clock, policy))
    }

    fn fail(b: &Breakers, tenant: &str) -> Tripped {
        let admission = b.admit(V, tenant);
        assert_ne!(admission, Admission::Skip, "a failing call must have been admitted");
        b.failed(KIND, V, tenant, admission)
    }

    fn view(b: &Breakers, tenant: &str) -> BreakerView {
        b.views(V)
            .into_iter()
            .find(|(t, _)| t == tenant)
            .map_or(BreakerView::CLOSED, |(_, v)| v)
    }

    #[test]
    fn opens_after_the_threshold_and_skips_until_the_backoff_passed() {
        let (clock, b) = breakers();
        assert_eq!(fail(&b, "acme"), Tripped::No);
        assert_eq!(fail(&b, "acme"), Tripped::No);
        assert_eq!(view(&b, "acme").state, BreakerState::Closed);
        assert_eq!(fail(&b, "acme"), Tripped::Opened { until: 1_000_100 });
        assert_eq!(
            view(&b, "acme"),
            BreakerView {
                state: BreakerState::Open,
                consecutive_failures: 3,
                open_until: Some(1_000_100)
            }
        );
        assert_eq!(b.admit(V, "acme"), Admission::Skip);
        clock.advance(Duration::from_millis(99));
        assert_eq!(b.admit(V, "acme"), Admission::Skip);
        clock.advance(Duration::from_millis(1));
        assert_eq!(view(&b, "acme").state, BreakerState::HalfOpen);
        assert_eq!(b.admit(V, "acme"), Admission::Probe, "one probe…");
        assert_eq!(b.admit(V, "acme"), Admission::Skip, "…and only one");
    }

    #[test]
    fn a_failed_probe_doubles_the_backoff_up_to_the_cap() {
        let (clock, b) = breakers();
        for _ in 0..3 {
            fail(&b, "acme");
        }
        let mut backoffs = Vec::new();
        for _ in 0..4 {
            let until = view(&b, "acme").open_until.unwrap_or_default();
            backoffs.push(until - now(&clock));
            clock.advance(Duration::from_millis(until - now(&clock)));
            assert_eq!(b.admit(V, "acme"), Admission::Probe);
            assert!(matches!(
                b.failed(KIND, V, "acme", Admission::Probe),
                Tripped::Opened { .. }
            ));
        }
        assert_eq!(backoffs, [100, 200, 350, 350]);
        assert_eq!(view(&b, "acme").consecutive_failures, 7);
    }

    #[test]
    fn a_successful_probe_closes_it_and_the_count_starts_again() {
        let (clock, b) = breakers();
        for _ in 0..3 {
            fail(&b, "acme");
        }
        clock.advance(Duration::from_millis(100));
        assert_eq!(b.admit(V, "acme"), Admission::Probe);
        b.succeeded(V, "acme");
        assert_eq!(view(&b, "acme"), BreakerView::CLOSED);
        assert_eq!(b.admit(V, "acme"), Admission::Call);
        assert!(b.views(V).is_empty(), "a closed breaker keeps nothing");
        // The next trip starts from the base backoff again.
        for _ in 0..2 {
            fail(&b, "acme");
        }
        assert_eq!(
            fail(&b, "acme"),
            Tripped::Opened {
                until: now(&clock) + 100
            }
        );
    }

    #[test]
    fn a_success_between_failures_resets_the_count() {
        let (_, b) = breakers();
        fail(&b, "acme");
        fail(&b, "acme");
        b.succeeded(V, "acme");
        fail(&b, "acme");
        fail(&b, "acme");
        assert_eq!(view(&b, "acme").state, BreakerState::Closed);
    }

    #[test]
    fn tenants_have_their_own_breakers() {
        let (_, b) = breakers();
        for _ in 0..3 {
            fail(&b, "acme");
        }
        assert_eq!(b.admit(V, "acme"), Admission::Skip);
        assert_eq!(b.admit(V, "globex"), Admission::Call);
        assert_eq!(b.admit("acme:scheduler:picker@2", "acme"), Admission::Call);
    }

    #[test]
    fn late_failures_of_calls_admitted_before_it_opened_do_not_extend_it() {
        let (_, b) = breakers();
        for _ in 0..3 {
            fail(&b, "acme");
        }
        let until = view(&b, "acme").open_until;
        assert_eq!(b.failed(KIND, V, "acme", Admission::Call), Tripped::No);
        assert_eq!(view(&b, "acme").open_until, until);
    }

    #[test]
    fn a_lost_probe_does_not_keep_it_half_open_forever() {
        let (clock, b) = breakers();
        for _ in 0..3 {
            fail(&b, "acme");
        }
        clock.advance(Duration::from_millis(100));
        assert_eq!(b.admit(V, "acme"), Admission::Probe);
        clock.advance(Duration::from_millis(349));
        assert_eq!(b.admit(V, "acme"), Admission::Skip);
        clock.advance(Duration::from_millis(1));
        assert_eq!(b.admit(V, "acme"), Admission::Probe);
    }

    #[test]
    fn resetting_a_slot_closes_its_versions_only() {
        let (_, b) = breakers();
        for version in [V, "acme:scheduler:picker@2", "acme:scheduler:picker-two@1"] {
            for _ in 0..3 {
                let admission = b.admit(version, "acme");
                b.failed(KIND, version, "acme", admission);
            }
        }
        assert_eq!(b.not_closed().len(), 3);
        b.reset_slot("acme:scheduler:picker");
        assert_eq!(b.admit(V, "acme"), Admission::Call);
        assert_eq!(b.admit("acme:scheduler:picker@2", "acme"), Admission::Call);
        assert_eq!(b.admit("acme:scheduler:picker-two@1", "acme"), Admission::Skip);
    }

    #[test]
    fn the_worse_view_wins() {
        let open = BreakerView {
            state: BreakerState::Open,
            consecutive_failures: 3,
            open_until: Some(5),
        };
        assert_eq!(BreakerView::CLOSED.worse(open), open);
        assert_eq!(open.worse(BreakerView::CLOSED), open);
        let json = serde_json::to_value(open).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"state": "open", "consecutiveFailures": 3, "openUntil": 5})
        );
    }
}
