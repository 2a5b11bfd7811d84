//! The pod launcher's exact requests and its error paths, against a
//! scripted API server (`tower-test`): a create that fails transiently
//! (503, 429) is sent again with backoff and the pod then followed; a
//! create refused for good (422) fails the operation with the server's
//! words and is not retried; the pod it sends is the one the run names.

use std::pin::pin;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use pop_handlers_registry::Registry;
use pop_kube::{PodLauncher, PodLauncherConfig};
use pop_ports::launcher::conformance::{RecordingSink, run_of};
use pop_ports::{Launcher, SystemClock};
use serde_json::{Value, json};
use tower_test::mock;

type Handle = mock::Handle<Request<Body>, Response<Body>>;

fn launcher(service: mock::Mock<Request<Body>, Response<Body>>) -> PodLauncher {
    let registry = json!({"echo": {"podConfig": {"imageName": "pop-test:1", "namePrefix": "pop-test-"}}});
    PodLauncher::new(
        kube::Client::new(service, "pop"),
        Arc::new(Registry::from_value(&registry).unwrap()),
        Arc::new(SystemClock),
        PodLauncherConfig::new("pop"),
    )
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    let mut response = Response::new(Body::from(serde_json::to_vec(&body).unwrap()));
    *response.status_mut() = code;
    response
}

fn json_response(value: &Value) -> Response<Body> {
    Response::new(Body::from(serde_json::to_vec(value).unwrap()))
}

async fn body(request: Request<Body>) -> Value {
    let bytes = request.into_body().collect_bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The pod as the server has it once it succeeded, with the handler's result.
fn succeeded(pod: &Value) -> Value {
    let mut pod = pod.clone();
    pod["metadata"]["resourceVersion"] = json!("7");
    pod["metadata"]["annotations"] = json!({
        "pop.report.progress": json!({"processingState": "COMPLETE", "processingStateMessage": "succeeded"}).to_string(),
        "pop.report.payload": json!({"done": true}).to_string(),
    });
    pod["status"] = json!({"phase": "Succeeded"});
    pod
}

/// Answers the requests of a launch whose creates get `failures` first.
async fn serve(mut handle: std::pin::Pin<&mut Handle>, failures: Vec<Response<Body>>) -> (usize, Value) {
    let mut creates = 0;
    let mut failures = failures.into_iter();
    let mut created = Value::Null;
    while let Some((request, send)) = handle.next_request().await {
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        match (method, path.as_str()) {
            (Method::POST, "/api/v1/namespaces/pop/pods") => {
                creates += 1;
                let pod = body(request).await;
                match failures.next() {
                    Some(failure) => send.send_response(failure),
                    None => {
                        created = pod.clone();
                        send.send_response(json_response(&pod));
                    }
                }
            }
            (Method::GET, path) if path.ends_with("/log") => {
                send.send_response(Response::new(Body::from("HandlerComplete\n".as_bytes().to_vec())));
                // The last request of a successful launch.
                return (creates, created);
            }
            (Method::GET, _) => send.send_response(json_response(&succeeded(&created))),
            (method, path) => panic!("unexpected request {method} {path}"),
        }
    }
    (creates, created)
}

#[tokio::test]
async fn a_create_that_fails_transiently_is_sent_again_and_the_pod_followed() {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let handle = pin!(handle);
        let failures = vec![
            status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "etcd is busy"),
            status(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "slow down"),
        ];
        serve(handle, failures).await
    });
    let launcher = launcher(service);
    let run = run_of("a1", "op1", "echo", json!({"in": 1}));
    let result = launcher.launch(&run, Arc::new(RecordingSink::default())).await;
    assert_eq!(result.output, Some(json!({"done": true})), "{result:?}");
    let (creates, pod) = server.await.unwrap();
    assert_eq!(creates, 3, "two transient failures, then the create");
    // The pod the run names: its labels, its restart policy, the payload.
    assert!(pod["metadata"]["name"].as_str().unwrap().starts_with("pop-test-"));
    assert_eq!(pod["metadata"]["labels"]["pop.operation"], "op1");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    let env = pod["spec"]["containers"][0]["env"].as_array().unwrap();
    assert!(env.iter().any(|e| e["name"] == "PAYLOAD" && e["value"] == "{\"in\":1}"));
}

#[tokio::test]
async fn a_create_refused_for_good_fails_the_operation_at_once_with_the_servers_words() {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let mut handle = pin!(handle);
        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!(request.method(), Method::POST);
        send.send_response(status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "Pod \"x\" is invalid: spec.containers[0].image: Required value",
        ));
        // Nothing more: a permanent refusal is not retried.
        tokio::time::timeout(std::time::Duration::from_millis(500), handle.next_request())
            .await
            .ok()
            .flatten()
            .is_none()
    });
    let launcher = launcher(service);
    let result = launcher
        .launch(
            &run_of("a2", "op1", "echo", json!({})),
            Arc::new(RecordingSink::default()),
        )
        .await;
    assert_eq!(result.progress.processing_state_message.as_deref(), Some("failed"));
    let message = result.progress.diagnostic_events.unwrap()[0].message.clone().unwrap();
    assert!(
        message.contains("Failed to create kubernetes pod") && message.contains("Required value"),
        "{message}"
    );
    drop(launcher);
    assert!(server.await.unwrap(), "no second create after a 422");
}
