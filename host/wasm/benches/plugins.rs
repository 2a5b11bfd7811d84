//! Plugin runtime benchmarks, WebAssembly beside native in one run so the
//! ratios are meaningful:
//!
//! * `decide-10000`: round-robin and weighted-fair over 10,000 pending
//!   agendas from 100 customers, 10 free slots (goal: wasm ≤ 1.5 × native,
//!   p99 ≤ 1 ms; percentiles of 1,000 single calls are printed too);
//! * `overhead`: a scheduler call with nothing pending on the tenant's warm
//!   instance (goal ≤ 10 µs), the same on a fresh instance, and
//!   instantiation alone;
//! * `hot-swap`: upload to active, i.e. compile + activate, cold (goal ≤
//!   100 ms), from the in-memory cache and from `cache_dir` (goal ≤ 5 ms);
//! * `visibility-1000`: one decision over 1,000 objects (goal ≤ 5 ms);
//! * `interruption`: the same decisions on three engines, bounded by the
//!   wall clock only (epochs, the runtime before fuel), by the instruction
//!   budget only (fuel) and by both (the default), to measure what fuel
//!   costs.
//!
//! `cargo bench -p pop-wasm` (one group: `cargo bench -p pop-wasm --
//! interruption`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use pop_builtin_plugins::{builtin, fixtures};
use pop_core::scheduling::{CustomerList, PendingAgenda, ScheduleInput, ScheduleOutput, round_robin, weighted_fair};
use pop_core::visibility::{Caller, ObjectPage, Ownership, ReadRule, can_read, can_read_document};
use pop_wasm::convert::object_summary;
use pop_wasm::{
    CompiledPlugin, InstanceFor, Interruption, Limits, PluginCell, PluginKind, Runtime, RuntimeConfig, types,
};

/// 10,000 agendas from 100 customers, oldest first, a few priorities.
struct Backlog {
    customers: CustomerList,
    pending: Vec<PendingAgenda>,
    running: Vec<u32>,
}

impl Backlog {
    fn new(customers: usize, pending: usize) -> Self {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        Self {
            customers: (0..customers).map(|i| format!("customer-{i:03}")).collect(),
            pending: (0..pending)
                .map(|i| PendingAgenda {
                    customer: next(customers as u64) as u32,
                    priority: next(4) as i32,
                    added_ms: 1_000_000 + i as u64,
                })
                .collect(),
            running: (0..customers).map(|_| next(3) as u32).collect(),
        }
    }

    fn input<'a>(&'a self, free_slots: u32, config: &'a str, state: &'a [u8]) -> ScheduleInput<'a> {
        ScheduleInput {
            now_ms: 2_000_000,
            free_slots,
            customers: self.customers.ids(),
            pending: &self.pending,
            running: &self.running,
            config,
            state,
        }
    }
}

/// The default runtime except a generous wall-clock backstop: the machine
/// the benchmarks run on is shared, and a call descheduled past the 200 ms
/// default would abort the run instead of showing up in the percentiles.
fn bench_runtime() -> Runtime {
    runtime_bounded_by(Interruption::default())
}

fn runtime_bounded_by(interruption: Interruption) -> Runtime {
    Runtime::new(RuntimeConfig {
        limits: Limits {
            deadline: Duration::from_secs(1),
            interruption,
            ..Limits::default()
        },
        ..RuntimeConfig::default()
    })
    .unwrap()
}

fn compile(runtime: &Runtime, name: &str) -> Arc<CompiledPlugin> {
    let b = builtin(name).expect("built-in");
    runtime
        .compile(PluginKind::from_world(b.kind).unwrap(), b.wasm)
        .expect("compiles")
}

/// The same component with a different sha256: a custom section appended.
fn unique_bytes(wasm: &[u8], n: u64) -> Vec<u8> {
    let name = b"pop-bench";
    let payload = n.to_le_bytes();
    let size = 1 + name.len() + payload.len();
    let mut bytes = wasm.to_vec();
    bytes.extend_from_slice(&[0, size as u8, name.len() as u8]);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(&payload);
    bytes
}

/// Print p50/p90/p99/max of `runs` single calls.
fn percentiles(label: &str, runs: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..runs / 10 {
        f();
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "{label:<28} p50 {:>9.1?}  p90 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}  ({runs} calls)",
        at(0.50),
        at(0.90),
        at(0.99),
        times[times.len() - 1]
    );
    at(0.50)
}

