//! One operation's place in the plan.

use serde_json::Value;

use crate::model::{DiagnosticEvent, Operation, OperationProgress};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NodeState {
    /// Waiting for dependencies (or never to run, once the plan has failed).
    Pending,
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub op: Operation,
    /// Distinct names from `operation_dependencies`, kept for the deadlock report.
    pub deps: Vec<String>,
    /// How many of `deps` have not succeeded yet; 0 means "resolve me now".
    pub unmet: usize,
    pub state: NodeState,
    /// Output once succeeded (also stored in the context as `<name>.out`).
    pub output: Option<Value>,
    /// Latest EXECUTING percent the handler reported.
    pub percent: f64,
    pub diagnostics: Vec<DiagnosticEvent>,
    /// Non-WAITING, not-succeeded prior progress: handed to the handler as
    /// `LAST_PROGRESS` so it can reconnect or resume (spec §5.3.2).
    pub prior: Option<OperationProgress>,
}

impl Node {
    pub fn new(op: Operation, deps: Vec<String>) -> Self {
        Node {
            op,
            deps,
            unmet: 0,
            state: NodeState::Pending,
            output: None,
            percent: 0.0,
            diagnostics: Vec::new(),
            prior: None,
        }
    }

    pub fn name(&self) -> &str {
        self.op.name()
    }
}
