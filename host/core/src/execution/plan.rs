//! The DAG state machine: prior progress, readiness, results, fail-fast,
//! deadlock and generator expansion (spec §2.4, §5.3.2, §5.3.5).
//!
//! Readiness is event driven: every pending operation counts the dependencies
//! that have not succeeded, and each name maps to the operations waiting on
//! it. A success decrements its waiters and queues those that reach zero as
//! candidates, so a completion costs O(its dependants) instead of a rescan of
//! the whole agenda, and a payload is resolved only once its inputs exist.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::ExecutionError;
use super::context::OperationContext;
use super::generator::{generated_operations, generator_config};
use super::messages::{self, PENDING_REFERENCES, invalid_references_message};
use super::node::{Node, NodeState};
use crate::model::{Agenda, CompleteStateMessage, DiagnosticEvent, Operation, OperationProgress, ProcessingState};
use crate::params::keys;
use crate::reference::{OUT_SUFFIX, operation_dependencies, resolve};

/// An operation to launch now, with its payload frozen (spec §2.4).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyOperation {
    pub name: String,
    pub operation: Operation,
    /// The payload with every reference substituted: the handler's input.
    pub payload: Value,
    /// The failed or partial prior progress, for the handler's `LAST_PROGRESS`.
    pub last_progress: Option<OperationProgress>,
}

/// Where the whole agenda stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Running,
    Succeeded,
    /// Conductor diagnostics (deadlock) first, then each failed operation's.
    Failed {
        diagnostics: Vec<DiagnosticEvent>,
    },
}

#[derive(Debug, Clone)]
pub struct ExecutionPlan {
    agenda_id: Value,
    pub(super) nodes: Vec<Node>,
    index: HashMap<String, usize>,
    /// `<name>.out` of every succeeded operation: the reference context.
    outputs: HashMap<String, Value>,
    /// Dependency name → pending operations still counting it as unmet.
    waiters: HashMap<String, Vec<usize>>,
    /// Pending operations whose dependencies all succeeded, not yet resolved.
    candidates: Vec<usize>,
    pub(super) running: usize,
    pending: usize,
    pub(super) succeeded: usize,
    /// Set by the first failure or a deadlock: nothing new starts after it.
    halted: bool,
    diagnostics: Vec<DiagnosticEvent>,
}

/// POP stores outputs as JSON strings; null or unparsable ones read as `{}`
/// (spec §2.3), so `@<op.out::/x?d>` still falls back instead of failing.
fn output_value(value: Value) -> Value {
    if value.is_null() {
        Value::Object(Map::new())
    } else {
        value
    }
}

fn parse_result_payload(text: Option<&str>) -> Value {
    output_value(text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null))
}

fn prior_succeeded(progress: &OperationProgress) -> bool {
    progress.processing_state == Some(ProcessingState::Complete)
        && progress
            .processing_state_message
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(CompleteStateMessage::Succeeded.as_str()))
}

impl ExecutionPlan {
    /// Operations whose prior progress (`LAST_PROGRESS`) is COMPLETE/succeeded
    /// start as done with their stored output; everything else is pending.
    pub fn new(agenda: &Agenda, prior: &[OperationProgress], agenda_id: &str) -> Result<Self, ExecutionError> {
        let ops = agenda.operations();
        if ops.is_empty() {
            return Err(ExecutionError::NoOperations);
        }
        check_names(ops, &HashMap::new())?;
        let prior: HashMap<&str, &OperationProgress> = prior
            .iter()
            .filter_map(|p| Some((p.operation.as_deref()?, p)))
            .collect();

        let mut plan = ExecutionPlan {
            agenda_id: Value::String(agenda_id.to_owned()),
            nodes: Vec::with_capacity(ops.len()),
            index: HashMap::with_capacity(ops.len()),
            outputs: HashMap::new(),
            waiters: HashMap::new(),
            candidates: Vec::new(),
            running: 0,
            pending: 0,
            succeeded: 0,
            halted: false,
            diagnostics: Vec::new(),
        };
        // Mark every prior success before counting unmet dependencies, so an
        // operation listed before its (already done) dependency sees it done.
        for op in ops {
            let idx = plan.push_node(op.clone());
            let Some(progress) = prior.get(op.name()) else {
                continue;
            };
            if prior_succeeded(progress) {
                let output = parse_result_payload(progress.result_payload.as_deref());
                plan.mark_succeeded(idx, output);
            } else if progress.processing_state.is_some_and(|s| s != ProcessingState::Waiting) {
                plan.nodes[idx].prior = Some((*progress).clone());
            }
        }
        for idx in 0..plan.nodes.len() {
            if plan.nodes[idx].state == NodeState::Pending {
                plan.pending += 1;
                plan.count_unmet(idx);
            }
        }
        Ok(plan)
    }

