//! The four calls, one per world. Each runs on a fresh store under the
//! deadline and memory cap, and checks the answer against the contract
//! before the host uses it.

use std::time::Duration;

use pop_core::scheduling::{ScheduleInput, ScheduleOutput, check_decision};
use wasmtime::Store;

use crate::abi::{Pending, ScheduleInputRef};
use crate::bindings::v0_1::types;
use crate::error::{PluginFailure, classify};
use crate::plugin::{Bound, CompiledPlugin, PluginKind};
use crate::runtime::Runtime;
use crate::state::CallState;

impl Runtime {
    /// Ask a scheduler plugin which pending agendas to release. The
    /// decision is checked with [`check_decision`] (indices offered, none
    /// twice, at most `free_slots`) and the state against
    /// [`crate::Limits::max_state_bytes`].
    pub fn schedule(
        &self,
        plugin: &CompiledPlugin,
        input: &ScheduleInput<'_>,
    ) -> Result<ScheduleOutput, PluginFailure> {
        let Bound::Scheduler(pre, schedule) = &plugin.bound else {
            return Err(wrong_kind(PluginKind::Scheduler, plugin));
        };
        let pending: Vec<Pending> = input.pending.iter().map(Pending::from).collect();
        let wit = ScheduleInputRef::new(input, &pending);
        let answer = self.invoke(
            pre.engine(),
            self.state(),
            self.limits.deadline,
            |store| pre.instance_pre().instantiate(store),
            |instance, store| {
                let schedule = instance
                    .get_typed_func::<(ScheduleInputRef<'_>,), (Result<types::ScheduleOutput, String>,)>(
                        &mut *store,
                        schedule,
                    )?;
                Ok(schedule.call(&mut *store, (wit,))?.0)
            },
        )?;
        let types::ScheduleOutput { release, state } = answer.map_err(PluginFailure::Refused)?;
        let output = ScheduleOutput { release, state };
        if output.state.len() > self.limits.max_state_bytes {
            return Err(PluginFailure::BadOutput(format!(
                "returned {} bytes of state; at most {} are kept",
                output.state.len(),
                self.limits.max_state_bytes
            )));
        }
        check_decision(input, &output).map_err(PluginFailure::BadOutput)?;
        Ok(output)
    }

    /// Ask an insight matcher which candidate a submitted agenda goes to:
    /// the index into `candidates`, or `None` when nothing matches.
    pub fn select_insight(
        &self,
        plugin: &CompiledPlugin,
        agenda: &types::AgendaSummary,
        candidates: &[types::InsightSummary],
    ) -> Result<Option<u32>, PluginFailure> {
        let Bound::InsightMatcher(pre) = &plugin.bound else {
            return Err(wrong_kind(PluginKind::InsightMatcher, plugin));
        };
        let answer = self.invoke(
            pre.engine(),
            self.state(),
            self.limits.deadline,
            |store| pre.instantiate(store),
            |plugin, store| plugin.call_select(store, agenda, candidates),
        )?;
        match answer.map_err(PluginFailure::Refused)? {
            Some(index) if index as usize >= candidates.len() => Err(PluginFailure::BadOutput(format!(
                "chose candidate #{index} but only {} were offered",
                candidates.len()
            ))),
            choice => Ok(choice),
        }
    }

    /// Ask a visibility policy which of `objects` `caller` may see: one
    /// answer per object, in order.
    pub fn decide_visibility(
        &self,
        plugin: &CompiledPlugin,
        caller: &types::Caller,
        objects: &[types::ObjectSummary],
    ) -> Result<Vec<bool>, PluginFailure> {
        let Bound::VisibilityPolicy(pre) = &plugin.bound else {
            return Err(wrong_kind(PluginKind::VisibilityPolicy, plugin));
        };
        let answer = self.invoke(
            pre.engine(),
            self.state(),
            self.limits.deadline,
            |store| pre.instantiate(store),
            |plugin, store| plugin.call_decide(store, caller, objects),
        )?;
        let decisions = answer.map_err(PluginFailure::Refused)?;
        if decisions.len() != objects.len() {
            return Err(PluginFailure::BadOutput(format!(
                "answered for {} objects but was asked about {}",
                decisions.len(),
                objects.len()
            )));
        }
        Ok(decisions)
    }

    /// Run one operation in a handler plugin. Progress reports reach
    /// `on_progress` while the handler runs (percent clamped to 0–100,
    /// message cut to 1 KiB). The deadline is
    /// [`crate::Limits::handler_deadline`].
    pub fn run_handler(
        &self,
        plugin: &CompiledPlugin,
        payload: &str,
        context: &types::OperationContext,
        on_progress: &mut dyn FnMut(f64, &str),
    ) -> Result<String, PluginFailure> {
        let Bound::Handler(pre) = &plugin.bound else {
            return Err(wrong_kind(PluginKind::Handler, plugin));
        };
        let mut state = self.state();
        // SAFETY: `invoke` creates the store holding this state and drops it
        // before returning, on this thread, so `on_progress` outlives it.
        unsafe { state.set_progress(on_progress) };
        let answer = self.invoke(
            pre.engine(),
            state,
            self.limits.handler_deadline,
            |store| pre.instantiate(store),
            |plugin, store| plugin.call_run(store, payload, context),
        )?;
        answer.map_err(PluginFailure::Refused)
    }

    /// Instantiate `plugin` on a fresh store under the limits without
    /// calling it: a smoke test before activating an upload (a start-up
    /// trap, an initial memory over the cap), and the fixed cost every call
    /// pays on top of its work.
    pub fn probe(&self, plugin: &CompiledPlugin) -> Result<(), PluginFailure> {
        let instantiate = |store: &mut Store<CallState>| match &plugin.bound {
            Bound::Scheduler(pre, _) => pre.instantiate(store).map(drop),
            Bound::InsightMatcher(pre) => pre.instantiate(store).map(drop),
            Bound::VisibilityPolicy(pre) => pre.instantiate(store).map(drop),
            Bound::Handler(pre) => pre.instantiate(store).map(drop),
        };
        self.invoke(
            plugin.component.engine(),
            self.state(),
            self.limits.deadline,
            instantiate,
            |(), _| Ok(()),
        )
    }

    fn state(&self) -> CallState {
        CallState::new(&self.limits)
    }

    /// Instantiate and call on a fresh store, classifying any failure. The
    /// store (and with it the instance, its memory and `state`) is dropped
    /// before this returns.
    fn invoke<P, R>(
        &self,
        compiled_by: &wasmtime::Engine,
        state: CallState,
        deadline: Duration,
        instantiate: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<P>,
        call: impl FnOnce(&P, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginFailure> {
        // Code compiled by another engine cannot run in this one's stores
        // (wasmtime would panic): a plugin must come from this runtime.
        if !wasmtime::Engine::same(compiled_by, &self.engine) {
            return Err(PluginFailure::Instantiate(
                "the plugin was compiled by another runtime".into(),
            ));
        }
        let mut store = self.store(state, deadline);
        let instance = instantiate(&mut store).map_err(|e| classify(&e, store.data().limiter.denied, true))?;
        call(&instance, &mut store).map_err(|e| classify(&e, store.data().limiter.denied, false))
    }
}

fn wrong_kind(expected: PluginKind, plugin: &CompiledPlugin) -> PluginFailure {
    PluginFailure::WrongKind {
        expected,
        actual: plugin.kind,
    }
}
