//! The one wasmtime [`Engine`] of a runtime and the thread that drives its
//! epoch (the wall-clock backstop).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::limits::Limits;

/// Native stack a guest may use before it traps with `StackOverflow`.
///
/// Calls run on the caller's thread (no async fibers), so this must stay well
/// below the smallest thread stack a caller uses: Rust's default of 2 MiB
/// for spawned threads, including tokio's blocking pool.
pub const MAX_WASM_STACK: usize = 512 << 10;

/// Memory (and table) bytes a pooled slot keeps mapped after its instance
/// is dropped (see `pool`).
const KEEP_RESIDENT: usize = 0;

/// How instances get their memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// Pre-reserved slots: instantiation is a few µs cheaper and memory is
    /// capped by the slot size as well as by the store limiter.
    Pooling,
    /// `mmap` per instance; used when the pool cannot be reserved (for
    /// example under a low `ulimit -v`).
    OnDemand,
}

/// Build the engine: component model, fuel and/or epoch interruption (see
/// [`crate::Interruption`]), bounded wasm stack, and the pooling allocator
/// when this machine can reserve it.
pub(crate) fn build(limits: &Limits) -> Result<(Engine, Allocator), wasmtime::Error> {
    let mut config = base_config(limits);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(limits)));
    match Engine::new(&config) {
        Ok(engine) => Ok((engine, Allocator::Pooling)),
        Err(pool_error) => {
            tracing::warn!(error = %pool_error, "pooling allocator unavailable; using on-demand allocation");
            Ok((Engine::new(&base_config(limits))?, Allocator::OnDemand))
        }
    }
}

fn base_config(limits: &Limits) -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        // The instruction budget: compiled code counts the instructions of
        // each basic block and checks the count at function entries and
        // loop back-edges; bulk memory instructions pay per byte (wasmtime's
        // default operator costs), so one `memory.fill` cannot outrun it.
        .consume_fuel(limits.interruption.fuel())
        // The wall clock: compiled code compares the epoch at the same
        // places; the ticker below advances it.
        .epoch_interruption(limits.interruption.epoch())
        .max_wasm_stack(MAX_WASM_STACK);
    config
}

/// Pool sizes derived from the limits. Each memory slot reserves address
/// space (4 GiB + guard, so bounds checks stay free), not RAM.
fn pool(limits: &Limits) -> PoolingAllocationConfig {
    // Warm instances keep their slots while idle: room for them on top.
    let warm = u32::try_from(limits.warm_instances).unwrap_or(u32::MAX);
    let calls = limits.concurrent_calls.max(1).saturating_add(warm);
    let per_call = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(calls)
        // A Rust wasip2 component is a main module plus a few shim modules,
        // and almost always one memory.
        .total_core_instances(calls.saturating_mul(8))
        .total_memories(calls.saturating_mul(2))
        .total_tables(calls.saturating_mul(4))
        .max_core_instances_per_component(per_call(limits.instances))
        .max_memories_per_component(per_call(limits.memories))
        .max_tables_per_component(per_call(limits.tables))
        .max_memory_size(limits.memory_bytes)
        .table_elements(limits.table_elements);
    // Nothing is kept resident when a slot is freed: the big decisions
    // run on warm instances, whose memory stays mapped anyway, and
    // resetting kept-resident pages in place (memset of every dirty page)
    // doubled the cost of a fresh instantiation (12 -> 22 us) to save page
    // faults that only the rare fresh call pays now.
    pool.linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT);
    pool
}

/// Advances the engine epoch every tick until dropped. Deadlines are
/// counted in these ticks, so a guest that never returns is interrupted
/// without the host having to watch it.
pub(crate) struct EpochTicker {
    // Dropping the sender wakes the thread at once and ends it.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pop-wasm-epoch".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
