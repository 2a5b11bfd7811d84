//! The four calls, one per world. Each runs under its world's instruction
//! budget, the wall-clock backstop, the memory cap and a limit on what it
//! may hand back, on a fresh instance or a warm one of the same tenant (see
//! [`crate::warm`]), and checks the answer against the contract before the
//! host uses it; only an instance whose answer passed is kept warm.

use std::time::Duration;

use pop_core::scheduling::{ScheduleInput, ScheduleOutput, check_decision};
use pop_core::visibility::{ObjectPage, PageObject};
use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, ComponentType, Instance, Lower};

use crate::abi::{ObjectPageRef, ScheduleInputV0_1, ScheduleInputV0_2};
use crate::bindings::v0_1::types;
use crate::error::{PluginFailure, classify};
use crate::limits::{Budget, MAX_MESSAGE_BYTES, Output};
use crate::plugin::{Bound, CompiledPlugin, Contract, PluginKind};
use crate::runtime::Runtime;
use crate::state::CallState;
use crate::warm::{InstanceFor, Lease, Warm, spent};

impl Runtime {
    /// Ask a scheduler plugin which pending agendas to release. The
    /// decision is checked with [`check_decision`] (indices offered, none
    /// twice, at most `free_slots`) and the state against
    /// [`crate::Limits::max_state_bytes`]; an answer bigger than those allow
    /// is refused before it is copied out of the guest.
    pub fn schedule(
        &self,
        plugin: &CompiledPlugin,
        on: InstanceFor<'_>,
        input: &ScheduleInput<'_>,
    ) -> Result<ScheduleOutput, PluginFailure> {
        let Bound::Scheduler(pre, schedule, contract) = &plugin.bound else {
            return Err(wrong_kind(PluginKind::Scheduler, plugin));
        };
        let output = Output::Schedule {
            state: self.limits.max_state_bytes,
            slots: input.free_slots,
        };
        let mut lease = self.lease(plugin, on, output, |store| pre.instantiate(store))?;
        let answer = match contract {
            Contract::V0_2 => call_schedule(&mut lease, *schedule, ScheduleInputV0_2::new(input))?,
            Contract::V0_1 => {
                let customers: Vec<&str> = input.customers.iter().collect();
                call_schedule(&mut lease, *schedule, ScheduleInputV0_1::new(input, &customers))?
            }
        };
        let types::ScheduleOutput { release, state } = answer.map_err(refused)?;
        let output = ScheduleOutput { release, state };
        if output.state.len() > self.limits.max_state_bytes {
            return Err(PluginFailure::BadOutput(format!(
                "returned {} bytes of state; at most {} (max_state_bytes) are kept",
                output.state.len(),
                self.limits.max_state_bytes
            )));
        }
        check_decision(input, &output).map_err(PluginFailure::BadOutput)?;
        lease.keep();
        Ok(output)
    }

    /// Ask an insight matcher which candidate a submitted agenda goes to:
    /// the index into `candidates`, or `None` when nothing matches.
    pub fn select_insight(
        &self,
        plugin: &CompiledPlugin,
        on: InstanceFor<'_>,
        agenda: &types::AgendaSummary,
        candidates: &[types::InsightSummary],
    ) -> Result<Option<u32>, PluginFailure> {
        let Bound::InsightMatcher(pre) = &plugin.bound else {
            return Err(wrong_kind(PluginKind::InsightMatcher, plugin));
        };
        let mut lease = self.lease(plugin, on, Output::Choice, |store| pre.instantiate(store))?;
        let answer = lease.call(|plugin, store| plugin.call_select(store, agenda, candidates))?;
        let choice = answer.map_err(refused)?;
        if let Some(index) = choice
            && index as usize >= candidates.len()
        {
            return Err(PluginFailure::BadOutput(format!(
                "chose candidate #{index} but only {} were offered",
                candidates.len()
            )));
        }
        lease.keep();
        Ok(choice)
    }

    /// Ask a visibility policy which objects of one page, all of `kind`,
    /// `caller` may see: one answer per object, in order. This is the
    /// server's path: the page is built straight from the stored documents
    /// ([`ObjectPage::from_documents`]) and crosses into a 0.2.0 policy as
    /// it is.
    pub fn decide_visibility_page(
        &self,
        plugin: &CompiledPlugin,
        on: InstanceFor<'_>,
        caller: &types::Caller,
        kind: types::ObjectKind,
        page: &ObjectPage,
    ) -> Result<Vec<bool>, PluginFailure> {
        match &plugin.bound {
            Bound::VisibilityPolicy(_) => {
                // 0.1.0 takes records: the page read back into them.
                let records: Vec<types::ObjectSummary> =
                    page.objects().iter().map(|o| object_record(kind, o)).collect();
                self.decide_visibility(plugin, on, caller, &records)
            }
            Bound::VisibilityPage(pre, decide) => {
                let output = Output::Decisions { asked: page.len() };
                let mut lease = self.lease(plugin, on, output, |store| pre.instantiate(store))?;
                let decisions = decide_page(&mut lease, *decide, caller, ObjectPageRef::new(kind, page.columns()))?;
                let decisions = answered_for(decisions, page.len())?;
                lease.keep();
                Ok(decisions)
            }
            _ => Err(wrong_kind(PluginKind::VisibilityPolicy, plugin)),
        }
    }

