//! Binding a submitted agenda to an insight through the customer's
//! insight-matcher plugin, when the customer names one (spec §4.1 rules
//! otherwise, and as the fallback).

use std::time::Instant;

use pop_core::insight::{insight_visible_to_customer, select_insight};
use pop_core::{Agenda, Customer, Insight, PluginKind};
use pop_wasm::InstanceFor;
use pop_wasm::convert::{agenda_summary, insight_summary};

use super::{PluginHost, breaker};
use crate::error::{AppError, AppResult};

impl PluginHost {
    /// The insight among `candidates` (the insights of the customer's pool)
    /// that `agenda` goes to, or `None` when nothing matches.
    pub async fn select_insight(
        &self,
        customer: &Customer,
        agenda: &Agenda,
        candidates: Vec<Insight>,
    ) -> AppResult<Option<Insight>> {
        let customer_id = customer.envelope.id.clone().unwrap_or_default();
        let visible: Vec<Insight> = candidates
            .into_iter()
            .filter(|i| insight_visible_to_customer(i, &customer_id))
            .collect();
        let matcher = customer.insight_matcher.as_deref().filter(|m| !m.is_empty());
        let Some(slot) = matcher.and_then(|name| self.resolve(&customer_id, PluginKind::InsightMatcher, name)) else {
            return Ok(select_insight(agenda, &customer_id, &visible).cloned());
        };
        let runtime = self.runtime.clone();
        let breakers = self.breakers.clone();
        let agenda = agenda.clone();
        let (choice, guarded, elapsed, visible, customer_id) = tokio::task::spawn_blocking(move || {
            let summary = agenda_summary(&agenda, &customer_id);
            let offered: Vec<_> = visible.iter().map(insight_summary).collect();
            let native = || {
                select_insight(&agenda, &customer_id, &visible)
                    .and_then(|chosen| visible.iter().position(|i| std::ptr::eq(i, chosen)))
                    .map(|i| i as u32)
            };
            let started = Instant::now();
            let guarded = breaker::call(
                &breakers,
                PluginKind::InsightMatcher,
                &slot,
                &customer_id,
                |plugin| runtime.select_insight(plugin, InstanceFor::Tenant(&customer_id), &summary, &offered),
                native,
            );
            let (choice, guarded) = guarded.split();
            (choice, guarded, started.elapsed(), visible, customer_id)
        })
        .await
        .map_err(|e| AppError::Internal(format!("matching task failed: {e}")))?;
        self.account_guarded(PluginKind::InsightMatcher, &customer_id, &guarded, elapsed);
        Ok(choice.and_then(|i| visible.into_iter().nth(i as usize)))
    }
}
