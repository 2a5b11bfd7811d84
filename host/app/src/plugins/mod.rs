//! Tenant plugins in the server: the registry of uploaded versions and
//! which one is active per slot (`registry`), the built-ins shipped as wasm
//! (`builtins`), and the decisions that run through them with fallback
//! (`scheduling`, `matching`, `visibility`), failures being recorded where
//! the plugin's owner sees them (`failures`), and a version that keeps
//! failing for a tenant skipped for a while (`breaker`).
//!
//! A *slot* is `<owner>:<kind>:<name>`: the named plugin of one customer (or
//! of `pop`, the built-ins). Each slot is a [`PluginCell`]: activation is an
//! atomic swap, calls in flight finish on the version they started with.

pub mod breaker;
mod builtins;
mod failures;
mod handlers;
mod matching;
mod metrics;
mod registry;
mod scheduling;
mod smoke;
pub mod upload;
mod visibility;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use pop_core::PluginKind;
use pop_ports::{BlobStore, Store};
use pop_wasm::{AnsweredBy, CompiledPlugin, PluginCell, PluginFailure, Runtime};

pub use metrics::{Answerer, PluginMetrics};
pub use registry::Registry;

use breaker::{BreakerPolicy, BreakerView, Breakers, Guarded};
use failures::FailureLog;
use pop_ports::Clock;

/// Owner of the built-in plugins.
pub const BUILTIN_OWNER: &str = "pop";

/// One named plugin of one owner, and the version labels of what it ran.
pub struct Slot {
    pub id: String,
    pub kind: PluginKind,
    pub owner: String,
    pub name: String,
    pub is_global: bool,
    pub cell: PluginCell,
    /// sha256 → version, to say which version answered.
    versions: RwLock<HashMap<String, String>>,
}

impl Slot {
    fn new(owner: &str, kind: PluginKind, name: &str, is_global: bool) -> Self {
        Self {
            id: pop_core::PluginVersion::slot_id(owner, kind, name),
            kind,
            owner: owner.to_string(),
            name: name.to_string(),
            is_global,
            cell: PluginCell::new(),
            versions: RwLock::new(HashMap::new()),
        }
    }

    /// Make `plugin` (version `version`) the one that answers.
    pub fn activate(&self, version: &str, plugin: Arc<CompiledPlugin>) {
        self.versions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(plugin.sha256().to_string(), version.into());
        self.cell.activate(plugin);
    }

    /// `<slot>@<version>` of a plugin this slot ran.
    pub fn label(&self, plugin: &CompiledPlugin) -> String {
        let versions = self.versions.read().unwrap_or_else(|e| e.into_inner());
        let version = versions.get(plugin.sha256()).map(String::as_str).unwrap_or("unknown");
        format!("{}@{version}", self.id)
    }

    /// Who answered, as a label: a version of this slot, or `native:<fallback>`.
    pub fn answered_label(&self, by: &AnsweredBy, native: &str) -> String {
        match by.plugin() {
            Some(plugin) => self.label(plugin),
            None => format!("native:{native}"),
        }
    }
}

/// The plugins of this server.
pub struct PluginHost {
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    slots: RwLock<HashMap<String, Arc<Slot>>>,
    /// Customers with a visibility policy: their objects are offered to
    /// the policy even where POP's rules would hide them.
    policy_owners: ArcSwap<HashSet<String>>,
    failures: FailureLog,
    metrics: PluginMetrics,
    /// Per (version, tenant): versions that keep failing are skipped.
    breakers: Arc<Breakers>,
    /// Where record times and breaker backoffs come from.
    clock: Arc<dyn Clock>,
}

