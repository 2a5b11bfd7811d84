//! Progress summary over all agendas of one `linkId` (spec §3.8).

use crate::{AgendaProgress, ProcessingState, ProgressSummary};

/// Roll up a list of agenda progresses: any failed → COMPLETE without a
/// percent; otherwise the mean percent (capped at 100) and EXECUTING if any
/// runs or only some wait, WAITING if all wait, else COMPLETE.
pub fn summarize(progress_list: Vec<AgendaProgress>) -> ProgressSummary {
    let failed = progress_list.iter().any(|p| {
        p.processing_state_message
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("failed"))
    });
    if failed {
        return ProgressSummary {
            progress_list,
            processing_state: Some(ProcessingState::Complete),
            processing_percent: None,
        };
    }
    let count = progress_list.len();
    let sum: f64 = progress_list.iter().filter_map(|p| p.percent_complete).sum();
    let percent = if count == 0 {
        0.0
    } else {
        (sum / count as f64).min(100.0)
    };
    let waiting = progress_list
        .iter()
        .filter(|p| p.processing_state == Some(ProcessingState::Waiting))
        .count();
    let executing = progress_list
        .iter()
        .any(|p| p.processing_state == Some(ProcessingState::Executing));
    let state = if executing || (waiting > 0 && waiting < count) {
        ProcessingState::Executing
    } else if count > 0 && waiting == count {
        ProcessingState::Waiting
    } else {
        ProcessingState::Complete
    };
    ProgressSummary {
        progress_list,
        processing_state: Some(state),
        processing_percent: Some(percent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(state: ProcessingState, msg: &str, pct: Option<f64>) -> AgendaProgress {
        AgendaProgress {
            processing_state: Some(state),
            processing_state_message: Some(msg.into()),
            percent_complete: pct,
            ..Default::default()
        }
    }

    #[test]
    fn rollup_table() {
        use ProcessingState::*;
        let cases = vec![
            (vec![], Some(Complete), Some(0.0)),
            (
                vec![p(Waiting, "pending", None), p(Waiting, "pending", Some(0.0))],
                Some(Waiting),
                Some(0.0),
            ),
            (
                vec![p(Waiting, "pending", None), p(Complete, "succeeded", Some(100.0))],
                Some(Executing),
                Some(50.0),
            ),
            (
                vec![
                    p(Executing, "Running", Some(40.0)),
                    p(Complete, "succeeded", Some(100.0)),
                ],
                Some(Executing),
                Some(70.0),
            ),
            (
                vec![
                    p(Complete, "succeeded", Some(100.0)),
                    p(Complete, "succeeded", Some(150.0)),
                ],
                Some(Complete),
                Some(100.0),
            ),
            (
                vec![p(Complete, "FAILED", Some(10.0)), p(Executing, "x", Some(50.0))],
                Some(Complete),
                None,
            ),
        ];
        for (list, state, percent) in cases {
            let s = summarize(list.clone());
            assert_eq!((s.processing_state, s.processing_percent), (state, percent), "{list:?}");
        }
    }
}
