//! The pod annotations a handler reports through (§5.2). Annotation values are strings, so both
//! hold JSON *text*.

use pop_core::OperationProgress;
use serde_json::{Map, Value, json};

/// The OperationProgress JSON.
pub const PROGRESS_ANNOTATION: &str = "pop.report.progress";
/// The result payload JSON, with the final report.
pub const PAYLOAD_ANNOTATION: &str = "pop.report.payload";

/// The JSON merge patch that sets the annotations of one report on a pod: a merge patch leaves
/// the pod's other annotations alone, and needs no resourceVersion (the latest report wins).
pub fn annotation_patch(progress: &OperationProgress, result: Option<&Value>) -> Value {
    let mut annotations = Map::new();
    annotations.insert(PROGRESS_ANNOTATION.into(), Value::String(json!(progress).to_string()));
    if let Some(result) = result {
        annotations.insert(PAYLOAD_ANNOTATION.into(), Value::String(result.to_string()));
    }
    json!({"metadata": {"annotations": annotations}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use pop_core::ProcessingState;

    #[test]
    fn values_are_json_text() {
        let progress = OperationProgress {
            processing_state: Some(ProcessingState::Complete),
            ..Default::default()
        };
        assert_eq!(
            annotation_patch(&progress, Some(&json!({"a": 1}))),
            json!({"metadata": {"annotations": {
                "pop.report.progress": r#"{"processingState":"COMPLETE"}"#,
                "pop.report.payload": r#"{"a":1}"#}}})
        );
        assert_eq!(
            annotation_patch(&progress, None)["metadata"]["annotations"]
                .as_object()
                .map(Map::len),
            Some(1)
        );
    }
}
