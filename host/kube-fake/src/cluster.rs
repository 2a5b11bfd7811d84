//! A running fake cluster: the API server on a loopback port, its one node
//! (the process kubelet), and a kubeconfig that points at it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::store::Store;
use crate::{api, kubelet};

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
            node_labels: HashMap::from([("kubernetes.io/hostname".into(), kubelet::NODE_NAME.into())]),
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

/// What the API handlers and the kubelet share.
#[derive(Clone)]
pub struct Cluster {
    pub store: Store,
    pub logs: Logs,
    pub options: Arc<ClusterOptions>,
    /// The running containers' process ids (each leads its process group),
    /// by pod.
    pub(crate) processes: Arc<Mutex<HashMap<PodKey, i32>>>,
}

/// A fake cluster serving on loopback until dropped.
pub struct FakeCluster {
    pub address: SocketAddr,
    /// A kubeconfig naming the server (for `KUBECONFIG`).
    pub kubeconfig: PathBuf,
    pub cluster: Cluster,
    server: JoinHandle<()>,
    kubelet: JoinHandle<()>,
}

impl FakeCluster {
    /// Starts the API server on `127.0.0.1:port` (0 picks one) and the
    /// kubelet.
    pub async fn start(options: ClusterOptions, port: u16) -> std::io::Result<Self> {
        std::fs::create_dir_all(&options.work_dir)?;
        let namespaces: Vec<&str> = options.namespaces.iter().map(String::as_str).collect();
        let cluster = Cluster {
            store: Store::new(&namespaces),
            logs: Logs::default(),
            options: Arc::new(options),
            processes: Arc::default(),
        };
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let address = listener.local_addr()?;
        let kubeconfig = cluster.options.work_dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &format!("http://{address}"))?;
        let router = api::router(cluster.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let kubelet = tokio::spawn(kubelet::run(cluster.clone(), kubeconfig.clone()));
        Ok(Self {
            address,
            kubeconfig,
            cluster,
            server,
            kubelet,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.server.abort();
        self.kubelet.abort();
        kubelet::kill_all(&self.cluster);
    }
}

/// A kubeconfig with one cluster, user and context, the namespace `default`.
pub fn write_kubeconfig(path: &Path, server: &str) -> std::io::Result<()> {
    let config = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "fake", "user": {"token": "fake-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
    });
    // JSON is YAML: any kubeconfig reader takes it.
    std::fs::write(path, serde_json::to_vec_pretty(&config).unwrap_or_default())
}
