//! [`Runtime`]: the engine, the linkers, the compiled-plugin caches and the
//! epoch ticker, and turning uploaded bytes into a [`CompiledPlugin`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::component::Component;
use wasmtime::{Engine, Store};

use crate::bindings::v0_1::{handler, insight_matcher, visibility_policy};
use crate::bindings::{v0_1, v0_2};
use crate::cache::{DiskCache, sha256_hex};
use crate::engine::{self, Allocator, EpochTicker};
use crate::error::PluginError;
use crate::format::check_component;
use crate::limits::{Budget, Limits, RuntimeConfig};
use crate::linker::Linkers;
use crate::plugin::{Bound, CompiledPlugin, Contract, Origin, PluginKind};
use crate::state::{CallState, arm};
use crate::warm::{WarmPool, next_plugin_id};

const DEFAULT_CACHE_CAPACITY: u64 = 512;

/// Runs tenant plugins. One per process; share it (`Arc<Runtime>`): every
/// method takes `&self` and may be called from any number of threads.
pub struct Runtime {
    pub(crate) engine: Engine,
    allocator: Allocator,
    linkers: Linkers,
    pub(crate) limits: Limits,
    /// Compiled plugins by (wasm sha256, kind). Only successes are kept.
    compiled: moka::sync::Cache<(String, PluginKind), Arc<CompiledPlugin>>,
    disk: Option<DiskCache>,
    /// Idle instances kept per (plugin, tenant) between calls.
    pub(crate) warm: WarmPool,
    /// Instructions (fuel) executed by all calls so far.
    pub(crate) instructions: AtomicU64,
    // Last: stops the ticker thread when the runtime goes away. None when
    // the wall clock is not checked at all (`Interruption::Fuel`).
    _ticker: Option<EpochTicker>,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Self, PluginError> {
        let setup = |e: &dyn std::fmt::Display| PluginError::Setup(e.to_string());
        let limits = config.limits;
        let (engine, allocator) = engine::build(&limits).map_err(|e| setup(&e))?;
        let linkers = Linkers::new(&engine).map_err(|e| setup(&e))?;
        let disk = match &config.cache_dir {
            Some(dir) => Some(DiskCache::open(dir, &engine).map_err(|e| setup(&e))?),
            None => None,
        };
        let capacity = if config.cache_capacity == 0 {
            DEFAULT_CACHE_CAPACITY
        } else {
            config.cache_capacity
        };
        let ticker = if limits.interruption.epoch() {
            Some(EpochTicker::start(engine.clone(), limits.epoch_tick).map_err(|e| setup(&e))?)
        } else {
            None
        };
        Ok(Self {
            engine,
            allocator,
            linkers,
            warm: WarmPool::new(limits.warm_instances),
            instructions: AtomicU64::new(0),
            limits,
            compiled: moka::sync::Cache::new(capacity),
            disk,
            _ticker: ticker,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether instances come from the pooling allocator on this machine.
    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// How many idle warm instances are kept right now (at most
    /// [`Limits::warm_instances`]).
    pub fn warm_instances(&self) -> usize {
        self.warm.len()
    }

    /// Instructions (fuel units, see [`crate::Fuel`]) executed by every
    /// call of this runtime so far, failed ones included, instantiation not:
    /// a counter for metrics, and, read around one call, what that call
    /// used. Stays 0 when fuel is off ([`crate::Interruption::Epoch`]).
    pub fn instructions_executed(&self) -> u64 {
        self.instructions.load(Ordering::Relaxed)
    }

    /// Compile `wasm` as a plugin of `kind`, or return the cached result.
    ///
    /// Checks that the bytes are a component, compiles them (or loads the
    /// artifact from `cache_dir`), and type-checks the component's imports
    /// and exports against the world, so a plugin that compiles here
    /// instantiates at call time. Concurrent compiles of the same bytes
    /// are done once.
    pub fn compile(&self, kind: PluginKind, wasm: &[u8]) -> Result<Arc<CompiledPlugin>, PluginError> {
        check_component(wasm)?;
        let sha256 = sha256_hex(wasm);
        self.compiled
            .try_get_with((sha256.clone(), kind), || self.load(kind, sha256, wasm))
            .map_err(|e| (*e).clone())
    }

    /// The plugin compiled earlier from the wasm with this sha256, if it is
    /// still in memory.
    pub fn cached(&self, kind: PluginKind, sha256: &str) -> Option<Arc<CompiledPlugin>> {
        self.compiled.get(&(sha256.to_string(), kind))
    }

    fn load(&self, kind: PluginKind, sha256: String, wasm: &[u8]) -> Result<Arc<CompiledPlugin>, PluginError> {
        let cached = self.disk.as_ref().and_then(|disk| disk.load(&self.engine, &sha256));
        let (component, origin) = match cached {
            Some(component) => (component, Origin::DiskCache),
            None => {
                let component =
                    Component::new(&self.engine, wasm).map_err(|e| PluginError::Compile(format!("{e:#}")))?;
                if let Some(disk) = &self.disk {
                    disk.store(&sha256, &component);
                }
                (component, Origin::Compiled)
            }
        };
        let bound = self.bind(kind, &component)?;
        let contract = match bound {
            Bound::Scheduler(_, _, contract) => contract,
            Bound::VisibilityPage(..) => Contract::V0_2,
            Bound::VisibilityPolicy(_) => Contract::V0_1,
            Bound::InsightMatcher(_) | Bound::Handler(_) => self.declared_contract(&component),
        };
        Ok(Arc::new(CompiledPlugin {
            id: next_plugin_id(),
            sha256,
            kind,
            origin,
            contract,
            component,
            bound,
        }))
    }

    /// The contract version a component names in its `pop:plugin` imports
    /// (every world imports at least `types`); the current one if it names
    /// none. Only informative outside the scheduler world, whose calls are
    /// the same in every version.
    fn declared_contract(&self, component: &Component) -> Contract {
        let old = format!("@{}", Contract::V0_1.version());
        let names_old = component
            .component_type()
            .imports(&self.engine)
            .any(|(name, _)| name.starts_with("pop:plugin/") && name.ends_with(&old));
        if names_old { Contract::V0_1 } else { Contract::V0_2 }
    }

    /// Resolve the component's imports against the world's linker and its
    /// exports against the world's functions.
    fn bind(&self, kind: PluginKind, component: &Component) -> Result<Bound, PluginError> {
        let wrong_world = |e: wasmtime::Error| PluginError::WrongWorld {
            expected: kind.world(),
            detail: format!("{e:#}"),
        };
        let pre = self.linkers.get(kind).instantiate_pre(component).map_err(wrong_world)?;
        Ok(match kind {
            PluginKind::Scheduler => {
                // The current contract first; a plugin that does not fit it
                // is told why in its terms, not in those of an old version.
                let contract = match v0_2::scheduler::SchedulerPre::new(pre.clone()) {
                    Ok(_) => Contract::V0_2,
                    Err(current) => match v0_1::scheduler::SchedulerPre::new(pre.clone()) {
                        Ok(_) => Contract::V0_1,
                        Err(_) => return Err(wrong_world(current)),
                    },
                };
                // Present: `SchedulerPre::new` has just type-checked it.
                let (_, schedule) = component
                    .get_export(None, "schedule")
                    .ok_or_else(|| PluginError::WrongWorld {
                        expected: kind.world(),
                        detail: "no export `schedule` found".into(),
                    })?;
                Bound::Scheduler(pre, schedule, contract)
            }
            PluginKind::InsightMatcher => {
                Bound::InsightMatcher(insight_matcher::InsightMatcherPre::new(pre).map_err(wrong_world)?)
            }
            PluginKind::VisibilityPolicy => match v0_2::visibility_policy::VisibilityPolicyPre::new(pre.clone()) {
                Ok(_) => {
                    // Present: `VisibilityPolicyPre::new` has just type-checked it.
                    let (_, decide) = component
                        .get_export(None, "decide")
                        .ok_or_else(|| PluginError::WrongWorld {
                            expected: kind.world(),
                            detail: "no export `decide` found".into(),
                        })?;
                    Bound::VisibilityPage(pre, decide)
                }
                Err(current) => match visibility_policy::VisibilityPolicyPre::new(pre) {
                    Ok(pre) => Bound::VisibilityPolicy(pre),
                    Err(_) => return Err(wrong_world(current)),
                },
            },
            PluginKind::Handler => Bound::Handler(handler::HandlerPre::new(pre).map_err(wrong_world)?),
        })
    }

    /// A fresh store for one call: limiter installed and `budget` armed.
    ///
    /// Fresh for a call on a fresh instance, and for the first call of a
    /// warm one: a trapped instance is never entered again and nothing
    /// leaks from one tenant to another (see [`crate::warm`]).
    pub(crate) fn store(&self, state: CallState, budget: &Budget) -> Store<CallState> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // A store starts without fuel and, with epoch interruption on,
        // with a deadline already passed: arm both before instantiation,
        // which may run guest code.
        arm(&mut store, budget);
        store
    }
}
