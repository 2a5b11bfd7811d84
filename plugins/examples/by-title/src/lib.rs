//! Example tenant insight matcher: binds an agenda to the candidate insight whose title is the
//! agenda's `queue` parameter (case-insensitive). An agenda without `queue` gets POP's own
//! choice (mappers and `defaultInsight`); a `queue` that names no candidate matches nothing.

use pop_plugin_sdk::insight_matcher::{AgendaSummary, InsightMatcher, InsightSummary, select_by_pop_rules};

struct ByTitle;

impl InsightMatcher for ByTitle {
    fn select(agenda: &AgendaSummary, candidates: &[InsightSummary]) -> Result<Option<usize>, String> {
        let Some(queue) = agenda.param("queue") else {
            return Ok(select_by_pop_rules(agenda, candidates));
        };
        Ok(candidates
            .iter()
            .position(|insight| insight.title.eq_ignore_ascii_case(queue)))
    }
}

pop_plugin_sdk::export_insight_matcher!(ByTitle);