fn decide_10000(c: &mut Criterion) {
    let runtime = bench_runtime();
    let backlog = Backlog::new(100, 10_000);
    let weights = r#"{"weights":{"customer-000":4,"customer-001":2,"customer-002":0.5},"defaultWeight":1}"#;
    type Native = fn(&ScheduleInput<'_>) -> Result<ScheduleOutput, pop_core::scheduling::ScheduleError>;
    let cases: [(&str, &str, &str, Native); 2] = [
        ("round-robin", "RoundRobin", "{}", round_robin),
        ("weighted-fair", "WeightedFair", weights, weighted_fair),
    ];

    let mut group = c.benchmark_group("decide-10000");
    println!();
    for (label, name, config, native) in cases {
        let plugin = compile(&runtime, name);
        // Steady state: the state a previous decision left.
        let state = native(&backlog.input(10, config, &[])).unwrap().state;
        let input = backlog.input(10, config, &state);
        assert_eq!(
            runtime.schedule(&plugin, InstanceFor::Tenant("bench"), &input).unwrap(),
            native(&input).unwrap()
        );
        group.bench_function(format!("{label}/native"), |b| {
            b.iter(|| native(black_box(&input)).unwrap())
        });
        group.bench_function(format!("{label}/wasm"), |b| {
            b.iter(|| {
                runtime
                    .schedule(&plugin, InstanceFor::Tenant("bench"), black_box(&input))
                    .unwrap()
            })
        });
        let n = percentiles(&format!("{label}/native"), 1_000, || {
            black_box(native(&input).unwrap());
        });
        let w = percentiles(&format!("{label}/wasm"), 1_000, || {
            black_box(runtime.schedule(&plugin, InstanceFor::Tenant("bench"), &input).unwrap());
        });
        println!(
            "{label:<28} wasm / native at p50: {:.2}",
            w.as_secs_f64() / n.as_secs_f64()
        );
    }
    // The same input to a plugin that does no work (it releases index 0):
    // what instantiating and copying 10,000 agendas in costs by itself.
    let transfer_only = runtime.compile(PluginKind::Scheduler, fixtures::FIRST_PENDING).unwrap();
    let input = backlog.input(10, "{}", &[]);
    group.bench_function("transfer-only/wasm", |b| {
        b.iter(|| {
            runtime
                .schedule(&transfer_only, InstanceFor::Tenant("bench"), black_box(&input))
                .unwrap()
        })
    });
    percentiles("transfer-only/wasm", 1_000, || {
        black_box(
            runtime
                .schedule(&transfer_only, InstanceFor::Tenant("bench"), &input)
                .unwrap(),
        );
    });
    group.finish();
}

fn overhead(c: &mut Criterion) {
    let runtime = bench_runtime();
    println!("\nallocator: {:?}", runtime.allocator());
    let mut group = c.benchmark_group("overhead");
    let empty = Backlog::new(3, 0);
    let input = empty.input(10, "{}", &[]);
    for name in ["FirstInFirstOut", "RoundRobin"] {
        let plugin = compile(&runtime, name);
        group.bench_function(format!("call-0-pending/{name}"), |b| {
            b.iter(|| {
                runtime
                    .schedule(&plugin, InstanceFor::Tenant("bench"), black_box(&input))
                    .unwrap()
            })
        });
        group.bench_function(format!("call-0-pending-fresh/{name}"), |b| {
            b.iter(|| {
                runtime
                    .schedule(&plugin, InstanceFor::Fresh, black_box(&input))
                    .unwrap()
            })
        });
        group.bench_function(format!("instantiate-only/{name}"), |b| {
            b.iter(|| runtime.probe(&plugin).unwrap())
        });
        percentiles(&format!("call-0-pending/{name}"), 1_000, || {
            black_box(runtime.schedule(&plugin, InstanceFor::Tenant("bench"), &input).unwrap());
        });
    }
    group.finish();
}

fn hot_swap(c: &mut Criterion) {
    let runtime = bench_runtime();
    let wasm = builtin("WeightedFair").unwrap().wasm;
    let cell = PluginCell::new();
    let mut group = c.benchmark_group("hot-swap");
    group.sample_size(10).measurement_time(Duration::from_secs(8));

    // Cold: bytes never seen, so Cranelift compiles them.
    let mut n = 0;
    group.bench_function("upload-cold", |b| {
        b.iter_batched(
            || {
                n += 1;
                unique_bytes(wasm, n)
            },
            |bytes| cell.activate(runtime.compile(PluginKind::Scheduler, &bytes).unwrap()),
            BatchSize::PerIteration,
        )
    });
    // Re-activating a version compiled before (a rollback).
    runtime.compile(PluginKind::Scheduler, wasm).unwrap();
    group.sample_size(50).measurement_time(Duration::from_secs(2));
    group.bench_function("upload-memory-cached", |b| {
        b.iter(|| cell.activate(runtime.compile(PluginKind::Scheduler, black_box(wasm)).unwrap()))
    });
    // After a restart: compiled artifact on disk, nothing in memory.
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    Runtime::new(config.clone())
        .unwrap()
        .compile(PluginKind::Scheduler, wasm)
        .unwrap();
    group.bench_function("upload-disk-cached", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let restarted = Runtime::new(config.clone()).unwrap();
                let start = Instant::now();
                let plugin = restarted.compile(PluginKind::Scheduler, wasm).unwrap();
                cell.activate(plugin);
                total += start.elapsed();
                cell.deactivate();
            }
            total
        })
    });
    // The fixture components are small; how long a cold upload of one takes.
    let start = Instant::now();
    runtime.compile(PluginKind::Scheduler, fixtures::FIRST_PENDING).unwrap();
    println!("\ncold compile of the first-pending fixture: {:?}", start.elapsed());
    group.finish();
}

