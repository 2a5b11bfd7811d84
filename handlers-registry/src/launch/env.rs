//! The environment half of the launch contract (§5.2), local variant.

use crate::error::LaunchError;
use crate::launch::LaunchInput;
use crate::report::REPORT_FILE_ENV;

/// Every variable the contract defines. Those without a value for this launch are *removed*
/// from the child's environment, so a value inherited from the launcher's own environment (the
/// executor itself runs under the contract) never passes for this operation's. `MY_POD_NAME`
/// is always removed: a handler that inherited the executor's would report onto the executor's
/// pod; `POP_PAYLOAD_TYPE` too, because the payload is always plain `PAYLOAD` here.
pub const CONTRACT_VARS: [&str; 12] = [
    "PAYLOAD",
    "LAST_PROGRESS",
    "CID",
    "AGENDA_ID",
    "OPERATION_NAME",
    "OPERATION_ID",
    "CUSTOMER_ID",
    "PROGRESS_ID",
    "LOG_LEVEL",
    REPORT_FILE_ENV,
    "MY_POD_NAME",
    "POP_PAYLOAD_TYPE",
];

/// `(name, value)` for each contract variable; `None` means "remove".
pub(crate) fn contract_env(
    input: &LaunchInput,
    report_file: &str,
) -> Result<Vec<(&'static str, Option<String>)>, LaunchError> {
    let payload = serde_json::to_string(&input.payload).map_err(LaunchError::Input)?;
    let last_progress = input
        .last_progress
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(LaunchError::Input)?;
    let non_blank = |value: &Option<String>| value.as_ref().filter(|v| !v.trim().is_empty()).cloned();
    let values = [
        Some(payload),
        last_progress,
        non_blank(&input.cid),
        non_blank(&input.agenda_id),
        non_blank(&input.operation_name),
        non_blank(&input.operation_id),
        non_blank(&input.customer_id),
        non_blank(&input.progress_id),
        Some(non_blank(&input.log_level).unwrap_or_else(|| "INFO".to_owned())),
        Some(report_file.to_owned()),
        None,
        None,
    ];
    Ok(CONTRACT_VARS.into_iter().zip(values).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blank_ids_are_removed_and_defaults_filled() {
        let input = LaunchInput {
            payload: json!({"a": 1}),
            cid: Some("c-1".into()),
            agenda_id: Some("  ".into()),
            ..Default::default()
        };
        let env = contract_env(&input, "/tmp/r.jsonl").unwrap();
        let get = |name: &str| env.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        assert_eq!(get("PAYLOAD").as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(get("CID").as_deref(), Some("c-1"));
        assert_eq!(get("AGENDA_ID"), None);
        assert_eq!(get("LAST_PROGRESS"), None);
        assert_eq!(get("LOG_LEVEL").as_deref(), Some("INFO"));
        assert_eq!(get(REPORT_FILE_ENV).as_deref(), Some("/tmp/r.jsonl"));
        assert_eq!(get("MY_POD_NAME"), None);
        assert_eq!(env.len(), CONTRACT_VARS.len());
    }
}
