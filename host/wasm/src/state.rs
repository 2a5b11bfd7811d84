//! What a store holds during one call: an empty WASI context, the limiter
//! that remembers denied growth, and (for handlers) the progress callback.

use std::ptr::NonNull;
use std::time::Duration;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{v0_1, v0_2};
use crate::limits::{Budget, Limits};

/// Longest progress message passed on to the host; a plugin cannot make the
/// host store megabytes per report.
const MAX_PROGRESS_MESSAGE: usize = 1024;

/// WASI resources (streams, pollables) a store may hold at once. A plugin
/// without files or sockets needs a handful; the cap keeps a guest that
/// leaks handles (wasmtime's default allows a million) from growing host
/// memory, across the calls of a warm instance too.
const MAX_RESOURCES: usize = 4096;

/// The data of one call's store. Dropped with the store when the call ends.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    progress: Option<ProgressSink>,
    /// When the current call's deadline passes: `timer.sleep` never sleeps
    /// beyond it (the epoch check after the sleep then ends the call).
    pub(crate) deadline_at: Option<std::time::Instant>,
}

impl CallState {
    pub(crate) fn new(limits: &Limits) -> Self {
        // wasip2 guests import WASI even when they do no I/O (std's HashMap
        // seeds from `wasi:random`, panics print to stderr), so they get a
        // context with nothing in it: no args, env, preopens, stdin; stdout
        // and stderr discard; sockets deny every address and name lookup;
        // clocks are frozen so a decision depends on its input only.
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        Self {
            wasi,
            table,
            limiter: Limiter::new(limits),
            progress: None,
            deadline_at: None,
        }
    }

