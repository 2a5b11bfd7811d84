//! Where a handler's reports go, chosen from its environment (§5.2): its pod's annotations when
//! it runs in a pod (`MY_POD_NAME`, feature `kubernetes`), else the report file
//! (`POP_REPORT_FILE`, the process launcher's), else the log.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::inputs::Env;
use crate::report::{REPORT_FILE_ENV, ReportWriter};

use super::sink::{FileSink, LogSink, Sink};
#[cfg(feature = "kubernetes")]
use super::throttle::{Retry, Throttle, Tick};

/// Overrides the pod reporting interval, in milliseconds (tests use a short one).
pub const INTERVAL_ENV: &str = "POP_REPORT_INTERVAL_MS";
/// POP's: the latest progress every 5 s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The annotations of the pod `namespace/name` (`POD_NAMESPACE`, default `default`).
    Pod {
        name: String,
        namespace: String,
        interval: Duration,
    },
    File(PathBuf),
    Log,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the report file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("this handler was built without the `kubernetes` feature")]
    NoKubernetes,
    #[cfg(feature = "kubernetes")]
    #[error(transparent)]
    Pod(#[from] super::pod::PodError),
    #[error("cannot start the reporter thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl Destination {
    /// The destination for this environment; a pod only when this build can reach one.
    pub fn choose(env: Env<'_>) -> Self {
        let destination = Self::choose_with(env, cfg!(feature = "kubernetes"));
        if !matches!(destination, Self::Pod { .. }) && non_blank(env, "MY_POD_NAME").is_some() {
            // POP would report onto the pod; say why nothing arrives there.
            println!(
                "warning: MY_POD_NAME is set but this handler was built without the `kubernetes` feature; reporting to {destination}"
            );
        }
        destination
    }

    pub(crate) fn choose_with(env: Env<'_>, pods: bool) -> Self {
        match non_blank(env, "MY_POD_NAME") {
            Some(name) if pods => Self::Pod {
                name,
                namespace: non_blank(env, "POD_NAMESPACE").unwrap_or_else(|| "default".into()),
                interval: non_blank(env, INTERVAL_ENV)
                    .and_then(|ms| ms.trim().parse().ok())
                    .map_or(DEFAULT_INTERVAL, Duration::from_millis),
            },
            _ => Self::local(env),
        }
    }

    /// The report file, else the log: where reports go outside a pod, and the fallback when the
    /// pod cannot be reached.
    pub fn local(env: Env<'_>) -> Self {
        match non_blank(env, REPORT_FILE_ENV) {
            Some(path) => Self::File(path.into()),
            None => Self::Log,
        }
    }

    pub fn open(&self) -> Result<Box<dyn Sink>, OpenError> {
        match self {
            Self::Log => Ok(Box::new(LogSink)),
            Self::File(path) => ReportWriter::open(path)
                .map(|writer| Box::new(FileSink::new(writer)) as Box<dyn Sink>)
                .map_err(|source| OpenError::File {
                    path: path.display().to_string(),
                    source,
                }),
            #[cfg(feature = "kubernetes")]
            Self::Pod {
                name,
                namespace,
                interval,
            } => {
                let publisher = super::pod::PodPublisher::connect(name, namespace)?;
                let throttle =
                    Throttle::start(publisher, Tick::Every(*interval), Retry::POP).map_err(OpenError::Thread)?;
                Ok(Box::new(throttle))
            }
            #[cfg(not(feature = "kubernetes"))]
            Self::Pod { .. } => Err(OpenError::NoKubernetes),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pod { name, namespace, .. } => write!(f, "the annotations of pod {namespace}/{name}"),
            Self::File(path) => write!(f, "the report file {}", path.display()),
            Self::Log => f.write_str("the log"),
        }
    }
}

fn non_blank(env: Env<'_>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn choose(vars: &[(&str, &str)], pods: bool) -> Destination {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        Destination::choose_with(&|name| vars.get(name).map(|v| v.to_string()), pods)
    }

    #[test]
    fn pod_then_file_then_log() {
        let all = [
            ("MY_POD_NAME", "h-1"),
            ("POD_NAMESPACE", "pop"),
            (REPORT_FILE_ENV, "/tmp/r.jsonl"),
            (INTERVAL_ENV, "50"),
        ];
        assert_eq!(
            choose(&all, true),
            Destination::Pod {
                name: "h-1".into(),
                namespace: "pop".into(),
                interval: Duration::from_millis(50)
            }
        );
        assert_eq!(
            choose(&all, false),
            Destination::File("/tmp/r.jsonl".into()),
            "no kube in this build"
        );
        assert_eq!(choose(&all[1..], true), Destination::File("/tmp/r.jsonl".into()));
        assert_eq!(choose(&[], true), Destination::Log);
        assert_eq!(
            choose(&[("MY_POD_NAME", "h-1"), (INTERVAL_ENV, "soon")], true),
            Destination::Pod {
                name: "h-1".into(),
                namespace: "default".into(),
                interval: DEFAULT_INTERVAL
            }
        );
    }
}
