//! Compiled plugins are cached: in memory by content hash and kind, and on
//! disk (when `cache_dir` is set) as native artifacts a new runtime loads
//! without compiling.

mod common;

use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backlog, Rng};
use pop_builtin_plugins::builtin;
use pop_wasm::{InstanceFor, Limits, Origin, PluginKind, Runtime, RuntimeConfig, WASMTIME_VERSION, sha256_hex};

/// A runtime keeping compiled components in `dir`, with a deadline that a
/// loaded CI machine cannot miss (these tests are about the cache).
fn runtime_in(dir: &std::path::Path) -> Runtime {
    let limits = Limits {
        deadline: Duration::from_secs(2),
        ..Limits::default()
    };
    let config = RuntimeConfig {
        limits,
        cache_dir: Some(dir.to_path_buf()),
        ..RuntimeConfig::default()
    };
    Runtime::new(config).expect("runtime")
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

#[test]
fn compiling_the_same_bytes_twice_is_a_cache_hit() {
    let runtime = common::runtime();
    let wasm = builtin("WeightedFair").unwrap().wasm;
    let (first, cold) = timed(|| runtime.compile(PluginKind::Scheduler, wasm).unwrap());
    let (second, warm) = timed(|| runtime.compile(PluginKind::Scheduler, wasm).unwrap());
    println!("cold compile {cold:?}, cached {warm:?}");
    // A hit is the same compiled plugin (no timing asserted: the figures
    // are in the README, and a busy machine would make a ratio flaky).
    assert!(Arc::ptr_eq(&first, &second), "the same compiled plugin is handed out");
    assert_eq!(first.sha256(), sha256_hex(wasm));
    assert_eq!(
        (first.kind(), first.origin()),
        (PluginKind::Scheduler, Origin::Compiled)
    );
    assert!(runtime.cached(PluginKind::Scheduler, first.sha256()).is_some());
    assert!(runtime.cached(PluginKind::Handler, first.sha256()).is_none());
}

#[test]
fn a_new_runtime_loads_compiled_components_from_the_cache_dir() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = builtin("RoundRobin").unwrap().wasm;
    let sha256 = sha256_hex(wasm);

    let (cold, cold_time) = {
        let runtime = runtime_in(dir.path());
        timed(|| runtime.compile(PluginKind::Scheduler, wasm).unwrap())
    };
    assert_eq!(cold.origin(), Origin::Compiled);
    let files: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with(&format!("{sha256}-{WASMTIME_VERSION}-")) && files[0].ends_with(".cwasm"));

    // "Restart": a new runtime, same directory.
    let runtime = runtime_in(dir.path());
    let (loaded, load_time) = timed(|| runtime.compile(PluginKind::Scheduler, wasm).unwrap());
    println!("cold compile {cold_time:?}, load from cache_dir {load_time:?}");
    // Loaded, not compiled: the origin says so, whatever the timings.
    assert_eq!(loaded.origin(), Origin::DiskCache);
    // And it runs, with the same answers.
    let backlog = Backlog::random(&mut Rng::new(8), 6, 60);
    let input = backlog.input(4, "{}", &[]);
    assert_eq!(
        runtime.schedule(&loaded, InstanceFor::Tenant("acme"), &input).unwrap(),
        pop_core::scheduling::round_robin(&input).unwrap()
    );
}

#[test]
fn a_damaged_artifact_is_discarded_and_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = builtin("Priority").unwrap().wasm;
    runtime_in(dir.path()).compile(PluginKind::Scheduler, wasm).unwrap();
    let path = fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    let mut bytes = fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&path, &bytes).unwrap();

    let runtime = runtime_in(dir.path());
    let plugin = runtime.compile(PluginKind::Scheduler, wasm).unwrap();
    assert_eq!(plugin.origin(), Origin::Compiled, "the damaged file was not loaded");
    // The recompiled artifact replaced it.
    assert_eq!(
        runtime_in(dir.path())
            .compile(PluginKind::Scheduler, wasm)
            .unwrap()
            .origin(),
        Origin::DiskCache
    );
}

#[test]
fn a_failed_compile_is_not_cached_and_kinds_are_cached_apart() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime_in(dir.path());
    let wasm = builtin("pop-visibility").unwrap().wasm;
    // Wrong kind first: an error, and the component still lands on disk.
    assert!(runtime.compile(PluginKind::Scheduler, wasm).is_err());
    assert!(runtime.compile(PluginKind::Scheduler, wasm).is_err());
    let policy = runtime.compile(PluginKind::VisibilityPolicy, wasm).unwrap();
    assert_eq!(
        policy.origin(),
        Origin::DiskCache,
        "compiled once, whatever kind was asked for"
    );
}
