//! One [`Linker`] per world: what a plugin of that kind may import.

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;

use crate::bindings::{v0_1, v0_2};
use crate::plugin::PluginKind;
use crate::state::{CallState, NoWait, no_wait_clock};

/// The linkers of all worlds, built once per runtime.
pub(crate) struct Linkers {
    scheduler: Linker<CallState>,
    insight_matcher: Linker<CallState>,
    visibility_policy: Linker<CallState>,
    handler: Linker<CallState>,
}

impl Linkers {
    pub(crate) fn new(engine: &Engine) -> wasmtime::Result<Self> {
        // Each world links the imports of every contract version served.
        let mut scheduler = wasi(engine)?;
        v0_1::scheduler::Scheduler::add_to_linker::<_, HasSelf<CallState>>(&mut scheduler, |s| s)?;
        v0_2::scheduler::Scheduler::add_to_linker::<_, HasSelf<CallState>>(&mut scheduler, |s| s)?;
        let mut insight_matcher = wasi(engine)?;
        v0_1::insight_matcher::InsightMatcher::add_to_linker::<_, HasSelf<CallState>>(&mut insight_matcher, |s| s)?;
        v0_2::insight_matcher::InsightMatcher::add_to_linker::<_, HasSelf<CallState>>(&mut insight_matcher, |s| s)?;
        let mut visibility_policy = wasi(engine)?;
        v0_1::visibility_policy::VisibilityPolicy::add_to_linker::<_, HasSelf<CallState>>(
            &mut visibility_policy,
            |s| s,
        )?;
        v0_2::visibility_policy::VisibilityPolicy::add_to_linker::<_, HasSelf<CallState>>(
            &mut visibility_policy,
            |s| s,
        )?;
        // Only the handler world may report progress; a scheduler that
        // imports `progress` fails to link, which is how a handler uploaded
        // as a scheduler is recognised.
        let mut handler = wasi(engine)?;
        v0_1::handler::Handler::add_to_linker::<_, HasSelf<CallState>>(&mut handler, |s| s)?;
        v0_2::handler::Handler::add_to_linker::<_, HasSelf<CallState>>(&mut handler, |s| s)?;
        Ok(Self {
            scheduler,
            insight_matcher,
            visibility_policy,
            handler,
        })
    }

    pub(crate) fn get(&self, kind: PluginKind) -> &Linker<CallState> {
        match kind {
            PluginKind::Scheduler => &self.scheduler,
            PluginKind::InsightMatcher => &self.insight_matcher,
            PluginKind::VisibilityPolicy => &self.visibility_policy,
            PluginKind::Handler => &self.handler,
        }
    }
}

/// WASI preview 2 as every wasip2 guest expects it, backed by the empty
/// context of [`CallState`], with timers that never block the host thread.
fn wasi(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    linker.allow_shadowing(true);
    monotonic_clock::add_to_linker::<_, NoWait>(&mut linker, no_wait_clock)?;
    linker.allow_shadowing(false);
    Ok(linker)
}
