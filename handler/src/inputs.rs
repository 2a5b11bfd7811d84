//! What a handler is given (spec §5.2): the payload, the prior progress and the operation's
//! metadata. Everything is read through an environment lookup and an argument list, so a test
//! passes its own instead of mutating the process environment.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::payload::{self, COMPRESSED_ENV_VAR, PAYLOAD_TYPE_ENV, PayloadError, SEGMENT_PREFIX};

/// An environment lookup: `None` for an unset variable.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as an [`Env`], non-Unicode values read as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Failed to parse the payload: {0}")]
    Payload(#[source] serde_json::Error),
    #[error("Failed to parse LAST_PROGRESS: {0}")]
    LastProgress(#[source] serde_json::Error),
    #[error(transparent)]
    Compressed(#[from] PayloadError),
}

/// The operation's metadata variables, each `None` when unset or blank.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub cid: Option<String>,
    pub agenda_id: Option<String>,
    pub operation_name: Option<String>,
    pub operation_id: Option<String>,
    pub customer_id: Option<String>,
    pub progress_id: Option<String>,
    /// `MY_POD_NAME` (the downward API): set only in a pod, where the reporter writes to its
    /// annotations.
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    pub log_level: Option<String>,
}

impl Metadata {
    /// The variable names, in the order POP logs them.
    pub const NAMES: [&'static str; 9] = [
        "CID",
        "AGENDA_ID",
        "OPERATION_NAME",
        "OPERATION_ID",
        "CUSTOMER_ID",
        "PROGRESS_ID",
        "MY_POD_NAME",
        "POD_NAMESPACE",
        "LOG_LEVEL",
    ];

    pub fn read(env: Env<'_>) -> Self {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        Self {
            cid: get("CID"),
            agenda_id: get("AGENDA_ID"),
            operation_name: get("OPERATION_NAME"),
            operation_id: get("OPERATION_ID"),
            customer_id: get("CUSTOMER_ID"),
            progress_id: get("PROGRESS_ID"),
            pod_name: get("MY_POD_NAME"),
            pod_namespace: get("POD_NAMESPACE"),
            log_level: get("LOG_LEVEL"),
        }
    }

    /// `(name, value)` of each variable that is set, in [`Self::NAMES`] order.
    pub fn fields(&self) -> Vec<(&'static str, &str)> {
        let values = [
            &self.cid,
            &self.agenda_id,
            &self.operation_name,
            &self.operation_id,
            &self.customer_id,
            &self.progress_id,
            &self.pod_name,
            &self.pod_namespace,
            &self.log_level,
        ];
        Self::NAMES
            .into_iter()
            .zip(values)
            .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
            .collect()
    }

    /// The operation name, empty when unset (as POP formats it).
    pub fn operation(&self) -> &str {
        self.operation_name.as_deref().unwrap_or_default()
    }
}

/// Everything the launcher handed this handler.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    /// The payload JSON; `None` when the launcher sent none.
    pub payload: Option<Value>,
    /// The prior OperationProgress (resuming after an earlier attempt), as JSON.
    pub last_progress: Option<Value>,
    pub metadata: Metadata,
}

impl Inputs {
    /// Reads the process's own environment and arguments.
    pub fn from_process() -> Result<Self, InputError> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        Self::read(&process_env, &args)
    }

    /// The payload: `-payloadFile <path>` wins (files exist for payloads too big for a
    /// variable), else `PAYLOAD`, else, when `POP_PAYLOAD_TYPE=compressedEnvVar`, the segments
    /// `POP_COMPRESSED_PAYLOAD_0..N` up to the first missing one. The prior progress:
    /// `-lastProgressFile <path>`, else `LAST_PROGRESS`. Blank values count as unset. `args`
    /// excludes the program name.
    pub fn read(env: Env<'_>, args: &[String]) -> Result<Self, InputError> {
        let arg = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let text = match arg("-payloadFile") {
            Some(path) => Some(read_file(path)?),
            None => match var("PAYLOAD") {
                Some(text) => Some(text),
                None if env(PAYLOAD_TYPE_ENV).as_deref() == Some(COMPRESSED_ENV_VAR) => {
                    Some(payload::decompress(&segments(env))?)
                }
                None => None,
            },
        };
        let payload = parse(text, InputError::Payload)?;
        let last_progress = match arg("-lastProgressFile") {
            Some(path) => Some(read_file(path)?),
            None => var("LAST_PROGRESS"),
        };
        let last_progress = parse(last_progress, InputError::LastProgress)?;
        Ok(Self {
            payload,
            last_progress,
            metadata: Metadata::read(env),
        })
    }

    /// The payload as the handler's own type; an absent payload reads as JSON `null` (so an
    /// `Option` or a type with `#[serde(default)]`-only fields still works).
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, InputError> {
        let value = self.payload.clone().unwrap_or(Value::Null);
        serde_json::from_value(value).map_err(InputError::Payload)
    }
}

fn segments(env: Env<'_>) -> Vec<String> {
    (0..).map_while(|i| env(&format!("{SEGMENT_PREFIX}{i}"))).collect()
}

fn read_file(path: &str) -> Result<String, InputError> {
    std::fs::read_to_string(Path::new(path)).map_err(|source| InputError::File {
        path: path.to_owned(),
        source,
    })
}