    /// Ask a visibility policy which of `objects`, of any kinds, `caller`
    /// may see: one answer per object, in order. A 0.2.0 policy gets one
    /// page per kind present.
    pub fn decide_visibility(
        &self,
        plugin: &CompiledPlugin,
        on: InstanceFor<'_>,
        caller: &types::Caller,
        objects: &[types::ObjectSummary],
    ) -> Result<Vec<bool>, PluginFailure> {
        // One page per kind for a 0.2.0 policy: no answer is longer than
        // the whole list.
        let output = Output::Decisions { asked: objects.len() };
        match &plugin.bound {
            Bound::VisibilityPolicy(pre) => {
                let mut lease = self.lease(plugin, on, output, |store| pre.instantiate(store))?;
                let answer = lease.call(|plugin, store| plugin.call_decide(store, caller, objects))?;
                let decisions = answered_for(answer.map_err(refused)?, objects.len())?;
                lease.keep();
                Ok(decisions)
            }
            Bound::VisibilityPage(pre, decide) => {
                let mut lease = self.lease(plugin, on, output, |store| pre.instantiate(store))?;
                let mut decisions = vec![false; objects.len()];
                for (kind, indices) in by_kind(objects) {
                    let mut page = ObjectPage::new();
                    for object in indices.iter().map(|&i| &objects[i]) {
                        let allowed = object.allowed_customer_ids.iter().map(String::as_str);
                        page.push(&object.id, &object.customer_id, object.is_global, allowed);
                    }
                    let answers = decide_page(&mut lease, *decide, caller, ObjectPageRef::new(kind, page.columns()))?;
                    for (i, answer) in indices.iter().zip(answered_for(answers, indices.len())?) {
                        decisions[*i] = answer;
                    }
                }
                lease.keep();
                Ok(decisions)
            }
            _ => Err(wrong_kind(PluginKind::VisibilityPolicy, plugin)),
        }
    }

    /// Run one operation in a handler plugin. Progress reports reach
    /// `on_progress` while the handler runs (percent clamped to 0–100,
    /// message cut to 1 KiB). The wall-clock timeout is
    /// [`crate::Limits::handler_deadline`]; the instruction budget
    /// [`crate::Fuel::handler`]; the result at most
    /// [`crate::Limits::max_output_bytes`].
    pub fn run_handler(
        &self,
        plugin: &CompiledPlugin,
        payload: &str,
        context: &types::OperationContext,
        on_progress: &mut dyn FnMut(f64, &str),
    ) -> Result<String, PluginFailure> {
        self.run_handler_within(plugin, payload, context, self.limits.handler_deadline, on_progress)
    }

