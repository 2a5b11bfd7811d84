//! Executor pods (spec §5.1, §5.3.1): a remote puller runs each claimed
//! agenda as a pod of the registry's `executor` entry, which runs `pop
//! executor` with the agenda as its payload and reports through the
//! ResourcePool service. The puller honours the insight's
//! `executionLimit` by counting the insight's executor pods that still
//! run; an executor pod deletes itself when done (POP's
//! `executor.reap.self`) unless told not to.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use pop_core::Operation;
use pop_handlers_registry::{HandlerSpec, Registry};
use pop_ports::{OperationRun, Placement};
use serde_json::{Value, json};

use crate::pod::{self, INSIGHT_LABEL, MANAGED_BY, PodSite};

/// The registry entry of executor pods.
pub const EXECUTOR_TYPE: &str = "executor";
/// Marks executor pods among POP's pods.
pub const ROLE_LABEL: (&str, &str) = ("pop.role", "executor");

/// Why an executor pod could not be started or counted.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorPodError {
    #[error("the handlers registry has no `executor` entry with a podConfig")]
    NoExecutorEntry,
    #[error("the executor pod is not a valid pod: {0}")]
    Invalid(String),
    #[error("Kubernetes refused: {0}")]
    Api(#[from] kube::Error),
}

/// One claimed agenda to run as an executor pod.
#[derive(Debug, Clone)]
pub struct ExecutorRun {
    pub agenda_id: String,
    pub progress_id: String,
    pub customer_id: String,
    pub cid: String,
    /// The delivery it runs: a redelivery gets a pod of its own.
    pub delivery: i64,
    pub placement: Placement,
    /// The agenda JSON (the pod's payload).
    pub agenda: Value,
    /// Further environment (`LAST_PROGRESS`, the lease, the server, the token).
    pub env: Vec<(String, String)>,
}

/// Starts and counts executor pods.
pub struct ExecutorPods {
    client: kube::Client,
    registry: Arc<Registry>,
    /// The namespace of pods whose run names none.
    namespace: String,
    /// Namespaces pods were started in (counted with the default).
    used: Mutex<BTreeSet<String>>,
}

impl ExecutorPods {
    /// On the cluster found the standard way (`KUBECONFIG`, the in-cluster
    /// service account).
    pub async fn connect(registry: Arc<Registry>, namespace: String) -> Result<Self, crate::ConnectError> {
        let client = kube::Client::try_default().await.map_err(crate::ConnectError::Config)?;
        Ok(Self::new(client, registry, namespace))
    }

    pub fn new(client: kube::Client, registry: Arc<Registry>, namespace: String) -> Self {
        Self {
            client,
            registry,
            namespace,
            used: Mutex::default(),
        }
    }

    fn namespace_of<'a>(&'a self, run: &'a ExecutorRun) -> &'a str {
        run.placement.namespace.as_deref().unwrap_or(&self.namespace)
    }

    /// Starts `run`'s executor pod; an existing one of the same delivery
    /// (a puller that restarted) is kept. The pod's name.
    pub async fn start(&self, run: &ExecutorRun) -> Result<String, ExecutorPodError> {
        let Ok(HandlerSpec::Pod(spec)) = self.registry.resolve(EXECUTOR_TYPE) else {
            return Err(ExecutorPodError::NoExecutorEntry);
        };
        let operation_run = OperationRun {
            name: EXECUTOR_TYPE.into(),
            operation: Operation {
                name: Some(EXECUTOR_TYPE.into()),
                op_type: Some(EXECUTOR_TYPE.into()),
                ..Default::default()
            },
            payload: run.agenda.clone(),
            last_progress: None,
            agenda_id: run.agenda_id.clone(),
            progress_id: run.progress_id.clone(),
            customer_id: run.customer_id.clone(),
            cid: run.cid.clone(),
            attempt: run.delivery,
            placement: run.placement.clone(),
        };
        let name = pod::pod_name(&spec, &operation_run);
        let mut object = pod::build(&spec, &operation_run, &name, &PodSite::default());
        object["metadata"]["labels"][ROLE_LABEL.0] = json!(ROLE_LABEL.1);
        pod::set_env(&mut object, &run.env);
        let pod: Pod = serde_json::from_value(object).map_err(|e| ExecutorPodError::Invalid(e.to_string()))?;
        let namespace = self.namespace_of(run).to_owned();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        match pods.create(&PostParams::default(), &pod).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        self.used.lock().unwrap_or_else(|e| e.into_inner()).insert(namespace);
        Ok(name)
    }

    /// The executor pods of `insight_id` that still run (Pending or
    /// Running, not being deleted), in every namespace this puller used.
    pub async fn active(&self, insight_id: &str) -> Result<usize, ExecutorPodError> {
        let mut namespaces = self.used.lock().unwrap_or_else(|e| e.into_inner()).clone();
        namespaces.insert(self.namespace.clone());
        let selector = format!(
            "{}={},{}={},{INSIGHT_LABEL}={}",
            MANAGED_BY.0,
            MANAGED_BY.1,
            ROLE_LABEL.0,
            ROLE_LABEL.1,
            pod::label_value(insight_id)
        );
        let mut active = 0;
        for namespace in namespaces {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            let list = pods.list(&ListParams::default().labels(&selector)).await?;
            active += list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| {
                    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
                    matches!(phase, "Pending" | "Running")
                })
                .count();
        }
        Ok(active)
    }
}

/// An executor pod's last act: delete its own pod (`MY_POD_NAME` in
/// `POD_NAMESPACE`), found through the cluster the standard way.
pub async fn delete_own_pod() -> Result<(), ExecutorPodError> {
    let (Ok(name), Ok(namespace)) = (std::env::var("MY_POD_NAME"), std::env::var("POD_NAMESPACE")) else {
        return Ok(());
    };
    let client = kube::Client::try_default().await?;
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    match pods.delete(&name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