impl PluginHost {
    /// Register the built-ins and re-activate every persisted active version.
    pub async fn start(
        runtime: Arc<Runtime>,
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, crate::error::AppError> {
        Self::start_with_policy(runtime, store, blobs, clock, BreakerPolicy::default()).await
    }

    /// [`Self::start`] with the breakers' policy chosen.
    pub async fn start_with_policy(
        runtime: Arc<Runtime>,
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
        policy: BreakerPolicy,
    ) -> Result<Arc<Self>, crate::error::AppError> {
        let host = Arc::new(Self {
            runtime,
            failures: FailureLog::new(store.clone(), clock.clone()),
            store,
            blobs,
            slots: RwLock::new(HashMap::new()),
            policy_owners: ArcSwap::from_pointee(HashSet::new()),
            metrics: PluginMetrics::default(),
            breakers: Arc::new(Breakers::new(clock.clone(), policy)),
            clock,
        });
        builtins::register(&host).await?;
        host.registry().restore().await?;
        host.refresh_policy_owners().await?;
        Ok(host)
    }

    /// Now, on the host's clock.
    pub fn now_millis(&self) -> pop_core::EpochMillis {
        self.clock.now_millis()
    }

    pub fn registry(&self) -> Registry<'_> {
        Registry::new(self)
    }

    /// Everything `GET /pop/metrics` shows: the counters, and the breakers
    /// not closed right now.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(&self.breakers.not_closed())
    }

    /// The breaker of version `version_id` as `caller` may see it: the
    /// worst of the breakers of the tenants the caller owns (a global
    /// plugin has one per tenant using it; other tenants' are not shown).
    pub fn breaker_view(&self, caller: &pop_core::visibility::Caller, version_id: &str) -> BreakerView {
        self.breakers
            .views(version_id)
            .into_iter()
            .filter(|(tenant, _)| caller.owns(Some(tenant)))
            .fold(BreakerView::CLOSED, |worst, (_, view)| worst.worse(view))
    }

    /// Count a guarded call (see [`breaker::call`]) of a `kind` plugin:
    /// who answered, the failures of the versions called, the versions
    /// skipped and the breakers it opened.
    fn account_guarded<R>(&self, kind: PluginKind, tenant: &str, guarded: &Guarded<R>, elapsed: Duration) {
        self.account(kind, Answerer::from(&guarded.answer.by), elapsed, &guarded.failures);
        self.metrics.skipped(kind, guarded.skipped);
        for (version, until) in &guarded.opened {
            self.metrics.tripped(kind);
            tracing::warn!(
                plugin = version,
                tenant,
                open_until = until,
                "plugin keeps failing for this tenant; skipping it until then"
            );
        }
    }

    /// Count one call of a `kind` plugin, answered by `by` after `elapsed`,
    /// and record the failures of the versions tried before the answer
    /// (log, counter, diagnostic on the version's record).
    fn account(&self, kind: PluginKind, by: Answerer, elapsed: Duration, failures: &[(String, PluginFailure)]) {
        self.metrics.answered(kind, by, elapsed);
        for (version, failure) in failures {
            self.record_failure(kind, version, failure);
        }
    }

    fn record_failure(&self, kind: PluginKind, version: &str, failure: &PluginFailure) {
        self.metrics.failed(kind, failure);
        self.failures.record(version, failure);
    }

    fn slot(&self, id: &str) -> Option<Arc<Slot>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    fn slot_or_insert(&self, owner: &str, kind: PluginKind, name: &str, is_global: bool) -> Arc<Slot> {
        let id = pop_core::PluginVersion::slot_id(owner, kind, name);
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        slots
            .entry(id)
            .or_insert_with(|| Arc::new(Slot::new(owner, kind, name, is_global)))
            .clone()
    }

    /// The slot a name resolves to for `owner`: the owner's own plugin, else
    /// a global one (tenants' before the built-ins).
    pub fn resolve(&self, owner: &str, kind: PluginKind, name: &str) -> Option<Arc<Slot>> {
        if let Some(own) = self.slot(&pop_core::PluginVersion::slot_id(owner, kind, name))
            && own.cell.active().is_some()
        {
            return Some(own);
        }
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        let mut global: Vec<&Arc<Slot>> = slots
            .values()
            .filter(|s| s.is_global && s.kind == kind && s.name == name && s.cell.active().is_some())
            .collect();
        global.sort_by_key(|s| (s.owner == BUILTIN_OWNER, s.id.clone()));
        global.first().map(|s| Arc::clone(s))
    }
}
