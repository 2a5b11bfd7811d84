//! What the API handlers and the kubelet share: the store, the container
//! logs, the running processes and the cluster's settings.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::store::Store;

/// The node's name.
pub const NODE_NAME: &str = "fake-node";

/// How the fake cluster runs.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Namespaces that exist from the start (a real cluster has `default`).
    pub namespaces: Vec<String>,
    /// Image → local program the kubelet runs for it (its entrypoint);
    /// an image not named here fails to pull (`ErrImagePull`).
    pub images: HashMap<String, PathBuf>,
    /// The node's labels: a pod whose `nodeSelector` they do not satisfy
    /// stays Pending, `PodScheduled=False`, reason `Unschedulable`.
    pub node_labels: HashMap<String, String>,
    /// Where container logs and the kubeconfig are written.
    pub work_dir: PathBuf,
}

impl ClusterOptions {
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        Self {
            namespaces: vec!["default".into()],
            images: HashMap::new(),
            node_labels: HashMap::from([("kubernetes.io/hostname".into(), NODE_NAME.into())]),
            work_dir: work_dir.into(),
        }
    }
}

/// A pod: (namespace, name).
type PodKey = (String, String);

/// Container logs the kubelet writes, by pod: the file, and whether the
/// container ended.
#[derive(Clone, Default)]
pub struct Logs {
    files: Arc<Mutex<HashMap<PodKey, (PathBuf, bool)>>>,
}

impl Logs {
    pub fn path(&self, namespace: &str, name: &str) -> Option<PathBuf> {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|(p, _)| p.clone())
    }

    /// Whether the pod's container ended (a following log reader stops).
    pub fn ended(&self, namespace: &str, name: &str) -> bool {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files
            .get(&(namespace.to_owned(), name.to_owned()))
            .is_none_or(|(_, ended)| *ended)
    }

    pub(crate) fn started(&self, namespace: &str, name: &str, path: PathBuf) {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files.insert((namespace.to_owned(), name.to_owned()), (path, false));
    }

    pub(crate) fn end(&self, namespace: &str, name: &str) {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = files.get_mut(&(namespace.to_owned(), name.to_owned())) {
            entry.1 = true;
        }
    }
}

/// One object a client created, as a real API server's audit log records
/// it (`verb: create`, `ResponseComplete`): tests count pods created per
/// operation from it, whatever was deleted since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creation {
    /// The resource's plural (`pods`).
    pub resource: String,
    pub namespace: String,
    pub name: String,
    /// The object's labels as created.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The audit log of creations.
#[derive(Clone, Default)]
pub struct Audit {
    creations: Arc<Mutex<Vec<Creation>>>,
}

impl Audit {
    pub(crate) fn created(&self, creation: Creation) {
        self.creations.lock().unwrap_or_else(|e| e.into_inner()).push(creation);
    }

    /// Every creation so far, in order.
    pub fn creations(&self) -> Vec<Creation> {
        self.creations.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What the API handlers and the kubelet share.
#[derive(Clone)]
pub struct Cluster {
    pub store: Store,
    pub logs: Logs,
    pub audit: Audit,
    pub options: Arc<ClusterOptions>,
    /// The running containers' process ids (each leads its process group),
    /// by pod.
    pub(crate) processes: Arc<Mutex<HashMap<PodKey, i32>>>,
}