fn visibility_1000(c: &mut Criterion) {
    let runtime = bench_runtime();
    let policy = compile(&runtime, "pop-visibility");
    let caller = Caller::new("user", ["acme".to_string(), "globex".to_string()], false);
    let owners = ["acme", "globex", "initech", "umbrella", "hooli"];
    let objects: Vec<types::ObjectSummary> = (0..1_000)
        .map(|i| types::ObjectSummary {
            kind: if i % 3 == 0 {
                types::ObjectKind::Insight
            } else {
                types::ObjectKind::Agenda
            },
            id: format!("object-{i}"),
            customer_id: owners[i % owners.len()].to_string(),
            is_global: i % 7 == 0,
            allowed_customer_ids: if i % 5 == 0 { vec!["acme".into()] } else { vec![] },
        })
        .collect();
    let wit_caller = types::Caller::from(&caller);
    let native = || -> Vec<bool> {
        objects
            .iter()
            .map(|o| {
                let kind = match o.kind {
                    types::ObjectKind::Insight => pop_core::ObjectKind::Insight,
                    _ => pop_core::ObjectKind::Agenda,
                };
                let allowed: Vec<serde_json::Value> = o
                    .allowed_customer_ids
                    .iter()
                    .map(|s| serde_json::Value::String(s.clone()))
                    .collect();
                let ownership = Ownership {
                    customer_id: Some(&o.customer_id),
                    is_global: o.is_global,
                    allowed_customer_ids: Some(&allowed),
                };
                can_read(&caller, ReadRule::for_kind(kind), ownership)
            })
            .collect()
    };
    assert_eq!(
        runtime
            .decide_visibility(&policy, InstanceFor::Tenant("bench"), &wit_caller, &objects)
            .unwrap(),
        native()
    );
    let mut group = c.benchmark_group("visibility-1000");
    group.bench_function("native", |b| b.iter(|| black_box(native())));
    group.bench_function("wasm", |b| {
        b.iter(|| {
            runtime
                .decide_visibility(&policy, InstanceFor::Tenant("bench"), &wit_caller, &objects)
                .unwrap()
        })
    });
    println!();
    percentiles("visibility-1000/wasm", 1_000, || {
        black_box(
            runtime
                .decide_visibility(&policy, InstanceFor::Tenant("bench"), &wit_caller, &objects)
                .unwrap(),
        );
    });
    group.finish();
}

/// The server's path: one owner's page of 1,000 stored agendas. `page` is
/// what the server does (documents straight into the page), `records` what
/// it did before (documents into 0.1.0 records, then into the page).
fn visibility_documents_1000(c: &mut Criterion) {
    let runtime = bench_runtime();
    let policy = compile(&runtime, "pop-visibility");
    let caller = Caller::new("user", ["globex".to_string()], false);
    let docs: Vec<serde_json::Map<String, serde_json::Value>> = (0..1_000)
        .map(|i| {
            let allowed: Vec<&str> = if i % 5 == 0 { vec!["globex"] } else { vec![] };
            let doc = serde_json::json!({"id": format!("agenda-{i:06}"), "customerId": "acme",
                "isGlobal": i % 7 == 0, "allowedCustomerIds": allowed, "title": "nightly transcode"});
            doc.as_object().unwrap().clone()
        })
        .collect();
    let wit_caller = types::Caller::from(&caller);
    let kind = pop_wasm::convert::object_kind(pop_core::ObjectKind::Agenda).unwrap();
    let native = || -> Vec<bool> {
        docs.iter()
            .map(|d| can_read_document(&caller, pop_core::ObjectKind::Agenda, d))
            .collect()
    };
    let page = || {
        let page = ObjectPage::from_documents(&docs);
        runtime
            .decide_visibility_page(&policy, InstanceFor::Tenant("bench"), &wit_caller, kind, &page)
            .unwrap()
    };
    let records = || {
        let records: Vec<types::ObjectSummary> = docs
            .iter()
            .map(|d| object_summary(pop_core::ObjectKind::Agenda, d).unwrap())
            .collect();
        runtime
            .decide_visibility(&policy, InstanceFor::Tenant("bench"), &wit_caller, &records)
            .unwrap()
    };
    assert_eq!(page(), native());
    assert_eq!(records(), native());
    let mut group = c.benchmark_group("visibility-documents-1000");
    group.bench_function("native", |b| b.iter(|| black_box(native())));
    group.bench_function("wasm-page", |b| b.iter(|| black_box(page())));
    group.bench_function("wasm-records", |b| b.iter(|| black_box(records())));
    println!();
    percentiles("visibility-documents/page", 1_000, || {
        black_box(page());
    });
    group.finish();
}