    /// Appends operations (e.g. a generator's), wired against the current
    /// state. All or nothing: a nameless or duplicate name rejects the batch.
    pub fn add_operations(&mut self, ops: Vec<Operation>) -> Result<Vec<String>, ExecutionError> {
        check_names(&ops, &self.index)?;
        let mut names = Vec::with_capacity(ops.len());
        for op in ops {
            names.push(op.name().to_owned());
            let idx = self.push_node(op);
            self.pending += 1;
            self.count_unmet(idx);
        }
        Ok(names)
    }

    /// Resolves the candidates and marks the ready ones running. Returns
    /// nothing once the plan has failed (fail fast, spec §5.3.2); detects the
    /// deadlock when nothing is or can become runnable.
    pub fn ready(&mut self) -> Vec<ReadyOperation> {
        self.ready_up_to(usize::MAX)
    }

    /// [`Self::ready`], but at most `limit` operations: the rest stay
    /// candidates for a later call, so a driver with a bounded pool only
    /// marks running what it actually launches (a halt then leaves them
    /// pending, never stuck as running).
    pub fn ready_up_to(&mut self, limit: usize) -> Vec<ReadyOperation> {
        let mut candidates = std::mem::take(&mut self.candidates).into_iter();
        let mut ready = Vec::new();
        while ready.len() < limit {
            let Some(idx) = candidates.next() else { break };
            if self.halted {
                break;
            }
            if self.nodes[idx].state != NodeState::Pending {
                continue;
            }
            match self.resolve_payload(idx) {
                Ok(payload) => ready.push((idx, payload)),
                Err(message) => self.fail_pending(idx, message),
            }
        }
        // Not looked at this time: still candidates, in order.
        let rest: Vec<usize> = candidates.collect();
        self.candidates.splice(0..0, rest);
        if self.halted {
            // A failure in this batch: the others found ready stay pending.
            return Vec::new();
        }
        let ready: Vec<ReadyOperation> = ready
            .into_iter()
            .map(|(idx, payload)| {
                let node = &mut self.nodes[idx];
                node.state = NodeState::Running;
                ReadyOperation {
                    name: node.name().to_owned(),
                    operation: node.op.clone(),
                    payload,
                    last_progress: node.prior.clone(),
                }
            })
            .collect();
        self.pending -= ready.len();
        self.running += ready.len();
        self.detect_deadlock();
        ready
    }

    /// Records a success. A generator's operations are appended (their names
    /// are returned); a generator whose output lacks them fails instead.
    pub fn complete(&mut self, name: &str, output: Value) -> Result<Vec<String>, ExecutionError> {
        let idx = self.running_index(name)?;
        let mut generated = Vec::new();
        if let Some(config) = generator_config(&self.nodes[idx].op) {
            match generated_operations(name, &config, &output) {
                Ok(ops) if config.log_only => drop(ops),
                Ok(ops) => match self.add_operations(self.not_yet_generated(name, ops)) {
                    Ok(names) => generated = names,
                    Err(e) => return self.fail(name, messages::event(e.to_string())).map(|()| Vec::new()),
                },
                Err(message) => return self.fail(name, messages::event(message)).map(|()| Vec::new()),
            }
        }
        self.running -= 1;
        self.mark_succeeded(idx, output_value(output));
        Ok(generated)
    }

    /// Records a failure: fail fast, running operations may still finish.
    pub fn fail(&mut self, name: &str, diagnostic: DiagnosticEvent) -> Result<(), ExecutionError> {
        let idx = self.running_index(name)?;
        self.running -= 1;
        let node = &mut self.nodes[idx];
        node.state = NodeState::Failed;
        node.diagnostics.push(diagnostic);
        self.halted = true;
        Ok(())
    }

    pub fn outcome(&self) -> Outcome {
        if self.running > 0 || (!self.halted && self.pending > 0) {
            return Outcome::Running;
        }
        if !self.halted {
            return Outcome::Succeeded;
        }
        let mut diagnostics = self.diagnostics.clone();
        for node in self.nodes.iter().filter(|n| n.state == NodeState::Failed) {
            diagnostics.extend(node.diagnostics.iter().cloned());
        }
        Outcome::Failed { diagnostics }
    }

    pub fn operation_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn running_count(&self) -> usize {
        self.running
    }

    pub fn pending_count(&self) -> usize {
        self.pending
    }

    /// True after a failure or deadlock: no operation will start any more.
    pub fn is_halted(&self) -> bool {
        self.halted
    }

