//! Running one operation through the launcher port: its type picks the
//! first launcher that accepts it — the resident handlers (run inside the
//! server), the wasm components of the handlers registry, and whatever the
//! composition root adds (the local process launcher; a Kubernetes pod
//! launcher later). Every path ends in the operation's final progress:
//! COMPLETE `succeeded` with the output, or COMPLETE `failed` with
//! diagnostics saying why (spec §5.3.3). Launching never returns an error:
//! a launch that could not even start is a failed operation too.

mod resident;
mod wasm;

pub use resident::ResidentLauncher;
pub use wasm::WasmLauncher;

use std::sync::Arc;

use pop_handlers_registry::{HandlerSpec, Registry, RegistryError};
pub use pop_ports::launcher::event;
use pop_ports::{Clock, Durability, Launcher, Store};
pub use pop_ports::{OperationResult, OperationRun};

pub use super::progress::ProgressSender;
use crate::plugins::PluginHost;

/// Largest operation result kept, in bytes of its JSON text. A result goes
/// into the operation's progress row and into the payloads of the
/// operations that reference it, so it must stay well inside a stored
/// document; a larger one fails the operation, saying so.
pub const MAX_RESULT_BYTES: usize = 1 << 20;

/// The launchers of a resource pool, asked in order.
#[derive(Clone)]
pub struct Launchers {
    launchers: Vec<Arc<dyn Launcher>>,
    registry: Arc<Registry>,
}

impl Launchers {
    /// `launchers`, asked in this order; `registry` names the types none
    /// of them accepts in the failures.
    pub fn new(launchers: Vec<Arc<dyn Launcher>>, registry: Arc<Registry>) -> Self {
        Self { launchers, registry }
    }

    /// The embedded resource pool: resident handlers first (they take
    /// precedence over the registry), then `others` (the local process
    /// launcher), then the registry's wasm components.
    pub fn embedded(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        plugins: Arc<PluginHost>,
        registry: Arc<Registry>,
        others: Vec<Arc<dyn Launcher>>,
    ) -> Self {
        let mut launchers: Vec<Arc<dyn Launcher>> = vec![Arc::new(ResidentLauncher::new(store, clock.clone()))];
        launchers.extend(others);
        launchers.push(Arc::new(WasmLauncher::new(plugins, registry.clone(), clock)));
        Self::new(launchers, registry)
    }

    /// Every launcher, for housekeeping.
    pub fn all(&self) -> &[Arc<dyn Launcher>] {
        &self.launchers
    }

    /// The launcher of `op_type`, or the message of the failure that an
    /// operation of that type ends in.
    pub fn pick(&self, op_type: &str, operation: &str) -> Result<&Arc<dyn Launcher>, String> {
        if let Some(launcher) = self.launchers.iter().find(|l| l.accepts(op_type)) {
            return Ok(launcher);
        }
        Err(match self.registry.get(op_type) {
            None => format!(
                "{} on operation: {operation}",
                RegistryError::UnknownOperationType(op_type.to_owned())
            ),
            Some(HandlerSpec::Pod(_)) => format!(
                "Operation type {op_type} runs as a Kubernetes pod, which the embedded resource pool cannot start (operation: {operation})"
            ),
            Some(HandlerSpec::Process(_)) => format!(
                "Operation type {op_type} runs as a local process, which this resource pool does not start (operation: {operation})"
            ),
            Some(HandlerSpec::Wasm(_)) => format!(
                "Operation type {op_type} runs as a wasm component, which this resource pool does not run (operation: {operation})"
            ),
        })
    }

    /// Whether an operation of `op_type` must be recorded EXECUTING before
    /// it is launched (its run may outlive this process).
    pub fn needs_durable_start(&self, op_type: &str) -> bool {
        self.launchers
            .iter()
            .find(|l| l.accepts(op_type))
            .is_some_and(|l| l.durability() == Durability::Detached)
    }
}

impl Launchers {
    /// Run `run` to its end: adopted from an earlier run when its launcher
    /// knows that one finished, else launched; a result over
    /// [`MAX_RESULT_BYTES`] fails it.
    pub async fn run(&self, clock: &dyn Clock, run: OperationRun, progress: ProgressSender) -> OperationResult {
        let started = clock.now_millis();
        let launcher = match self.pick(run.op_type(), &run.name) {
            Ok(launcher) => launcher,
            Err(message) => return OperationResult::failed_with(started, message, started),
        };
        let adopted = if run.was_started() {
            launcher.adopt(&run).await
        } else {
            None
        };
        let result = match adopted {
            Some(result) => result,
            None => launcher.launch(&run, progress.for_operation(&run.name)).await,
        };
        within_result_limit(result, &run.name, clock.now_millis())
    }
}

/// `result`, or a failure saying its result is too large to keep.
fn within_result_limit(result: OperationResult, name: &str, now: pop_core::EpochMillis) -> OperationResult {
    let bytes = match (&result.output, &result.progress.result_payload) {
        (Some(_), Some(text)) => text.len(),
        (Some(output), None) => serde_json::to_vec(output).map_or(0, |b| b.len()),
        (None, _) => return result,
    };
    if bytes <= MAX_RESULT_BYTES {
        return result;
    }
    let mut progress = result.progress;
    progress.result_payload = None;
    progress.percent_complete = Some(0.0);
    let message = format!(
        "Failed to execute operation: {name}: its result is {bytes} bytes; at most {MAX_RESULT_BYTES} are kept"
    );
    OperationResult::failed(progress, Some(event(message, now)), now)
}

#[cfg(test)]
mod tests {
    use pop_core::{CompleteStateMessage, OperationProgress};
    use serde_json::Value;

    use super::*;

    #[test]
    fn an_oversized_result_fails_the_operation_and_says_why() {
        let big = Value::String("x".repeat(MAX_RESULT_BYTES));
        let result = within_result_limit(
            OperationResult::succeeded(OperationProgress::default(), big, 1),
            "op",
            2,
        );
        assert!(result.output.is_none());
        assert_eq!(result.progress.result_payload, None);
        assert_eq!(
            result.progress.processing_state_message.as_deref(),
            Some(CompleteStateMessage::Failed.as_str())
        );
        let message = result.progress.diagnostic_events.unwrap_or_default()[0].message.clone();
        assert!(message.unwrap_or_default().contains("at most 1048576"));
        let small = OperationResult::succeeded(OperationProgress::default(), serde_json::json!({"ok": true}), 1);
        assert!(within_result_limit(small, "op", 2).output.is_some());
    }
}
