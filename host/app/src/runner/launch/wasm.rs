//! Operations run in-process by a component of the `handler` world, under
//! the plugin limits (deadline, memory cap, no I/O).

use std::sync::Arc;

use async_trait::async_trait;
use pop_core::OperationProgress;
use pop_handlers_registry::{HandlerSpec, Registry, WasmSource};
use pop_ports::{Clock, Durability, Launcher, OperationResult, OperationRun, ProgressSink};
use pop_wasm::types::OperationContext;
use serde_json::Value;

use super::event;
use crate::plugins::PluginHost;

/// Runs the registry's `wasm` handlers on the plugin host.
pub struct WasmLauncher {
    plugins: Arc<PluginHost>,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
}

impl WasmLauncher {
    pub fn new(plugins: Arc<PluginHost>, registry: Arc<Registry>, clock: Arc<dyn Clock>) -> Self {
        Self {
            plugins,
            registry,
            clock,
        }
    }
}

#[async_trait]
impl Launcher for WasmLauncher {
    fn name(&self) -> &'static str {
        "wasm"
    }

    fn accepts(&self, op_type: &str) -> bool {
        matches!(self.registry.get(op_type), Some(HandlerSpec::Wasm(_)))
    }

    fn durability(&self) -> Durability {
        Durability::InProcess
    }

    async fn launch(&self, run: &OperationRun, progress: Arc<dyn ProgressSink>) -> OperationResult {
        let started = self.clock.now_millis();
        let Some(HandlerSpec::Wasm(spec)) = self.registry.get(run.op_type()) else {
            let message = format!(
                "Operation type {} is not a wasm handler (operation: {})",
                run.op_type(),
                run.name
            );
            return OperationResult::failed_with(started, message, started);
        };
        let (name, builtin) = match &spec.source {
            WasmSource::Plugin(name) => (name.as_str(), false),
            WasmSource::Builtin(name) => (name.as_str(), true),
        };
        let Some(slot) = self.plugins.handler(&run.customer_id, name, builtin) else {
            return OperationResult::failed_with(
                started,
                format!("No active handler plugin named {name} for operation: {}", run.name),
                started,
            );
        };
        let context = OperationContext {
            agenda_id: run.agenda_id.clone(),
            operation_name: run.name.clone(),
            cid: run.cid.clone(),
            last_progress: run.last_progress.as_ref().and_then(|p| serde_json::to_string(p).ok()),
        };
        // Overwrites the operation's latest report in place: a handler that
        // reports in a loop costs the host one report, not one per call.
        let on_progress = move |percent: f64, message: &str| progress.report_running(percent, message);
        let payload = run.payload.to_string();
        let base = OperationProgress {
            started_time: Some(started),
            ..Default::default()
        };
        let deadline = std::time::Duration::from_millis(spec.timeout_ms);
        let answered = self
            .plugins
            .run_handler(slot, payload, context, deadline, on_progress)
            .await;
        let now = self.clock.now_millis();
        match answered {
            // Output is JSON text by the contract; anything else is kept as a string.
            Ok(text) => {
                let output = serde_json::from_str(&text).unwrap_or(Value::String(text));
                OperationResult::succeeded(base, output, now)
            }
            Err(e) => OperationResult::failed(
                base,
                Some(event(format!("Failed to execute operation: {}: {e}", run.name), now)),
                now,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use pop_memory::{MemoryBlobStore, MemoryStore};
    use pop_ports::ManualClock;
    use pop_ports::launcher::conformance::{LauncherFixture, launcher_conformance};
    use pop_wasm::{Runtime, RuntimeConfig};
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn the_wasm_launcher_passes_the_launcher_suite() {
        let clock = Arc::new(ManualClock::at(1_700_000_000_000));
        let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
        let store = Arc::new(MemoryStore::new());
        let plugins = PluginHost::start(
            Arc::new(runtime),
            store,
            Arc::new(MemoryBlobStore::new()),
            clock.clone(),
        )
        .await
        .unwrap();
        let launcher = WasmLauncher::new(plugins, Arc::new(Registry::builtin()), clock);
        let exception = json!({"actions": [{"action": "exception", "paramsMap": {"exceptionMessage": "broken"}}]});
        launcher_conformance(LauncherFixture {
            launcher: Arc::new(launcher),
            succeeds: ("sampleWasm".into(), json!({"resultPayload": {"v": 1}}), json!({"v": 1})),
            fails: ("sampleWasm".into(), exception),
            foreign: "sample".into(),
        })
        .await;
    }
}
