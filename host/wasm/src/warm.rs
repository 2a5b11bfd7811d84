//! Warm instances: a plugin's instance kept between calls of one tenant.
//!
//! A fresh store and instance per call cost more than the empty decision
//! itself (instantiation, then page faults as the guest's heap is touched
//! again). So after a call that succeeded, its store goes back to a small
//! pool, keyed by the compiled plugin *and* the tenant the call was made
//! for, and the next call with the same key runs on it.
//!
//! What keeps this as safe as a fresh instance:
//!
//! * Guest globals and heap survive between calls, so a warm instance is
//!   only ever reused for the same tenant: a global plugin (the built-ins)
//!   has one warm instance per tenant, never a shared one.
//! * Any failure (trap, deadline, out of memory, refusal, an answer that
//!   breaks the contract) drops the instance: only a [`Lease`] that the
//!   caller explicitly [`Lease::keep`]s after checking the answer returns.
//! * Each call re-arms the instruction budget, the deadline and the
//!   transfer limit and clears the limiter's "denied" flag; the limiter's
//!   caps are absolute sizes, so the memory an instance already holds
//!   counts against them.
//! * An instance retires after [`MAX_USES`] calls, so nothing a guest
//!   leaks slowly (heap fragmentation, WASI resource handles in the host's
//!   table) grows without bound; one whose memory grew past
//!   [`MAX_IDLE_MEMORY`] is not kept at all.
//! * The pool is bounded ([`crate::Limits::warm_instances`]); the least
//!   recently used instance is dropped to make room. A new version of a
//!   plugin is a new [`CompiledPlugin`] with its own id, so a swap never
//!   runs the old version's instance, which ages out.
//!
//! Two concurrent calls with the same key do not wait for each other: one
//! takes the warm instance, the other instantiates a fresh one; when both
//! come back, only one is kept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use wasmtime::Store;
use wasmtime::component::Instance;

use crate::bindings::v0_1::{insight_matcher, visibility_policy};
use crate::error::{PluginFailure, classify};
use crate::limits::Budget;
use crate::state::{CallState, arm};

/// Calls one warm instance serves before it is replaced by a fresh one.
pub(crate) const MAX_USES: u32 = 1_000;

/// Largest linear memory an idle warm instance may keep. A 10,000-agenda
/// decision needs about 2 MiB; an instance that grew past this (up to the
/// per-call cap) is dropped after its call instead of holding that memory
/// while idle.
pub(crate) const MAX_IDLE_MEMORY: usize = 16 << 20;

/// Which instance a call runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceFor<'a> {
    /// A fresh instance, dropped after the call: for one-off calls such as
    /// the smoke test of an upload.
    Fresh,
    /// A warm instance kept for this tenant (the owner of the insight,
    /// customer or policy the call decides for). Calls for other tenants
    /// never see it.
    Tenant(&'a str),
}

/// The instance handles a warm store can hold, one per world that reuses
/// instances (handlers always run fresh).
pub(crate) enum Handle {
    /// A component called through export indices of its own (schedulers,
    /// 0.2.0 visibility policies).
    Component(Instance),
    InsightMatcher(insight_matcher::InsightMatcher),
    VisibilityPolicy(visibility_policy::VisibilityPolicy),
}

/// A world's instance handle, convertible to and from [`Handle`].
pub(crate) trait Warm: Sized {
    fn wrap(self) -> Handle;
    fn unwrap(handle: Handle) -> Option<Self>;
}

impl Warm for Instance {
    fn wrap(self) -> Handle {
        Handle::Component(self)
    }
    fn unwrap(handle: Handle) -> Option<Self> {
        match handle {
            Handle::Component(instance) => Some(instance),
            _ => None,
        }
    }
}

impl Warm for insight_matcher::InsightMatcher {
    fn wrap(self) -> Handle {
        Handle::InsightMatcher(self)
    }
    fn unwrap(handle: Handle) -> Option<Self> {
        match handle {
            Handle::InsightMatcher(instance) => Some(instance),
            _ => None,
        }
    }
}

impl Warm for visibility_policy::VisibilityPolicy {
    fn wrap(self) -> Handle {
        Handle::VisibilityPolicy(self)
    }
    fn unwrap(handle: Handle) -> Option<Self> {
        match handle {
            Handle::VisibilityPolicy(instance) => Some(instance),
            _ => None,
        }
    }
}

/// A unique id for every compiled plugin of the process: the plugin half of
/// a warm key (a recompiled plugin is a different one).
pub(crate) fn next_plugin_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// An idle warm instance.
struct Entry {
    plugin: u64,
    tenant: Box<str>,
    /// When it was last returned, in [`WarmPool::clock`] ticks (for LRU).
    returned: u64,
    store: Store<CallState>,
    handle: Handle,
    uses: u32,
}

/// The idle warm instances of a runtime, at most `capacity` of them.
pub(crate) struct WarmPool {
    capacity: usize,
    entries: Mutex<Vec<Entry>>,
    clock: AtomicU64,
}

