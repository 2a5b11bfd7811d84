//! A running fake cluster: the API server on a loopback port, its one node
//! (the process kubelet), and a kubeconfig that points at it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::state::{Audit, Cluster, ClusterOptions, Logs};
use crate::store::Store;
use crate::{api, kubelet};

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
            audit: Audit::default(),
            options: Arc::new(options),
            processes: Arc::default(),
        };
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let address = listener.local_addr()?;
        let kubeconfig = cluster.options.work_dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &format!("http://{address}"))?;
        let router = api::router(cluster.clone());
        // Like a real API server (Go sets TCP_NODELAY on every connection):
        // without it a watch's second small event waits out the client's
        // delayed ACK, 40 ms on Linux.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
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