/// The same decisions under each [`Interruption`], interleaved in one run
/// so machine noise hits all three alike: the 10,000-agenda decisions, the
/// empty one (the fixed cost), and a spin loop's rate of fuel.
fn interruption(c: &mut Criterion) {
    let modes = [
        ("epoch", Interruption::Epoch),
        ("fuel", Interruption::Fuel),
        ("fuel+epoch", Interruption::FuelAndEpoch),
    ];
    let runtimes: Vec<(&str, Runtime)> = modes
        .iter()
        .map(|&(label, mode)| (label, runtime_bounded_by(mode)))
        .collect();
    let backlog = Backlog::new(100, 10_000);
    let empty = Backlog::new(3, 0);
    let weights = r#"{"weights":{"customer-000":4,"customer-001":2,"customer-002":0.5},"defaultWeight":1}"#;
    let cases: [(&str, &str, &str, &Backlog); 4] = [
        ("round-robin-10000", "RoundRobin", "{}", &backlog),
        ("weighted-fair-10000", "WeightedFair", weights, &backlog),
        ("priority-10000", "Priority", "{}", &backlog),
        ("round-robin-0-pending", "RoundRobin", "{}", &empty),
    ];
    let mut group = c.benchmark_group("interruption");
    println!();
    for (case, name, config, backlog) in cases {
        let plugins: Vec<Arc<CompiledPlugin>> = runtimes.iter().map(|(_, r)| compile(r, name)).collect();
        let state = runtimes[0]
            .1
            .schedule(
                &plugins[0],
                InstanceFor::Tenant("bench"),
                &backlog.input(10, config, &[]),
            )
            .unwrap()
            .state;
        let input = backlog.input(10, config, &state);
        for ((label, runtime), plugin) in runtimes.iter().zip(&plugins) {
            group.bench_function(format!("{case}/{label}"), |b| {
                b.iter(|| {
                    runtime
                        .schedule(plugin, InstanceFor::Tenant("bench"), black_box(&input))
                        .unwrap()
                })
            });
        }
        // Percentiles with the three interleaved call by call.
        let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(2_000); runtimes.len()];
        for round in 0..2_200 {
            for (i, ((_, runtime), plugin)) in runtimes.iter().zip(&plugins).enumerate() {
                let start = Instant::now();
                black_box(runtime.schedule(plugin, InstanceFor::Tenant("bench"), &input).unwrap());
                if round >= 200 {
                    times[i].push(start.elapsed());
                }
            }
        }
        let p50 = |t: &mut Vec<Duration>| {
            t.sort();
            (t[t.len() / 2], t[t.len() * 99 / 100])
        };
        let (base, _) = p50(&mut times[0].clone());
        for (i, (label, _)) in runtimes.iter().enumerate() {
            let (median, p99) = p50(&mut times[i]);
            println!(
                "{:<36} p50 {median:>9.1?}  p99 {p99:>9.1?}  ({:.2} x epoch)",
                format!("{case}/{label}"),
                median.as_secs_f64() / base.as_secs_f64()
            );
        }
    }
    // How fast a tight loop burns its budget: the budget's meaning in time.
    let (label, runtime) = &runtimes[1];
    let spin = runtime.compile(PluginKind::Scheduler, fixtures::SPIN).unwrap();
    let input = empty.input(1, "{}", &[]);
    let start = Instant::now();
    let failure = runtime.schedule(&spin, InstanceFor::Fresh, &input).unwrap_err();
    let took = start.elapsed();
    let budget = runtime.limits().fuel.scheduler;
    println!(
        "spin ({label}): {failure} after {took:.1?}: {:.1} units per ns",
        budget as f64 / took.as_nanos() as f64
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = decide_10000, overhead, hot_swap, visibility_1000, visibility_documents_1000, interruption
}
criterion_main!(benches);
