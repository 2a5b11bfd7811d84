//! [`PluginCell`]: the active version of one plugin slot (an insight's
//! scheduler, a customer's visibility policy, ...), hot-swappable while
//! calls are running, with fallback to the last version that worked and
//! then to the native built-in.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::error::PluginFailure;
use crate::plugin::CompiledPlugin;

/// Which implementation produced an answer.
#[derive(Debug, Clone)]
pub enum AnsweredBy {
    /// The active version.
    Active(Arc<CompiledPlugin>),
    /// The last version that succeeded, after the active one failed.
    LastGood(Arc<CompiledPlugin>),
    /// The native built-in closure: no plugin active, or all failed.
    Builtin,
}

impl AnsweredBy {
    pub fn plugin(&self) -> Option<&Arc<CompiledPlugin>> {
        match self {
            AnsweredBy::Active(p) | AnsweredBy::LastGood(p) => Some(p),
            AnsweredBy::Builtin => None,
        }
    }

    /// sha256 of the plugin that answered; `None` for the built-in.
    pub fn sha256(&self) -> Option<&str> {
        self.plugin().map(|p| p.sha256())
    }
}

/// An answer and who gave it.
#[derive(Debug, Clone)]
pub struct Answer<R> {
    pub value: R,
    pub by: AnsweredBy,
}

/// One plugin slot. Share it (`Arc<PluginCell>`); all methods take `&self`.
#[derive(Default)]
pub struct PluginCell {
    active: ArcSwapOption<CompiledPlugin>,
    last_good: ArcSwapOption<CompiledPlugin>,
}

impl PluginCell {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make `plugin` the active version and return the previous one. Atomic:
    /// a call that starts after this returns runs `plugin`; calls already
    /// running finish on the version they loaded (they hold its `Arc`).
    pub fn activate(&self, plugin: Arc<CompiledPlugin>) -> Option<Arc<CompiledPlugin>> {
        self.active.swap(Some(plugin))
    }

    /// Go back to the built-in; returns the version that was active. The
    /// last good version is forgotten too, so nothing of the plugin runs.
    pub fn deactivate(&self) -> Option<Arc<CompiledPlugin>> {
        self.last_good.store(None);
        self.active.swap(None)
    }

    pub fn active(&self) -> Option<Arc<CompiledPlugin>> {
        self.active.load_full()
    }

    /// The version that most recently answered successfully.
    pub fn last_good(&self) -> Option<Arc<CompiledPlugin>> {
        self.last_good.load_full()
    }

    /// Answer with the active version; if it fails, with the last good
    /// version (when that is a different one); if that fails too, or there
    /// is none, with `builtin`. Each failure is passed to `on_failure` with
    /// the version that failed, so the caller can log, count and show it to
    /// the plugin's owner. Never fails: the built-in always answers.
    pub fn call<R>(
        &self,
        mut run: impl FnMut(&CompiledPlugin) -> Result<R, PluginFailure>,
        builtin: impl FnOnce() -> R,
        on_failure: &mut dyn FnMut(&CompiledPlugin, &PluginFailure),
    ) -> Answer<R> {
        let Some(active) = self.active.load_full() else {
            return Answer {
                value: builtin(),
                by: AnsweredBy::Builtin,
            };
        };
        match run(&active) {
            Ok(value) => {
                self.remember_good(&active);
                return Answer {
                    value,
                    by: AnsweredBy::Active(active),
                };
            }
            Err(failure) => on_failure(&active, &failure),
        }
        if let Some(previous) = self.last_good.load_full().filter(|p| !Arc::ptr_eq(p, &active)) {
            match run(&previous) {
                Ok(value) => {
                    return Answer {
                        value,
                        by: AnsweredBy::LastGood(previous),
                    };
                }
                Err(failure) => on_failure(&previous, &failure),
            }
        }
        Answer {
            value: builtin(),
            by: AnsweredBy::Builtin,
        }
    }

    fn remember_good(&self, plugin: &Arc<CompiledPlugin>) {
        // Read first: on the hot path the active version is already the
        // last good one, and a load is cheaper than a store.
        let known = self.last_good.load();
        if !known.as_ref().is_some_and(|p| Arc::ptr_eq(p, plugin)) {
            self.last_good.store(Some(Arc::clone(plugin)));
        }
    }
}