fn parse(text: Option<String>, error: fn(serde_json::Error) -> InputError) -> Result<Option<Value>, InputError> {
    text.filter(|t| !t.trim().is_empty())
        .map(|t| serde_json::from_str(&t).map_err(error))
        .transpose()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::payload::compress;

    fn read(vars: &[(&str, &str)], args: &[&str]) -> Result<Inputs, InputError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Inputs::read(&|name| vars.get(name).cloned(), &args)
    }

    #[test]
    fn payload_file_wins_over_the_variables() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("payload.json");
        std::fs::write(&file, r#"{"from": "file"}"#).unwrap();
        let segments = compress(r#"{"from": "segments"}"#, 8);
        let mut vars = vec![
            ("PAYLOAD", r#"{"from": "env"}"#),
            (PAYLOAD_TYPE_ENV, COMPRESSED_ENV_VAR),
        ];
        let names: Vec<String> = (0..segments.len()).map(|i| format!("{SEGMENT_PREFIX}{i}")).collect();
        vars.extend(
            names
                .iter()
                .map(String::as_str)
                .zip(segments.iter().map(String::as_str)),
        );

        let path = file.display().to_string();
        let inputs = read(&vars, &["-launchType", "local", "-payloadFile", &path]).unwrap();
        assert_eq!(inputs.payload, Some(json!({"from": "file"})));
        let inputs = read(&vars, &[]).unwrap();
        assert_eq!(
            inputs.payload,
            Some(json!({"from": "env"})),
            "PAYLOAD before the segments"
        );
        vars[0].1 = "  ";
        let inputs = read(&vars, &[]).unwrap();
        assert_eq!(
            inputs.payload,
            Some(json!({"from": "segments"})),
            "blank PAYLOAD is unset"
        );
    }

    #[test]
    fn segments_are_read_in_order_up_to_the_first_missing() {
        let segments = compress(r#"{"n": 1}"#, 4);
        assert!(segments.len() > 2);
        let mut vars: Vec<(String, String)> = segments
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("{SEGMENT_PREFIX}{i}"), s.clone()))
            .collect();
        // A stray segment after a gap is not part of the payload.
        vars.push((format!("{SEGMENT_PREFIX}{}", segments.len() + 1), "garbage".into()));
        vars.push((PAYLOAD_TYPE_ENV.into(), COMPRESSED_ENV_VAR.into()));
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(read(&pairs, &[]).unwrap().payload, Some(json!({"n": 1})));

        // Without POP_PAYLOAD_TYPE the segments are not looked at.
        assert_eq!(read(&pairs[..pairs.len() - 1], &[]).unwrap().payload, None);
        // The type without segments is an error, not an empty payload.
        let error = read(&[(PAYLOAD_TYPE_ENV, COMPRESSED_ENV_VAR)], &[]).unwrap_err();
        assert!(
            matches!(error, InputError::Compressed(PayloadError::NoSegments)),
            "{error}"
        );
    }

    #[test]
    fn last_progress_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("last.json");
        std::fs::write(&file, r#"{"processingState": "EXECUTING"}"#).unwrap();
        let vars = [
            ("LAST_PROGRESS", r#"{"processingState": "WAITING"}"#),
            ("CID", "c-1"),
            ("OPERATION_NAME", "op"),
            ("AGENDA_ID", " "),
            ("MY_POD_NAME", "pod-1"),
        ];
        let inputs = read(&vars, &[]).unwrap();
        assert_eq!(inputs.last_progress, Some(json!({"processingState": "WAITING"})));
        assert_eq!(inputs.payload, None);
        assert_eq!(
            inputs.metadata.fields(),
            [("CID", "c-1"), ("OPERATION_NAME", "op"), ("MY_POD_NAME", "pod-1")]
        );
        let path = file.display().to_string();
        let inputs = read(&vars, &["-lastProgressFile", &path]).unwrap();
        assert_eq!(inputs.last_progress, Some(json!({"processingState": "EXECUTING"})));
    }

    #[test]
    fn unreadable_or_invalid_inputs_are_errors() {
        let error = read(&[], &["-payloadFile", "/nonexistent/p.json"]).unwrap_err();
        assert!(
            error.to_string().starts_with("cannot read /nonexistent/p.json"),
            "{error}"
        );
        let error = read(&[("PAYLOAD", "{not json")], &[]).unwrap_err();
        assert!(error.to_string().starts_with("Failed to parse the payload"), "{error}");
        let error = read(&[("LAST_PROGRESS", "[")], &[]).unwrap_err();
        assert!(
            error.to_string().starts_with("Failed to parse LAST_PROGRESS"),
            "{error}"
        );
    }

    #[test]
    fn payload_as_a_handler_type() {
        #[derive(serde::Deserialize, Default)]
        struct Input {
            #[serde(default)]
            n: i64,
        }
        let inputs = read(&[("PAYLOAD", r#"{"n": 3}"#)], &[]).unwrap();
        assert_eq!(inputs.payload_as::<Input>().unwrap().n, 3);
        let none = Inputs::default();
        assert_eq!(none.payload_as::<Option<Input>>().unwrap().map(|i| i.n), None);
    }
}