    /// Every operation name, in agenda order then generation order, so the
    /// reporter can walk `operation_progress` over them.
    pub fn operation_names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.name())
    }

    /// `ops` without those this generator already added: after a restart
    /// a generator may run again although its operations were appended to
    /// the agenda (and so are in this plan) the first time.
    fn not_yet_generated(&self, parent: &str, ops: Vec<Operation>) -> Vec<Operation> {
        ops.into_iter()
            .filter(|op| {
                let earlier = self.node(op.name()).and_then(|node| node.op.params.as_ref());
                earlier
                    .and_then(|p| p.get_string(keys::GENERATED_OPERATION_PARENT))
                    .as_deref()
                    != Some(parent)
            })
            .collect()
    }

    pub(super) fn node(&self, name: &str) -> Option<&Node> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    pub(super) fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.index.get(name).map(|&i| &mut self.nodes[i])
    }

    fn push_node(&mut self, op: Operation) -> usize {
        let deps: Vec<String> = operation_dependencies(&op).into_iter().collect();
        let idx = self.nodes.len();
        self.index.insert(op.name().to_owned(), idx);
        self.nodes.push(Node::new(op, deps));
        idx
    }

    /// Counts the dependencies not yet succeeded and registers the reverse
    /// edges; a name no operation carries (yet) simply stays unmet.
    fn count_unmet(&mut self, idx: usize) {
        let mut unmet = 0;
        for dep in &self.nodes[idx].deps {
            let done = self
                .index
                .get(dep)
                .is_some_and(|&d| self.nodes[d].state == NodeState::Succeeded);
            if !done {
                unmet += 1;
                self.waiters.entry(dep.clone()).or_default().push(idx);
            }
        }
        self.nodes[idx].unmet = unmet;
        if unmet == 0 {
            self.candidates.push(idx);
        }
    }

    fn mark_succeeded(&mut self, idx: usize, output: Value) {
        let node = &mut self.nodes[idx];
        node.state = NodeState::Succeeded;
        node.percent = 100.0;
        let name = node.name().to_owned();
        self.outputs.insert(format!("{name}{OUT_SUFFIX}"), output.clone());
        node.output = Some(output);
        self.succeeded += 1;
        for waiter in self.waiters.remove(&name).unwrap_or_default() {
            let w = &mut self.nodes[waiter];
            w.unmet -= 1;
            if w.unmet == 0 && w.state == NodeState::Pending {
                self.candidates.push(waiter);
            }
        }
    }

    /// The frozen payload, or POP's message for why it cannot be produced.
    fn resolve_payload(&self, idx: usize) -> Result<Value, String> {
        let node = &self.nodes[idx];
        let Some(payload) = &node.op.payload else {
            return Ok(Value::Null);
        };
        let ctx = OperationContext {
            outputs: &self.outputs,
            agenda_id: &self.agenda_id,
            operation_name: Value::String(node.name().to_owned()),
        };
        let (resolved, refs) = resolve(payload, &ctx);
        if !refs.invalid.is_empty() {
            return Err(invalid_references_message(node.name(), &refs.invalid));
        }
        if !refs.missing.is_empty() {
            return Err(PENDING_REFERENCES.to_owned());
        }
        Ok(resolved)
    }

    fn fail_pending(&mut self, idx: usize, message: String) {
        let node = &mut self.nodes[idx];
        node.state = NodeState::Failed;
        node.diagnostics.push(messages::event(message));
        self.pending -= 1;
        self.halted = true;
    }

    fn detect_deadlock(&mut self) {
        if self.halted || self.running > 0 || self.pending == 0 || !self.candidates.is_empty() {
            return;
        }
        let stuck: Vec<(&str, Vec<&str>)> = self
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Pending)
            .map(|n| {
                let waits = n
                    .deps
                    .iter()
                    .filter(|d| self.node(d).is_none_or(|dep| dep.state != NodeState::Succeeded))
                    .map(String::as_str)
                    .collect();
                (n.name(), waits)
            })
            .collect();
        let event = messages::deadlock(&stuck);
        self.diagnostics.push(event);
        self.halted = true;
    }

    fn running_index(&self, name: &str) -> Result<usize, ExecutionError> {
        let &idx = self
            .index
            .get(name)
            .ok_or_else(|| ExecutionError::UnknownOperation(name.to_owned()))?;
        if self.nodes[idx].state != NodeState::Running {
            return Err(ExecutionError::NotRunning(name.to_owned()));
        }
        Ok(idx)
    }
}

/// Every operation needs a name unique across the plan.
fn check_names(ops: &[Operation], existing: &HashMap<String, usize>) -> Result<(), ExecutionError> {
    let mut seen = HashSet::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let name = op.name();
        if name.is_empty() {
            return Err(ExecutionError::UnnamedOperation(i));
        }
        if existing.contains_key(name) || !seen.insert(name) {
            return Err(ExecutionError::DuplicateOperation(name.to_owned()));
        }
    }
    Ok(())
}