impl WarmPool {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(Vec::with_capacity(capacity)),
            clock: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // An entry is pushed or removed whole; a panic elsewhere while the
        // lock was held cannot leave a half-made one.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Take the idle instance of this key, if there is one.
    fn take<P: Warm>(&self, plugin: u64, tenant: &str) -> Option<(Store<CallState>, P, u32)> {
        let entry = {
            let mut entries = self.lock();
            let at = entries
                .iter()
                .position(|e| e.plugin == plugin && &*e.tenant == tenant)?;
            entries.swap_remove(at)
        };
        let Entry {
            store, handle, uses, ..
        } = entry;
        // A key is only ever filled by the same world's calls; a mismatch
        // would be a bug, and a fresh instance is the safe answer to it.
        P::unwrap(handle).map(|instance| (store, instance, uses))
    }

    /// Return an instance after a successful call.
    fn put(&self, plugin: u64, tenant: &str, store: Store<CallState>, handle: Handle, uses: u32) {
        if self.capacity == 0 {
            return;
        }
        let entry = Entry {
            plugin,
            tenant: tenant.into(),
            returned: self.clock.fetch_add(1, Ordering::Relaxed),
            store,
            handle,
            uses,
        };
        // Stores are dropped after the lock is released: giving an
        // instance's memory back to the allocator is not free.
        let dropped = {
            let mut entries = self.lock();
            if entries.iter().any(|e| e.plugin == plugin && &*e.tenant == tenant) {
                // A concurrent call of the same key came back first.
                Some(entry)
            } else {
                let evicted = if entries.len() >= self.capacity {
                    let oldest = entries
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, e)| e.returned)
                        .map(|(at, _)| at);
                    oldest.map(|at| entries.swap_remove(at))
                } else {
                    None
                };
                entries.push(entry);
                evicted
            }
        };
        drop(dropped);
    }

    /// How many idle instances are kept (for tests and metrics).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// One call's store and instance, warm or fresh. Dropped (with the
/// instance) unless [`Lease::keep`] is called after a successful call.
pub(crate) struct Lease<'p, P: Warm> {
    pool: &'p WarmPool,
    /// Where the instructions each call executes are added up.
    meter: &'p AtomicU64,
    /// What of the budget is already on the meter: a lease may call the
    /// guest more than once (a 0.2.0 policy, one page per kind) within one
    /// budget.
    metered: u64,
    /// `(plugin id, tenant)` when the instance may be kept.
    key: Option<(u64, &'p str)>,
    store: Store<CallState>,
    instance: P,
    uses: u32,
    budget: Budget,
}

impl<'p, P: Warm> Lease<'p, P> {
    /// The warm instance of `(plugin, on)` or a fresh one from `fresh`
    /// (which creates the store armed with `budget` and instantiates; its
    /// failure is the call's failure), armed with `budget` for the call.
    pub(crate) fn acquire(
        pool: &'p WarmPool,
        meter: &'p AtomicU64,
        plugin: u64,
        on: InstanceFor<'p>,
        budget: Budget,
        fresh: impl FnOnce() -> Result<(Store<CallState>, P), PluginFailure>,
    ) -> Result<Self, PluginFailure> {
        let key = match on {
            InstanceFor::Fresh => None,
            InstanceFor::Tenant(tenant) => Some((plugin, tenant)),
        };
        let (mut store, instance, uses) = match key.and_then(|(plugin, tenant)| pool.take::<P>(plugin, tenant)) {
            Some(warm) => warm,
            None => {
                let (store, instance) = fresh()?;
                (store, instance, 0)
            }
        };
        // Per-call limits, from now: the whole instruction budget (a fresh
        // instance spent some on instantiating), a new deadline and a clean
        // record of denied growth.
        arm(&mut store, &budget);
        Ok(Self {
            pool,
            meter,
            metered: 0,
            key,
            store,
            instance,
            uses,
            budget,
        })
    }

    /// Call the guest, classifying any failure. After a failure the lease
    /// can no longer be kept (the instance may be mid-way through anything).
    pub(crate) fn call<R>(
        &mut self,
        call: impl FnOnce(&P, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginFailure> {
        self.uses = self.uses.saturating_add(1);
        let result = call(&self.instance, &mut self.store);
        let spent = spent(&self.store, &self.budget);
        self.meter
            .fetch_add(spent.saturating_sub(self.metered), Ordering::Relaxed);
        self.metered = spent;
        match result {
            Ok(answer) => Ok(answer),
            Err(error) => {
                self.key = None;
                Err(classify(&error, self.store.data().limiter.denied, false, &self.budget))
            }
        }
    }

    /// The call succeeded and its answer passed the contract checks: keep
    /// the instance for the next call of the same key (unless it was a
    /// fresh-only call, has served its [`MAX_USES`] or holds more than
    /// [`MAX_IDLE_MEMORY`]).
    pub(crate) fn keep(self) {
        if let Some((plugin, tenant)) = self.key
            && self.uses < MAX_USES
            && self.store.data().limiter.largest_memory <= MAX_IDLE_MEMORY
        {
            self.pool
                .put(plugin, tenant, self.store, self.instance.wrap(), self.uses);
        }
    }
}

/// The instructions `store` executed since it was armed with `budget` (0
/// when fuel is off).
pub(crate) fn spent(store: &Store<CallState>, budget: &Budget) -> u64 {
    match (budget.fuel, store.get_fuel()) {
        (Some(budget), Ok(left)) => budget.saturating_sub(left),
        _ => 0,
    }
}
