//! Publishing reports onto the handler's own pod (feature `kubernetes`): a JSON merge patch of
//! its annotations through the API server `kube::Client::try_default` finds (in a pod its
//! service account; elsewhere `KUBECONFIG`). The reporter thread owns a current-thread tokio
//! runtime of its own, so handlers stay synchronous and need no runtime.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use pop_core::OperationProgress;
use serde_json::Value;

use super::annotations::annotation_patch;
use super::throttle::Publish;

/// One patch may take this long: the final report's retries must end, a hung API server must
/// not keep the handler from exiting.
const PATCH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("cannot start the reporter's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("no Kubernetes client (in-cluster config or KUBECONFIG): {0}")]
    Client(#[source] kube::Error),
    #[error("cannot patch the annotations of pod {pod}: {source}")]
    Patch {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("patching the annotations of pod {pod} took longer than {PATCH_TIMEOUT:?}")]
    Timeout { pod: String },
}

pub struct PodPublisher {
    runtime: tokio::runtime::Runtime,
    pods: Api<Pod>,
    name: String,
}

impl PodPublisher {
    pub fn connect(name: &str, namespace: &str) -> Result<Self, PodError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(PodError::Runtime)?;
        let client = runtime
            .block_on(kube::Client::try_default())
            .map_err(PodError::Client)?;
        Ok(Self {
            runtime,
            pods: Api::namespaced(client, namespace),
            name: name.to_owned(),
        })
    }
}

impl Publish for PodPublisher {
    type Error = PodError;

    fn publish(&mut self, progress: &OperationProgress, result: Option<&Value>) -> Result<(), PodError> {
        let patch = Patch::Merge(annotation_patch(progress, result));
        let params = PatchParams::default();
        // Built inside the runtime: the timer needs its context.
        let call = async { tokio::time::timeout(PATCH_TIMEOUT, self.pods.patch(&self.name, &params, &patch)).await };
        match self.runtime.block_on(call) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(source)) => Err(PodError::Patch {
                pod: self.name.clone(),
                source,
            }),
            Err(_) => Err(PodError::Timeout { pod: self.name.clone() }),
        }
    }
}
