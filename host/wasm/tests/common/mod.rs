//! Shared by the integration tests: runtimes, the real plugin components,
//! and reproducible random backlogs.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use pop_core::scheduling::{CustomerList, PendingAgenda, ScheduleInput};
use pop_wasm::{CompiledPlugin, Limits, PluginKind, Runtime, RuntimeConfig};

/// A runtime with the default limits (the default instruction budgets
/// included) except a wall-clock backstop of 20 s: a debug build on a
/// loaded two-core CI machine can wait for a core far longer than the
/// default 200 ms, and no test here may depend on that (containment.rs
/// tests the backstop itself).
pub fn runtime() -> Runtime {
    runtime_with(Limits {
        deadline: Duration::from_secs(2),
        ..Limits::default()
    })
}

pub fn runtime_with(limits: Limits) -> Runtime {
    Runtime::new(RuntimeConfig {
        limits,
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

/// Compile a scheduler component, failing the test if it does not compile.
pub fn scheduler(runtime: &Runtime, wasm: &[u8]) -> Arc<CompiledPlugin> {
    runtime
        .compile(PluginKind::Scheduler, wasm)
        .expect("scheduler compiles")
}

/// The built-in plugin named `name`, compiled as its own kind.
pub fn builtin(runtime: &Runtime, name: &str) -> Arc<CompiledPlugin> {
    let builtin = pop_builtin_plugins::builtin(name).unwrap_or_else(|| panic!("no built-in {name}"));
    let kind = PluginKind::from_world(builtin.kind).expect("known world");
    runtime.compile(kind, builtin.wasm).expect("built-in compiles")
}

/// xorshift64*: reproducible inputs without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One insight's backlog: the data a `ScheduleInput` borrows.
#[derive(Debug, Clone)]
pub struct Backlog {
    pub customers: CustomerList,
    pub pending: Vec<PendingAgenda>,
    pub running: Vec<u32>,
    pub now_ms: u64,
}

impl Backlog {
    /// `pending` agendas from `customers` customers, oldest first, with a
    /// few priorities and some agendas already running.
    pub fn random(rng: &mut Rng, customers: usize, pending: usize) -> Self {
        let customers: CustomerList = (0..customers).map(|i| format!("customer-{i:03}")).collect();
        let mut added_ms = 1_000_000;
        let pending = (0..pending)
            .map(|_| {
                // Ties in added time happen (same-millisecond submissions).
                added_ms += rng.below(3);
                PendingAgenda {
                    customer: rng.below(customers.len().max(1) as u64) as u32,
                    priority: rng.below(5) as i32 - 1,
                    added_ms,
                }
            })
            .collect();
        let running = customers.ids().iter().map(|_| rng.below(3) as u32).collect();
        Self {
            customers,
            pending,
            running,
            now_ms: added_ms + rng.below(300_000),
        }
    }

    pub fn input<'a>(&'a self, free_slots: u32, config: &'a str, state: &'a [u8]) -> ScheduleInput<'a> {
        ScheduleInput {
            now_ms: self.now_ms,
            free_slots,
            customers: self.customers.ids(),
            pending: &self.pending,
            running: &self.running,
            config,
            state,
        }
    }
}

/// Median of `runs` timings of `f`.
pub fn median_time(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}
