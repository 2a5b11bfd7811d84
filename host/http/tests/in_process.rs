//! The router in-process (`tower::ServiceExt::oneshot`, no socket) on the
//! in-memory fakes: authentication through the `Identity` port, the mapping
//! of application and engine errors to statuses and `errorResponse` bodies,
//! and a few routes end to end.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header, request::Parts};
use pop_app::plugins::PluginHost;
use pop_app::{AppState, Engines};
use pop_core::visibility::Caller;
use pop_memory::{Fault, FaultyStore, MemoryBlobStore, MemoryQueue, MemoryStore};
use pop_ports::{Identity, IdentityError, ManualClock, ObjectKind, Store, Write, bearer_token};
use pop_wasm::{Runtime, RuntimeConfig};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tower::ServiceExt;

/// Two callers by fixed tokens, and a token whose lookup is "down".
struct FixedTokens;

#[async_trait]
impl Identity for FixedTokens {
    async fn authenticate(&self, request: &Parts) -> Result<Caller, IdentityError> {
        match bearer_token(request)? {
            "admin" => Ok(Caller::new("admin", [], true)),
            "alice" => Ok(Caller::new("alice", ["acme".to_string()], false)),
            "bob" => Ok(Caller::new("bob", ["globex".to_string()], false)),
            "puller" => Ok(Caller::new("puller", ["acme".to_string()], false).scoped_to(["acme:insight".to_string()])),
            "flaky" => Err(IdentityError::Unavailable {
                message: "the token service timed out".into(),
                source: None,
            }),
            _ => Err(IdentityError::Rejected("Unknown token.".into())),
        }
    }
}

struct Api {
    router: Router,
    store: Arc<FaultyStore>,
    clock: Arc<ManualClock>,
}

/// Where the manual clock of every in-process API starts.
const START: i64 = 1_800_000_000_000;

async fn api() -> Api {
    let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let clock = Arc::new(ManualClock::at(START));
    let runtime = Runtime::new(RuntimeConfig::default()).expect("wasm runtime");
    let plugins = PluginHost::start(
        Arc::new(runtime),
        store.clone(),
        Arc::new(MemoryBlobStore::new()),
        clock.clone(),
    )
    .await
    .expect("plugin host");
    let engines = Engines {
        store: store.clone() as Arc<dyn Store>,
        queue: Arc::new(MemoryQueue::new(clock.clone())),
        clock: clock.clone(),
    };
    let state = AppState::new(engines, Arc::new(FixedTokens), plugins, Arc::new(Notify::new()));
    Api {
        router: pop_http::router(state),
        store,
        clock,
    }
}

impl Api {
    async fn call(&self, method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = self.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).expect("every answer is JSON"))
    }
}

fn assert_error(answer: &(StatusCode, Value), status: StatusCode, title: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"], true, "{body}");
    assert_eq!(body["errorResponse"]["responseCode"], status.as_u16(), "{body}");
    assert_eq!(body["errorResponse"]["title"], title, "{body}");
    assert_eq!(body["errorResponse"]["correlationId"], body["cid"], "{body}");
}

