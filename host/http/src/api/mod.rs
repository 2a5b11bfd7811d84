//! The `/pop` REST API: routes, request context and response envelopes.
//! Handlers are thin: they parse HTTP and call into `pop_app`.

mod context;
mod jobs;
mod objects;
mod plugins;
mod rejections;
mod reply;
mod resourcepool;
mod services;
pub mod upload;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pop_core::ObjectKind;

use crate::cid::{Cid, assign_cid};
use crate::error::ApiError;
use pop_app::AppState;

/// Largest accepted request body: the largest agenda or template the
/// application keeps whole by offloading its large fields
/// (`pop_ports::DocumentLimits::OFFLOADED`), so whatever one request may
/// carry can be stored. A 10,000-operation agenda is ~2 MB. Plugin
/// uploads have their own limit (`upload::MAX_PLUGIN_BYTES`).
pub const MAX_BODY_BYTES: usize = pop_ports::DocumentLimits::OFFLOADED.max_bytes;

/// The body limit of plugin uploads: the largest component plus the
/// multipart form around it.
pub const MAX_UPLOAD_BODY_BYTES: usize = upload::MAX_PLUGIN_BYTES + 1024 * 1024;

/// The data-object resources and the kind each one serves.
pub const OBJECT_RESOURCES: [(&str, ObjectKind); 7] = [
    ("/pop/agenda", ObjectKind::Agenda),
    ("/pop/agendatemplate", ObjectKind::AgendaTemplate),
    ("/pop/customer", ObjectKind::Customer),
    ("/pop/insight", ObjectKind::Insight),
    ("/pop/resourcepool", ObjectKind::ResourcePool),
    ("/pop/progress/agenda", ObjectKind::AgendaProgress),
    ("/pop/progress/operation", ObjectKind::OperationProgress),
];

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(services::healthz))
        .route("/pop/metrics", plugins::metrics_route())
        .route("/pop/jobs/{job}/run", jobs::run_route())
        .route("/pop/agenda/service/run", post(services::run))
        .route("/pop/agenda/service/rerun", post(services::rerun))
        .route("/pop/progress/agenda/service", post(services::progress_summary))
        .route("/pop/insight/service/preview", plugins::preview_route())
        .route(
            "/pop/plugin",
            plugins::collection().layer(DefaultBodyLimit::max(MAX_UPLOAD_BODY_BYTES)),
        )
        .route("/pop/plugin/{id}", plugins::member())
        .route("/pop/plugin/{id}/activate", plugins::activate_route())
        .route("/pop/plugin/{id}/rollback", plugins::rollback_route())
        .route("/pop/queue", objects::queue_routes())
        .route("/pop/queue/{id}", objects::queue_routes())
        .route("/pop/pluginactivation", plugins::activations())
        .route("/pop/pluginactivation/{id}", plugins::activations())
        .merge(resourcepool::routes());
    for (path, kind) in OBJECT_RESOURCES {
        router = router
            .route(path, objects::routes(kind))
            .route(&format!("{path}/{{id}}"), objects::routes(kind));
    }
    router
        .fallback(unknown_path)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(rejections::decodable_path))
        .layer(middleware::from_fn(rejections::declared_length))
        .layer(middleware::from_fn(rejections::json_errors))
        .layer(middleware::from_fn(cors_and_access_log))
        .layer(middleware::from_fn(assign_cid))
        .with_state(state)
}

async fn unknown_path(request: Request) -> Response {
    let cid = request.extensions().get::<Cid>().cloned().unwrap_or_else(Cid::generate);
    ApiError::NotFound(format!("No resource at {}", request.uri().path()))
        .with_cid(&cid)
        .into_response()
}

async fn method_not_allowed(request: Request) -> Response {
    if request.method() == Method::OPTIONS {
        return StatusCode::NO_CONTENT.into_response();
    }
    let cid = request.extensions().get::<Cid>().cloned().unwrap_or_else(Cid::generate);
    ApiError::MethodNotAllowed(format!(
        "{} is not supported on {}",
        request.method(),
        request.uri().path()
    ))
    .with_cid(&cid)
    .into_response()
}

/// POP's CORS headers on every response, and one debug line per request.
async fn cors_and_access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let cors = [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"),
        (header::ACCESS_CONTROL_ALLOW_METHODS, "GET,POST,PUT,DELETE,OPTIONS"),
        (
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "X-pop-cid,origin,accept,Content-Type,Authorization,Referer,User-Agent",
        ),
        (
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            "Access-Control-Allow-Origin,X-pop-cid",
        ),
    ];
    for (name, value) in cors {
        headers.insert(name, HeaderValue::from_static(value));
    }
    tracing::debug!(%method, path, status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    response
}
