//! Insight-matcher plugins: bind a submitted agenda to one of its customer's insights.
//!
//! Implement [`InsightMatcher`] and export it with
//! [`export_insight_matcher!`](crate::export_insight_matcher). The host passes only candidates
//! the agenda's customer may use (its pool's insights that it owns, that are global or that
//! list it), in store order. [`select_by_pop_rules`] is POP's own rule (mappers plus
//! `params.defaultInsight`); [`to_core_agenda`] and [`to_core_insight`] convert the summaries
//! into [`pop_core`]'s model for plugins that want to reuse other rules.

use std::marker::PhantomData;

pub use crate::bindings::insight_matcher::pop::plugin::types::{Mapper, OperationSummary, Param};
pub use crate::bindings::insight_matcher::{AgendaSummary, InsightSummary};

use crate::bindings::insight_matcher as wit;
use pop_core::{Agenda, Envelope, Insight, Operation, ParamsMap};
use serde_json::Value;

/// Chooses the insight an agenda is bound to.
pub trait InsightMatcher {
    /// The index into `candidates` of the chosen insight, `None` when none fits (the submission
    /// is then rejected, as in POP), or an error message (the host falls back to POP's rule and
    /// records the message).
    fn select(agenda: &AgendaSummary, candidates: &[InsightSummary]) -> Result<Option<usize>, String>;
}

impl AgendaSummary {
    /// The agenda parameter `key` (exact name) as text: strings as they are, other values as
    /// JSON text.
    pub fn param(&self, key: &str) -> Option<&str> {
        find_param(&self.params, key)
    }
}

impl OperationSummary {
    /// The operation parameter `key` (exact name) as text: strings as they are, other values
    /// as JSON text.
    pub fn param(&self, key: &str) -> Option<&str> {
        find_param(&self.params, key)
    }
}

impl InsightSummary {
    /// The values of mapper `key` (`operationType`, `operationName`, `paramMap` or a plugin's
    /// own key), from every entry with that key.
    pub fn mapper_values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.mappers
            .iter()
            .filter(move |m| m.key == key)
            .flat_map(|m| m.values.iter().map(String::as_str))
    }
}

fn find_param<'a>(params: &'a [Param], key: &str) -> Option<&'a str> {
    params.iter().find(|p| p.key == key).map(|p| p.value.as_str())
}

/// POP's insight selection (spec §4.1, [`pop_core::insight::select_insight`]): the first
/// candidate with a matching mapper, or the first matching one named (title or id,
/// case-insensitive) by the agenda's `params.defaultInsight`. Returns its index.
pub fn select_by_pop_rules(agenda: &AgendaSummary, candidates: &[InsightSummary]) -> Option<usize> {
    let core_agenda = to_core_agenda(agenda);
    let insights: Vec<Insight> = candidates.iter().map(to_core_insight).collect();
    let chosen = pop_core::insight::select_insight(&core_agenda, &agenda.customer_id, &insights)?;
    insights.iter().position(|insight| std::ptr::eq(insight, chosen))
}

/// The agenda summary as a [`pop_core::Agenda`]: customer, parameters and operations (name,
/// type, parameters). Parameter values stay text, which is what POP's `paramMap` mappers and
/// the typed [`ParamsMap`] getters compare and parse. Empty names and types become absent.
pub fn to_core_agenda(agenda: &AgendaSummary) -> Agenda {
    let operations = agenda
        .operations
        .iter()
        .map(|op| Operation {
            name: non_empty(&op.name),
            op_type: non_empty(&op.op_type),
            params: Some(to_params_map(&op.params)),
            ..Operation::default()
        })
        .collect();
    Agenda {
        envelope: Envelope {
            customer_id: non_empty(&agenda.customer_id),
            ..Envelope::default()
        },
        params: Some(to_params_map(&agenda.params)),
        operations: Some(operations),
        ..Agenda::default()
    }
}

/// The candidate as a [`pop_core::Insight`] with its id, title, owner and mappers (entries
/// with the same key are merged). Candidates come already filtered to those the agenda's
/// customer may use, so the result is marked global: POP's visibility check in
/// [`pop_core::insight::select_insight`] then accepts it whoever owns it.
pub fn to_core_insight(candidate: &InsightSummary) -> Insight {
    let mut mappers = std::collections::BTreeMap::<String, Vec<String>>::new();
    for mapper in &candidate.mappers {
        mappers
            .entry(mapper.key.clone())
            .or_default()
            .extend(mapper.values.iter().cloned());
    }
    Insight {
        envelope: Envelope {
            id: non_empty(&candidate.id),
            title: non_empty(&candidate.title),
            customer_id: non_empty(&candidate.owner),
            ..Envelope::default()
        },
        mappers: Some(mappers),
        is_global: Some(true),
        ..Insight::default()
    }
}

/// Parameters as a [`ParamsMap`] of text values (a later duplicate key wins).
pub fn to_params_map(params: &[Param]) -> ParamsMap {
    ParamsMap(
        params
            .iter()
            .map(|p| (p.key.clone(), Value::String(p.value.clone())))
            .collect(),
    )
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Adapts an [`InsightMatcher`] to the `insight-matcher` world's generated `Guest` trait.
/// Used by [`export_insight_matcher!`](crate::export_insight_matcher); not meant to be named
/// by plugins.
#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

impl<T: InsightMatcher> wit::Guest for Export<T> {
    fn select(agenda: AgendaSummary, candidates: Vec<InsightSummary>) -> Result<Option<u32>, String> {
        match T::select(&agenda, &candidates)? {
            None => Ok(None),
            // A WIT list has at most u32::MAX elements, so an in-range index fits.
            Some(index) if index < candidates.len() => Ok(Some(index as u32)),
            Some(index) => Err(format!(
                "selected candidate #{index}, but only {} were offered",
                candidates.len()
            )),
        }
    }
}

/// Exports an [`InsightMatcher`](crate::insight_matcher::InsightMatcher) implementation as this
/// component's `insight-matcher` world. Invoke it once, at the crate root of a `cdylib`:
///
/// ```ignore
/// pop_plugin_sdk::export_insight_matcher!(MyMatcher);
/// ```
#[macro_export]
macro_rules! export_insight_matcher {
    ($matcher:ty) => {
        const _: () = {
            type __PopInsightMatcherExport = $crate::insight_matcher::Export<$matcher>;
            $crate::bindings::insight_matcher::__export_insight_matcher_raw!(
                __PopInsightMatcherExport with_types_in $crate::bindings::insight_matcher
            );
        };
    };
}
