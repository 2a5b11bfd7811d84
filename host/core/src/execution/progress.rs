//! Progress views of the plan (spec §5.3.7): the agenda's percent and
//! per-operation snapshots for the reporter.

use super::ExecutionPlan;
use super::node::NodeState;
use crate::model::{CompleteStateMessage, OperationProgress, ProcessingState, WAITING_PENDING};

impl ExecutionPlan {
    /// Records a running operation's own percent (EXECUTING progress).
    /// Returns false when the operation is unknown or not running.
    pub fn report_percent(&mut self, name: &str, percent: f64) -> bool {
        match self.node_mut(name) {
            Some(node) if node.state == NodeState::Running => {
                node.percent = percent.clamp(0.0, 100.0);
                true
            }
            _ => false,
        }
    }

    /// `(succeeded × 100 + Σ running percents) / total`. Unlike POP (spec §9
    /// item 7), failed operations do not count as complete: a failed agenda
    /// never reads 100%. Generated operations grow the total.
    pub fn percent_complete(&self) -> f64 {
        if self.nodes.is_empty() {
            return 0.0;
        }
        let running: f64 = self
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Running)
            .map(|n| n.percent.min(100.0))
            .sum();
        (self.succeeded as f64 * 100.0 + running) / self.nodes.len() as f64
    }

    /// The operation's progress as the plan knows it; the driver adds ids and
    /// times. `None` for an unknown name.
    pub fn operation_progress(&self, name: &str) -> Option<OperationProgress> {
        let node = self.node(name)?;
        let (state, message) = match node.state {
            NodeState::Pending => (ProcessingState::Waiting, WAITING_PENDING),
            NodeState::Running => (ProcessingState::Executing, "executing"),
            NodeState::Succeeded => (ProcessingState::Complete, CompleteStateMessage::Succeeded.as_str()),
            NodeState::Failed => (ProcessingState::Complete, CompleteStateMessage::Failed.as_str()),
        };
        let percent = match node.state {
            NodeState::Pending | NodeState::Failed => 0.0,
            NodeState::Running => node.percent,
            NodeState::Succeeded => 100.0,
        };
        Some(OperationProgress {
            operation: Some(node.name().to_owned()),
            processing_state: Some(state),
            processing_state_message: Some(message.to_owned()),
            percent_complete: Some(percent),
            result_payload: node.output.as_ref().map(|o| o.to_string()),
            diagnostic_events: (!node.diagnostics.is_empty()).then(|| node.diagnostics.clone()),
            ..Default::default()
        })
    }
}
