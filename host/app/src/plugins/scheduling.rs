//! Scheduling decisions through the insight's scheduler plugin, falling
//! back to the last good version and then to the native algorithm.

use pop_core::scheduling::{Algorithm, ScheduleOutput, fifo};
use pop_core::{Insight, PluginKind, ReadyAgenda};

use std::time::Instant;

use pop_wasm::InstanceFor;

use super::{Answerer, PluginHost, breaker};
use crate::domain::scheduling::Backlog;
use crate::error::{AppError, AppResult};

/// The algorithm an insight without `schedulingAlgorithm` uses (POP crashed).
pub const DEFAULT_ALGORITHM: Algorithm = Algorithm::FirstInFirstOut;

/// One scheduling decision for one insight.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The backlog rows to release, in order.
    pub released: Vec<ReadyAgenda>,
    /// `<slot>@<version>` of the plugin that decided, or `native:<algorithm>`.
    pub decided_by: String,
    /// Whether the active version failed and something else decided.
    pub fallback: bool,
    /// How many agendas were waiting.
    pub pending: usize,
    /// The scheduler's new state.
    pub output: ScheduleOutput,
    /// The backlog the decision was made on.
    pub backlog: Backlog,
}

impl PluginHost {
    /// Decide which of `insight`'s pending agendas (its `backlog`, as
    /// [`crate::domain::scheduling::gather`] read it) to release into `slots`.
    pub async fn decide(&self, insight: &Insight, backlog: Backlog, slots: u32) -> AppResult<Decision> {
        let name = insight.scheduling_algorithm.clone().filter(|n| !n.is_empty());
        let name = name.unwrap_or_else(|| DEFAULT_ALGORITHM.name().to_string());
        let owner = insight.envelope.customer_id.clone().unwrap_or_default();
        let native = Algorithm::from_name(&name).unwrap_or(DEFAULT_ALGORITHM);
        let slot = self.resolve(&owner, PluginKind::Scheduler, &name);
        if slot.is_none() {
            tracing::warn!(insight = ?insight.envelope.id, scheduler = name, "unknown scheduler; using the native one");
        }
        let runtime = self.runtime.clone();
        let breakers = self.breakers.clone();
        let now = self.now_millis().max(0) as u64;
        let (output, decided_by, fallback, account, backlog, owner) = tokio::task::spawn_blocking(move || {
            let input = backlog.input(now, slots);
            let native_decision = || native.schedule(&input).or_else(|_| fifo(&input)).unwrap_or_default();
            let (output, decided_by, fallback, account) = match &slot {
                Some(slot) => {
                    let started = Instant::now();
                    // Warm instances and breakers are per tenant: the insight's owner.
                    let guarded = breaker::call(
                        &breakers,
                        PluginKind::Scheduler,
                        slot,
                        &owner,
                        |plugin| runtime.schedule(plugin, InstanceFor::Tenant(&owner), &input),
                        native_decision,
                    );
                    let elapsed = started.elapsed();
                    let fallback = Answerer::from(&guarded.answer.by) != Answerer::Active;
                    let label = slot.answered_label(&guarded.answer.by, native.name());
                    let (output, guarded) = guarded.split();
                    (output, label, fallback, Some((guarded, elapsed)))
                }
                None => (native_decision(), format!("native:{}", native.name()), true, None),
            };
            (output, decided_by, fallback, account, backlog, owner)
        })
        .await
        .map_err(|e| AppError::Internal(format!("scheduling task failed: {e}")))?;
        if let Some((guarded, elapsed)) = &account {
            self.account_guarded(PluginKind::Scheduler, &owner, guarded, *elapsed);
        }
        let released = output
            .release
            .iter()
            .filter_map(|&i| backlog.rows.get(i as usize).cloned())
            .collect();
        Ok(Decision {
            released,
            decided_by,
            fallback,
            pending: backlog.rows.len(),
            output,
            backlog,
        })
    }
}
