//! The built-in insight matcher (`pop-insight-mapper`): POP's mappers (`operationType`,
//! `operationName`, `paramMap`) and `params.defaultInsight`, i.e.
//! [`pop_core::insight::select_insight`], the function the host's native path calls.

use pop_plugin_sdk::insight_matcher::{AgendaSummary, InsightMatcher, InsightSummary, select_by_pop_rules};

struct PopInsightMapper;

impl InsightMatcher for PopInsightMapper {
    fn select(agenda: &AgendaSummary, candidates: &[InsightSummary]) -> Result<Option<usize>, String> {
        Ok(select_by_pop_rules(agenda, candidates))
    }
}

pop_plugin_sdk::export_insight_matcher!(PopInsightMapper);