    /// Route `report-progress` to `callback` for the rest of this store's life.
    ///
    /// # Safety
    /// `callback` must outlive the store holding this state. The runtime
    /// guarantees it by creating and dropping the store inside the function
    /// that borrows the callback, on one thread.
    pub(crate) unsafe fn set_progress(&mut self, callback: &mut dyn FnMut(f64, &str)) {
        // Erase the borrow's lifetime: `Store<T>` needs `T: 'static`, and the
        // callback only has to live for the call (see the safety contract).
        let callback: &mut (dyn FnMut(f64, &str) + 'static) = unsafe { std::mem::transmute(callback) };
        self.progress = Some(ProgressSink(NonNull::from(callback)));
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl v0_1::types::Host for CallState {}

impl v0_1::progress::Host for CallState {
    fn report_progress(&mut self, percent: f64, message: String) {
        let Some(sink) = &mut self.progress else { return };
        if !percent.is_finite() {
            return;
        }
        let mut end = message.len().min(MAX_PROGRESS_MESSAGE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        // SAFETY: set_progress's contract: the callback outlives this store.
        let callback = unsafe { sink.0.as_mut() };
        callback(percent.clamp(0.0, 100.0), &message[..end]);
    }
}

impl v0_1::timer::Host for CallState {
    fn sleep(&mut self, milliseconds: u64) -> wasmtime::Result<()> {
        let wanted = Duration::from_millis(milliseconds);
        let left = self
            .deadline_at
            .map_or(wanted, |at| at.saturating_duration_since(std::time::Instant::now()));
        // Handlers run on a blocking thread of their own, so sleeping here
        // holds no one else up.
        std::thread::sleep(wanted.min(left));
        if wanted > left {
            // The epoch ticker may lag the wall clock a little; a sleep that
            // reaches the deadline is a timeout now, like an epoch trap.
            return Err(wasmtime::Trap::Interrupt.into());
        }
        Ok(())
    }
}

// 0.2.0 left these imports as they were: the same host functions serve both.
impl v0_2::types::Host for CallState {}

impl v0_2::progress::Host for CallState {
    fn report_progress(&mut self, percent: f64, message: String) {
        v0_1::progress::Host::report_progress(self, percent, message);
    }
}

impl v0_2::timer::Host for CallState {
    fn sleep(&mut self, milliseconds: u64) -> wasmtime::Result<()> {
        v0_1::timer::Host::sleep(self, milliseconds)
    }
}

/// The host's `report-progress` callback: percent, message.
type ProgressFn = dyn FnMut(f64, &str);

/// A borrowed progress callback with its lifetime erased (see
/// [`CallState::set_progress`]).
struct ProgressSink(NonNull<ProgressFn>);

// SAFETY: the store holding the sink never leaves the thread that created
// it; `Send` is only required because `WasiView: Send`.
unsafe impl Send for ProgressSink {}

/// [`StoreLimits`] that also remembers whether it refused to grow a memory
/// or table, so an allocation failure can be reported as `OutOfMemory`: a
/// Rust guest that cannot allocate aborts with `unreachable`, which by
/// itself looks like any other bug.
pub(crate) struct Limiter {
    limits: StoreLimits,
    pub(crate) denied: bool,
    /// The largest linear memory granted so far, in bytes: how much a warm
    /// instance would keep resident while idle.
    pub(crate) largest_memory: usize,
}

impl Limiter {
    fn new(limits: &Limits) -> Self {
        let limits = StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .table_elements(limits.table_elements)
            .instances(limits.instances)
            .tables(limits.tables)
            .memories(limits.memories)
            .build();
        Self {
            limits,
            denied: false,
            largest_memory: 0,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        self.denied |= !allowed;
        if allowed {
            self.largest_memory = self.largest_memory.max(desired);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // Allowed by us but refused by the allocator (pool slot or mmap).
        self.denied = true;
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.limits.table_growing(current, desired, maximum)?;
        self.denied |= !allowed;
        Ok(allowed)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.denied = true;
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// A clock that always reads zero: plugins get time from their input
/// (`now-ms`), never from the host.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

/// Replacement for `wasi:clocks/monotonic-clock` whose timers are ready at
/// once.
///
/// Epoch deadlines only interrupt wasm code, not a host call: with the
/// stock implementation a guest calling `std::thread::sleep(1h)` would block
/// the host thread for an hour inside `wasi:io/poll`. Here a sleep returns
/// immediately; a guest that waits in a loop for time to pass spins in wasm,
/// where its deadline stops it.
pub(crate) struct NoWaitClock<'a> {
    pub(crate) table: &'a mut ResourceTable,
}

pub(crate) struct NoWait;

impl wasmtime::component::HasData for NoWait {
    type Data<'a> = NoWaitClock<'a>;
}

impl NoWaitClock<'_> {
    fn ready(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let ready = self.table.push(Ready)?;
        subscribe(self.table, ready)
    }
}

impl monotonic_clock::Host for NoWaitClock<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(HostMonotonicClock::now(&FrozenClock))
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(HostMonotonicClock::resolution(&FrozenClock))
    }

    fn subscribe_instant(&mut self, _when: monotonic_clock::Instant) -> wasmtime::Result<Resource<DynPollable>> {
        self.ready()
    }

    fn subscribe_duration(&mut self, _for: monotonic_clock::Duration) -> wasmtime::Result<Resource<DynPollable>> {
        self.ready()
    }
}

/// A pollable that is always ready.
struct Ready;

#[wasmtime_wasi::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

/// The accessor `add_to_linker` needs for [`NoWait`].
pub(crate) fn no_wait_clock(state: &mut CallState) -> NoWaitClock<'_> {
    NoWaitClock {
        table: &mut state.table,
    }
}

/// Give `store` everything one call may use, from now: its instruction
/// budget, its wall-clock deadline, its transfer limit, and a clean record
/// of denied growth (the memory caps themselves are absolute sizes). Done
/// before instantiating and again before the call itself, so a call has
/// its whole budget whether it runs on a fresh instance or a warm one.
pub(crate) fn arm(store: &mut wasmtime::Store<CallState>, budget: &Budget) {
    if let Some(fuel) = budget.fuel {
        // Fails only when the engine does not consume fuel, which is
        // exactly when `budget.fuel` is None.
        let _ = store.set_fuel(fuel);
    }
    if let Some(ticks) = budget.epoch_ticks {
        store.set_epoch_deadline(ticks);
    }
    // Checked by wasmtime before it copies a list or string out of the
    // guest: an answer over the limit is refused without being copied.
    store.set_hostcall_fuel(budget.output.bytes());
    let state = store.data_mut();
    // None: a deadline too far away to represent is no deadline.
    state.deadline_at = std::time::Instant::now().checked_add(budget.wall);
    state.limiter.denied = false;
}
