//! The sample handler's payload (§5.6), kept in the library so its rules are unit-tested; the
//! `pop-sample-handler` binary does the I/O.

use std::time::Duration;

use pop_core::ParamsMap;
use serde::Deserialize;
use serde_json::Value;

/// `{"actions": [...], "resultPayload": {...}}`; both optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SamplePayload {
    #[serde(default)]
    pub actions: Vec<SampleAction>,
    /// The handler's output, echoed unchanged.
    #[serde(default)]
    pub result_payload: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleAction {
    pub action: String,
    #[serde(default)]
    pub params_map: ParamsMap,
}

/// What an action does after its sleep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    Log {
        message: String,
    },
    Exception {
        message: String,
    },
    /// POP launched a utility pod with these container args; locally they are a command line.
    ExternalExecute {
        args: Vec<String>,
    },
}

impl SampleAction {
    /// The action, or the failure an unknown one causes.
    pub fn kind(&self) -> Result<ActionKind, String> {
        let text = |key: &str| self.params_map.get_string(key).unwrap_or_default();
        match self.action.as_str() {
            "log" => Ok(ActionKind::Log {
                message: text("logMessage"),
            }),
            "exception" => Ok(ActionKind::Exception {
                message: text("exceptionMessage"),
            }),
            "externalExecute" => {
                let args = match self.params_map.get("externalArgs") {
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                };
                Ok(ActionKind::ExternalExecute { args })
            }
            other => Err(format!("Unknown action: {other}")),
        }
    }

    /// The sleep before the action as `(steps, step length)`, or `None` for no sleep.
    /// POP slept `max(1, ms/1000)` steps of one second; here the steps share the requested time
    /// so the total matches it (the same for whole seconds).
    pub fn sleep_steps(&self) -> Option<(u64, Duration)> {
        let ms = u64::try_from(self.params_map.get_long("sleepMilliseconds")?)
            .ok()
            .filter(|ms| *ms > 0)?;
        let steps = (ms / 1000).max(1);
        Some((steps, Duration::from_millis(ms / steps)))
    }
}

/// Percent complete after step `done` of `steps` (1-based).
pub fn step_percent(done: u64, steps: u64) -> f64 {
    done as f64 * 100.0 / steps as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn action(value: Value) -> SampleAction {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn actions_and_sleeps() {
        let log = action(json!({"action": "log", "paramsMap": {"logMessage": "hi", "sleepMilliseconds": "2500"}}));
        assert_eq!(log.kind(), Ok(ActionKind::Log { message: "hi".into() }));
        assert_eq!(log.sleep_steps(), Some((2, Duration::from_millis(1250))));
        assert_eq!(
            action(json!({"action": "log", "paramsMap": {"sleepMilliseconds": 300}})).sleep_steps(),
            Some((1, Duration::from_millis(300)))
        );
        assert_eq!(
            action(json!({"action": "log", "paramsMap": {"sleepMilliseconds": -1}})).sleep_steps(),
            None
        );
        assert_eq!(action(json!({"action": "log"})).sleep_steps(), None);
        assert_eq!(
            action(json!({"action": "externalExecute", "paramsMap": {"externalArgs": ["sh", "-c", "ls"]}})).kind(),
            Ok(ActionKind::ExternalExecute {
                args: vec!["sh".into(), "-c".into(), "ls".into()]
            })
        );
        assert_eq!(
            action(json!({"action": "dance"})).kind(),
            Err("Unknown action: dance".into())
        );
        assert_eq!(step_percent(1, 4), 25.0);
    }

    #[test]
    fn payload_defaults() {
        let payload: SamplePayload = serde_json::from_value(json!({})).unwrap();
        assert_eq!(payload, SamplePayload::default());
    }
}
