//! Handler plugins: operations run in-process as components of the
//! `handler` world, resolved by name like every other plugin.
//!
//! Unlike the decision worlds there is no fallback: a handler does the
//! operation's work, so a failure fails the operation (a retry of the same
//! work by another version could repeat its effects).

use std::sync::Arc;

use pop_core::PluginKind;
use pop_wasm::{PluginFailure, types};

use super::{Answerer, BUILTIN_OWNER, PluginHost, Slot};

/// Why a handler plugin produced no result.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("no active handler plugin named {0}")]
    NotFound(String),
    #[error("handler plugin {label} failed: {failure}")]
    Failed { label: String, failure: PluginFailure },
    #[error("handler task failed: {0}")]
    Task(String),
}

impl PluginHost {
    /// The handler slot `name` resolves to for `owner` (its own, then a
    /// global one); `builtin` restricts the lookup to the built-ins.
    pub fn handler(&self, owner: &str, name: &str, builtin: bool) -> Option<Arc<Slot>> {
        let owner = if builtin { BUILTIN_OWNER } else { owner };
        self.resolve(owner, PluginKind::Handler, name)
    }

    /// Run `payload` through the slot's active version on a blocking thread
    /// (a handler may compute, or sleep, for up to `deadline`). Progress
    /// reports reach `on_progress` as they happen.
    pub async fn run_handler(
        &self,
        slot: Arc<Slot>,
        payload: String,
        context: types::OperationContext,
        deadline: std::time::Duration,
        mut on_progress: impl FnMut(f64, &str) + Send + 'static,
    ) -> Result<String, HandlerError> {
        let plugin = slot
            .cell
            .active()
            .ok_or_else(|| HandlerError::NotFound(slot.name.clone()))?;
        let runtime = self.runtime.clone();
        let label = slot.label(&plugin);
        let started = std::time::Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            runtime.run_handler_within(&plugin, &payload, &context, deadline, &mut on_progress)
        })
        .await
        .map_err(|e| HandlerError::Task(e.to_string()))?;
        match outcome {
            // A handler has no fallback: it answers or the operation fails.
            Ok(result) => {
                self.metrics
                    .answered(PluginKind::Handler, Answerer::Active, started.elapsed());
                Ok(result)
            }
            Err(failure) => {
                self.record_failure(PluginKind::Handler, &label, &failure);
                Err(HandlerError::Failed { label, failure })
            }
        }
    }
}
