//! `pop-pod-report progress|result JSON`: a handler in a pod reports
//! through its own pod's annotations (spec §5.2: `pop.report.progress`,
//! and with the result `pop.report.payload`), found through `MY_POD_NAME`
//! and `POD_NAMESPACE` (the downward API), the API server through
//! `KUBECONFIG` or the service account, the standard way. For handlers
//! written in any language: `pop-pod-report result '{"out": 1}'`.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (what, body) = match (args.next(), args.next()) {
        (Some(what), Some(body)) => (what, body),
        _ => return Err("usage: pop-pod-report progress|result JSON".into()),
    };
    let value: Value = serde_json::from_str(&body).map_err(|e| format!("not JSON: {e}"))?;
    let pod = std::env::var("MY_POD_NAME").map_err(|_| "MY_POD_NAME is not set")?;
    let namespace = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "default".into());
    let annotations = match what.as_str() {
        "progress" => json!({"pop.report.progress": value.to_string()}),
        "result" => {
            let progress = json!({"processingState": "COMPLETE", "processingStateMessage": "succeeded",
                "percentComplete": 100.0});
            json!({"pop.report.progress": progress.to_string(), "pop.report.payload": value.to_string()})
        }
        other => return Err(format!("unknown report {other:?}: progress or result").into()),
    };
    let client = kube::Client::try_default().await?;
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    pods.patch(
        &pod,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": annotations}})),
    )
    .await?;
    Ok(())
}
