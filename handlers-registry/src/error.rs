use std::path::PathBuf;

use thiserror::Error;

/// Why a registry could not be loaded or an operation type not resolved.
#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("cannot read registry file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("registry is not valid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    /// A value has the wrong shape; `path` is the JSON path inside the registry document,
    /// e.g. `sample.processConfig.timeoutMs`.
    #[error("invalid registry entry at {path}: {message}")]
    Invalid { path: String, message: String },
    /// The exact text of POP's executor (§5.3.6), so callers can append " on operation: N".
    #[error("Unknown operation type found: {0}")]
    UnknownOperationType(String),
}

impl RegistryError {
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Why a handler could not be launched at all. A handler that ran and failed is not an error:
/// it is an [`crate::Outcome::Failed`] with diagnostics.
#[derive(Debug, Error)]
pub enum LaunchError {
    #[error("cannot create the report file: {0}")]
    ReportFile(#[source] std::io::Error),
    #[error("cannot start handler program {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot wait for handler program {program}: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialize the handler input: {0}")]
    Input(#[source] serde_json::Error),
}