#[tokio::test]
async fn requests_are_authenticated_through_the_identity_port() {
    let api = api().await;
    let missing = api.call(Method::GET, "/pop/customer", None, None).await;
    assert_error(&missing, StatusCode::UNAUTHORIZED, "UnauthenticatedException");
    let unknown = api.call(Method::GET, "/pop/customer", Some("mallory"), None).await;
    assert_error(&unknown, StatusCode::UNAUTHORIZED, "UnauthenticatedException");
    assert_eq!(unknown.1["errorResponse"]["description"], "Unknown token.");
    // An identity engine that is down is a retryable 503, not a 401 that
    // would make a client drop its credentials.
    let down = api.call(Method::GET, "/pop/customer", Some("flaky"), None).await;
    assert_error(&down, StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableException");
    assert!(
        !down.1.to_string().contains("timed out"),
        "engine details stay in the log"
    );
    let (status, body) = api.call(Method::GET, "/pop/customer", Some("alice"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 0);
}

#[tokio::test]
async fn objects_are_created_read_and_hidden_from_other_tenants() {
    let api = api().await;
    let customer = json!({"customerId": "acme", "title": "Acme"});
    let (status, body) = api
        .call(Method::POST, "/pop/customer", Some("admin"), Some(customer))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let insight = json!({"id": "acme:work", "customerId": "acme", "title": "work"});
    let (status, body) = api
        .call(Method::POST, "/pop/insight", Some("alice"), Some(insight))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["all"][0]["id"], "acme:work");
    assert_eq!(
        body["all"][0]["addedTime"], START,
        "times come from the application's clock"
    );
    api.clock.advance(std::time::Duration::from_secs(5));
    let (status, body) = api
        .call(
            Method::PUT,
            "/pop/insight/acme:work",
            Some("alice"),
            Some(json!({"title": "renamed"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["all"][0]["updatedTime"], START + 5_000);
    assert_eq!(body["all"][0]["addedTime"], START);

    let (status, body) = api
        .call(Method::GET, "/pop/insight/acme:work", Some("alice"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["all"][0]["customerId"], "acme");
    // Another tenant is told nothing exists, not that it is forbidden.
    let hidden = api.call(Method::GET, "/pop/insight/acme:work", Some("bob"), None).await;
    assert_error(&hidden, StatusCode::NOT_FOUND, "ObjectNotFoundException");
    let (_, listing) = api.call(Method::GET, "/pop/insight", Some("bob"), None).await;
    assert_eq!(listing["count"], 0, "{listing}");
    // Writing for a customer one does not act for is refused by name.
    let foreign = json!({"id": "globex:work", "customerId": "globex", "title": "work"});
    let refused = api
        .call(Method::POST, "/pop/insight", Some("alice"), Some(foreign))
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "UnauthorizedException");
    assert!(
        refused.1["errorResponse"]["description"]
            .as_str()
            .unwrap()
            .contains("globex")
    );
}

#[tokio::test]
async fn bad_input_is_a_4xx_naming_the_problem() {
    let api = api().await;
    let request = Request::builder()
        .method(Method::POST)
        .uri("/pop/customer")
        .header(header::AUTHORIZATION, "Bearer admin")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_slice(&to_bytes(response.into_body(), usize::MAX).await.unwrap()).unwrap();
    assert_eq!(body["errorResponse"]["title"], "BadRequestException");

    let absent = api.call(Method::GET, "/pop/agenda/nope", Some("admin"), None).await;
    assert_error(&absent, StatusCode::NOT_FOUND, "ObjectNotFoundException");
    let method = api.call(Method::PATCH, "/pop/customer", Some("admin"), None).await;
    assert_error(&method, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowedException");
    let twice = json!({"customerId": "acme", "title": "Acme"});
    api.call(Method::POST, "/pop/customer", Some("admin"), Some(twice.clone()))
        .await;
    let conflict = api
        .call(Method::POST, "/pop/customer", Some("admin"), Some(twice))
        .await;
    assert_error(&conflict, StatusCode::CONFLICT, "ConflictException");
}

#[tokio::test]
async fn engine_failures_map_by_class_and_keep_details_in_the_log() {
    let api = api().await;
    api.store.fail_next_writes([Fault::Transient]);
    let busy = api
        .call(
            Method::POST,
            "/pop/customer",
            Some("admin"),
            Some(json!({"customerId": "a", "title": "A"})),
        )
        .await;
    assert_error(&busy, StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableException");
    assert!(
        busy.1["errorResponse"]["description"]
            .as_str()
            .unwrap()
            .contains("retry")
    );

    api.store.fail_next_writes([Fault::Permanent]);
    let broken = api
        .call(
            Method::POST,
            "/pop/customer",
            Some("admin"),
            Some(json!({"customerId": "b", "title": "B"})),
        )
        .await;
    assert_error(&broken, StatusCode::INTERNAL_SERVER_ERROR, "RuntimeException");
    assert_eq!(
        broken.1["errorResponse"]["description"],
        "The storage backend failed; the request was not applied."
    );
    // Neither write was applied, and the next one goes through.
    let (status, body) = api
        .call(
            Method::POST,
            "/pop/customer",
            Some("admin"),
            Some(json!({"customerId": "a", "title": "A"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, listing) = api.call(Method::GET, "/pop/customer", Some("admin"), None).await;
    assert_eq!(listing["count"], 1, "{listing}");
}

/// The background jobs run once on request: super users only, a known job,
/// the run's report as the answer, its counters in the metrics.
#[tokio::test]
async fn a_job_runs_once_on_request_and_is_counted() {
    let api = api().await;
    let refused = api.call(Method::POST, "/pop/jobs/reap/run", Some("alice"), None).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "UnauthorizedException");
    let unknown = api
        .call(Method::POST, "/pop/jobs/vacuum/run", Some("admin"), None)
        .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "BadRequestException");
    assert!(
        unknown.1["errorResponse"]["description"]
            .as_str()
            .unwrap()
            .contains("unknown job \"vacuum\""),
        "{}",
        unknown.1
    );
    let bad_flag = api
        .call(Method::POST, "/pop/jobs/reap/run?logOnly=perhaps", Some("admin"), None)
        .await;
    assert_error(&bad_flag, StatusCode::BAD_REQUEST, "BadRequestException");

    // A completed agenda past the retention (3 days) is what the reaper takes.
    api.store
        .write(vec![Write::put(
            ObjectKind::AgendaProgress,
            json!({"id": "p1", "agendaId": "a1", "customerId": "acme", "processingState": "COMPLETE",
                "processingStateMessage": "succeeded", "completedTime": START})
            .as_object()
            .cloned()
            .unwrap(),
        )])
        .await
        .unwrap();
    api.clock.advance(std::time::Duration::from_secs(4 * 24 * 3600));
    let (status, dry) = api
        .call(Method::POST, "/pop/jobs/reap/run?logOnly=true", Some("admin"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    let report = &dry["all"][0];
    assert_eq!(
        (report["job"].clone(), report["logOnly"].clone()),
        (json!("reap"), json!(true))
    );
    assert_eq!(report["acted"], 1, "{report}");
    let (_, run) = api.call(Method::POST, "/pop/jobs/reap/run", Some("admin"), None).await;
    assert_eq!(run["all"][0]["acted"], 1, "{run}");
    assert!(api.store.get(ObjectKind::AgendaProgress, "p1").await.unwrap().is_none());

    let request = Request::builder()
        .uri("/pop/metrics")
        .header(header::AUTHORIZATION, "Bearer admin")
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let text = String::from_utf8(to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    assert!(text.contains("pop_job_runs_total{job=\"reap\"} 2"), "{text}");
    assert!(text.contains("pop_job_acted_total{job=\"reap\"} 2"), "{text}");
}

/// A puller's token scoped to one insight: the ResourcePool service for
/// that insight and a read of it, nothing else — not the objects its
/// account owns, not another insight of the same account.
#[tokio::test]
async fn a_token_scoped_to_an_insight_serves_that_insight_and_nothing_else() {
    let api = api().await;
    for insight in ["acme:insight", "acme:other"] {
        let body = json!({"id": insight, "customerId": "acme", "title": insight});
        let (status, body) = api.call(Method::POST, "/pop/insight", Some("alice"), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = api
        .call(Method::GET, "/pop/insight/acme:insight", Some("puller"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claim = |insight: &str| json!({"insightId": insight, "count": 1});
    let (status, body) = api
        .call(
            Method::POST,
            "/pop/resourcepool/service/getAgenda",
            Some("puller"),
            Some(claim("acme:insight")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let other = api
        .call(
            Method::POST,
            "/pop/resourcepool/service/getAgenda",
            Some("puller"),
            Some(claim("acme:other")),
        )
        .await;
    assert_error(&other, StatusCode::NOT_FOUND, "ObjectNotFoundException");
    for (method, uri) in [
        (Method::GET, "/pop/insight/acme:other"),
        (Method::GET, "/pop/insight"),
        (Method::GET, "/pop/agenda"),
        (Method::POST, "/pop/agenda"),
        (Method::DELETE, "/pop/insight/acme:insight"),
    ] {
        let refused = api.call(method.clone(), uri, Some("puller"), Some(json!({}))).await;
        assert_error(&refused, StatusCode::FORBIDDEN, "UnauthorizedException");
        let text = refused.1["errorResponse"]["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(text.contains("acme:insight"), "{method} {uri}: {text}");
    }
    let create = api
        .call(
            Method::POST,
            "/pop/resourcepool/service/createAgenda",
            Some("puller"),
            Some(json!({"agendas": []})),
        )
        .await;
    assert_error(&create, StatusCode::FORBIDDEN, "UnauthorizedException");
}