    /// [`Self::run_handler`] with the wall-clock timeout of this operation
    /// type (the handlers registry's `timeoutMs`) instead of the default
    /// one. It is enforced as given: a handler's timeout is wall time by
    /// nature (it may sleep through the `timer` import).
    pub fn run_handler_within(
        &self,
        plugin: &CompiledPlugin,
        payload: &str,
        context: &types::OperationContext,
        deadline: Duration,
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
            self.limits.handler(deadline),
            |store| pre.instantiate(store),
            |plugin, store| plugin.call_run(store, payload, context),
        )?;
        answer.map_err(refused)
    }

    /// Instantiate `plugin` on a fresh store under the limits without
    /// calling it: a smoke test before activating an upload (a start-up
    /// trap, an initial memory over the cap), and the fixed cost every call
    /// pays on top of its work.
    pub fn probe(&self, plugin: &CompiledPlugin) -> Result<(), PluginFailure> {
        let instantiate = |store: &mut Store<CallState>| match &plugin.bound {
            Bound::Scheduler(pre, _, _) => pre.instantiate(store).map(drop),
            Bound::InsightMatcher(pre) => pre.instantiate(store).map(drop),
            Bound::VisibilityPolicy(pre) => pre.instantiate(store).map(drop),
            Bound::VisibilityPage(pre, _) => pre.instantiate(store).map(drop),
            Bound::Handler(pre) => pre.instantiate(store).map(drop),
        };
        let budget = match plugin.kind {
            PluginKind::Handler => self.limits.handler(self.limits.handler_deadline),
            kind => self.limits.decision(kind, Output::Nothing),
        };
        self.invoke(plugin.component.engine(), self.state(), budget, instantiate, |(), _| {
            Ok(())
        })
    }

    fn state(&self) -> CallState {
        CallState::new(&self.limits)
    }

    /// The store and instance for one decision call of `plugin` that may
    /// hand back `output`, armed with the world's budget: the tenant's warm
    /// instance when there is one, else a fresh one from `instantiate`.
    fn lease<'a, P: Warm>(
        &'a self,
        plugin: &CompiledPlugin,
        on: InstanceFor<'a>,
        output: Output,
        instantiate: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<P>,
    ) -> Result<Lease<'a, P>, PluginFailure> {
        self.check_engine(plugin.component.engine())?;
        let budget = self.limits.decision(plugin.kind, output);
        Lease::acquire(&self.warm, &self.instructions, plugin.id, on, budget, || {
            let mut store = self.store(self.state(), &budget);
            let instance =
                instantiate(&mut store).map_err(|e| classify(&e, store.data().limiter.denied, true, &budget))?;
            Ok((store, instance))
        })
    }

    /// Code compiled by another engine cannot run in this one's stores
    /// (wasmtime would panic): a plugin must come from this runtime.
    fn check_engine(&self, compiled_by: &wasmtime::Engine) -> Result<(), PluginFailure> {
        if wasmtime::Engine::same(compiled_by, &self.engine) {
            Ok(())
        } else {
            Err(PluginFailure::Instantiate(
                "the plugin was compiled by another runtime".into(),
            ))
        }
    }

    /// Instantiate and call on a fresh store armed with `budget`,
    /// classifying any failure. The store (and with it the instance, its
    /// memory and `state`) is dropped before this returns.
    fn invoke<P, R>(
        &self,
        compiled_by: &wasmtime::Engine,
        state: CallState,
        budget: Budget,
        instantiate: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<P>,
        call: impl FnOnce(&P, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginFailure> {
        self.check_engine(compiled_by)?;
        let mut store = self.store(state, &budget);
        let instance = instantiate(&mut store).map_err(|e| classify(&e, store.data().limiter.denied, true, &budget))?;
        // The call gets its whole budget, as on a warm instance.
        crate::state::arm(&mut store, &budget);
        let result = call(&instance, &mut store);
        self.instructions
            .fetch_add(spent(&store, &budget), std::sync::atomic::Ordering::Relaxed);
        result.map_err(|e| classify(&e, store.data().limiter.denied, false, &budget))
    }
}

/// The indices of `objects` per kind, in order; one empty page of agendas
/// when there are none (the policy is still called: a smoke call must run it).
fn by_kind(objects: &[types::ObjectSummary]) -> Vec<(types::ObjectKind, Vec<usize>)> {
    let mut groups: Vec<(types::ObjectKind, Vec<usize>)> = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        match groups.iter_mut().find(|(kind, _)| *kind == object.kind) {
            Some((_, indices)) => indices.push(index),
            None => groups.push((object.kind, vec![index])),
        }
    }
    if groups.is_empty() {
        groups.push((types::ObjectKind::Agenda, Vec::new()));
    }
    groups
}

/// One `decide` call of a 0.2.0 visibility policy, on one page.
fn decide_page(
    lease: &mut Lease<'_, Instance>,
    decide: ComponentExportIndex,
    caller: &types::Caller,
    page: ObjectPageRef<'_>,
) -> Result<Vec<bool>, PluginFailure> {
    let answer = lease.call(|instance, store| {
        let decide = instance
            .get_typed_func::<(&types::Caller, ObjectPageRef<'_>), (Result<Vec<bool>, String>,)>(&mut *store, decide)?;
        Ok(decide.call(&mut *store, (caller, page))?.0)
    })?;
    answer.map_err(refused)
}

/// A plugin's `err(message)`, cut to [`MAX_MESSAGE_BYTES`] (at a character
/// boundary): it is stored where the tenant reads it.
fn refused(mut message: String) -> PluginFailure {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    PluginFailure::Refused(message)
}

/// The 0.1.0 record of one object of a page.
fn object_record(kind: types::ObjectKind, object: &PageObject<'_>) -> types::ObjectSummary {
    types::ObjectSummary {
        kind,
        id: object.id.to_string(),
        customer_id: object.customer_id.to_string(),
        is_global: object.is_global,
        allowed_customer_ids: object.allowed_customer_ids.iter().map(|id| id.to_string()).collect(),
    }
}

/// A visibility answer must have one decision per object asked about.
fn answered_for(decisions: Vec<bool>, asked: usize) -> Result<Vec<bool>, PluginFailure> {
    if decisions.len() == asked {
        Ok(decisions)
    } else {
        Err(PluginFailure::BadOutput(format!(
            "answered for {} objects but was asked about {asked}",
            decisions.len()
        )))
    }
}

/// Call a scheduler's `schedule` export with `input`, the input record of
/// the plugin's contract version.
fn call_schedule<I: ComponentType + Lower>(
    lease: &mut Lease<'_, Instance>,
    schedule: ComponentExportIndex,
    input: I,
) -> Result<Result<types::ScheduleOutput, String>, PluginFailure> {
    lease.call(|instance, store| {
        let schedule =
            instance.get_typed_func::<(I,), (Result<types::ScheduleOutput, String>,)>(&mut *store, schedule)?;
        Ok(schedule.call(&mut *store, (input,))?.0)
    })
}

fn wrong_kind(expected: PluginKind, plugin: &CompiledPlugin) -> PluginFailure {
    PluginFailure::WrongKind {
        expected,
        actual: plugin.kind,
    }
}
