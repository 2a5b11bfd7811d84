//! The HTTP surface: core/v1 pods (with the `status` and `log`
//! subresources), configmaps and namespaces, in the real wire format —
//! the same paths, query parameters, list and watch encodings, patch
//! content types and `Status` failures a real API server uses, so that
//! `kube::Client` talks to it exactly as to a cluster.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::patch;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::{Cluster, Creation};
use crate::status::Failure;
use crate::store::{Event, Refusal, Resource};
use crate::validation;

type Params = Query<HashMap<String, String>>;

pub fn router(cluster: Cluster) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(api_versions))
        .route("/apis", get(api_groups))
        .route("/api/v1", get(api_resources))
        .route("/api/v1/namespaces", get(list_namespaces).post(create_namespace))
        .route("/api/v1/namespaces/{name}", get(get_namespace).delete(delete_namespace))
        .route("/api/v1/{resource}", get(list_everywhere))
        .route(
            "/api/v1/namespaces/{namespace}/{resource}",
            get(list_namespaced).post(create_namespaced),
        )
        .route(
            "/api/v1/namespaces/{namespace}/{resource}/{name}",
            get(get_object)
                .patch(patch_object)
                .put(put_object)
                .delete(delete_object),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/status",
            get(get_pod).patch(patch_status).put(put_status),
        )
        .route("/api/v1/namespaces/{namespace}/pods/{name}/log", get(pod_log))
        .with_state(cluster)
}

fn ok(status: StatusCode, object: Value) -> Response {
    (status, axum::Json(object)).into_response()
}

fn resource_of(plural: &str) -> Result<Resource, Failure> {
    Resource::parse(plural)
        .filter(|r| r.namespaced())
        .ok_or_else(|| Failure::not_found("resource", plural))
}

fn refusal(resource: Resource, name: &str, refusal: Refusal) -> Failure {
    match refusal {
        Refusal::NotFound => Failure::not_found(resource.plural(), name),
        Refusal::AlreadyExists => Failure::already_exists(resource.plural(), name),
        Refusal::Conflict(message) => Failure::conflict(message),
    }
}

async fn version() -> Response {
    ok(
        StatusCode::OK,
        json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-pop-fake", "platform": "linux/amd64"}),
    )
}

async fn api_versions() -> Response {
    ok(
        StatusCode::OK,
        json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
    )
}

async fn api_groups() -> Response {
    ok(
        StatusCode::OK,
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
    )
}

/// Discovery of core/v1 (what `kubectl` asks before it acts).
async fn api_resources() -> Response {
    let verbs = json!(["create", "delete", "get", "list", "patch", "update", "watch"]);
    let resource = |name: &str, kind: &str, namespaced: bool| json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": verbs});
    ok(
        StatusCode::OK,
        json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            resource("pods", "Pod", true),
            {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
            {"name": "pods/status", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get", "patch", "update"]},
            resource("configmaps", "ConfigMap", true),
            resource("namespaces", "Namespace", false)]}),
    )
}

// ---- namespaces (cluster-scoped) ----

async fn list_namespaces(State(cluster): State<Cluster>, Query(params): Params) -> Result<Response, Failure> {
    list_or_watch(&cluster, Resource::Namespaces, None, &params).await
}

async fn create_namespace(State(cluster): State<Cluster>, body: Bytes) -> Result<Response, Failure> {
    create(&cluster, Resource::Namespaces, "", &body)
}

async fn get_namespace(State(cluster): State<Cluster>, Path(name): Path<String>) -> Result<Response, Failure> {
    cluster
        .store
        .get(Resource::Namespaces, "", &name)
        .map(|o| ok(StatusCode::OK, o))
        .ok_or_else(|| Failure::not_found("namespaces", &name))
}

async fn delete_namespace(State(cluster): State<Cluster>, Path(name): Path<String>) -> Result<Response, Failure> {
    let deleted = cluster
        .store
        .delete(Resource::Namespaces, "", &name)
        .map_err(|r| refusal(Resource::Namespaces, &name, r))?;
    Ok(ok(StatusCode::OK, deleted))
}

// ---- namespaced resources ----

async fn list_everywhere(
    State(cluster): State<Cluster>,
    Path(plural): Path<String>,
    Query(params): Params,
) -> Result<Response, Failure> {
    let resource = resource_of(&plural)?;
    list_or_watch(&cluster, resource, None, &params).await
}

async fn list_namespaced(
    State(cluster): State<Cluster>,
    Path((namespace, plural)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Response, Failure> {
    let resource = resource_of(&plural)?;
    list_or_watch(&cluster, resource, Some(&namespace), &params).await
}

async fn create_namespaced(
    State(cluster): State<Cluster>,
    Path((namespace, plural)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Failure> {
    let resource = resource_of(&plural)?;
    if cluster.store.get(Resource::Namespaces, "", &namespace).is_none() {
        return Err(Failure::not_found("namespaces", &namespace));
    }
    create(&cluster, resource, &namespace, &body)
}

async fn get_object(
    State(cluster): State<Cluster>,
    Path((namespace, plural, name)): Path<(String, String, String)>,
) -> Result<Response, Failure> {
    let resource = resource_of(&plural)?;
    cluster
        .store
        .get(resource, &namespace, &name)
        .map(|o| ok(StatusCode::OK, o))
        .ok_or_else(|| Failure::not_found(resource.plural(), &name))
}

async fn get_pod(
    State(cluster): State<Cluster>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, Failure> {
    cluster
        .store
        .get(Resource::Pods, &namespace, &name)
        .map(|o| ok(StatusCode::OK, o))
        .ok_or_else(|| Failure::not_found("pods", &name))
}

async fn delete_object(
    State(cluster): State<Cluster>,
    Path((namespace, plural, name)): Path<(String, String, String)>,
) -> Result<Response, Failure> {
    let resource = resource_of(&plural)?;
    let deleted = cluster
        .store
        .delete(resource, &namespace, &name)
        .map_err(|r| refusal(resource, &name, r))?;
    Ok(ok(StatusCode::OK, deleted))
}

fn parse_json(body: &[u8]) -> Result<Value, Failure> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Failure::bad_request(format!("the body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(Failure::bad_request("the body must be a JSON object"));
    }
    Ok(value)
}

fn create(cluster: &Cluster, resource: Resource, namespace: &str, body: &[u8]) -> Result<Response, Failure> {
    let mut object = parse_json(body)?;
    if object["metadata"]["name"].as_str().is_none_or(str::is_empty)
        && let Some(prefix) = object["metadata"]["generateName"].as_str()
    {
        let suffix: String = uuid::Uuid::new_v4().simple().to_string().chars().take(5).collect();
        object["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
    }
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    object["kind"] = json!(resource.kind());
    object["apiVersion"] = json!("v1");
    let mut causes = validation::metadata(&object, resource == Resource::Namespaces);
    if resource == Resource::Pods {
        causes.extend(validation::pod_spec(&object));
    }
    if !causes.is_empty() {
        return Err(Failure::invalid(resource.kind(), &name, &causes));
    }
    if resource == Resource::Pods {
        validation::default_pod(&mut object);
    }
    if resource == Resource::Namespaces {
        object["status"] = json!({"phase": "Active"});
    }
    let created = cluster
        .store
        .create(resource, namespace, object)
        .map_err(|r| refusal(resource, &name, r))?;
    let labels = created["metadata"]["labels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    cluster.audit.created(Creation {
        resource: resource.plural().to_owned(),
        namespace: namespace.to_owned(),
        name,
        labels,
    });
    Ok(ok(StatusCode::CREATED, created))
}

/// What a patch or update may change, and the checks after it.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    /// The object (not its status).
    Main,
    /// The status subresource (only status).
    Status,
}

fn patch_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, Failure> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    match media {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => parse_json(body),
        _ => Err(Failure::unsupported_media_type(&content_type)),
    }
}

fn apply_change(
    cluster: &Cluster,
    resource: Resource,
    namespace: &str,
    name: &str,
    part: Part,
    change: impl FnOnce(&Value) -> Value,
) -> Result<Response, Failure> {
    let result = cluster.store.update(resource, namespace, name, |current| {
        let mut next = change(current);
        // The main resource cannot change the status, nor the status
        // subresource anything else.
        match part {
            Part::Main => next["status"] = current["status"].clone(),
            Part::Status => {
                let status = next["status"].clone();
                let version = next["metadata"]["resourceVersion"].clone();
                next = current.clone();
                next["status"] = status;
                next["metadata"]["resourceVersion"] = version;
            }
        }
        if let Some(object) = next.as_object_mut()
            && object.get("status").is_some_and(Value::is_null)
        {
            object.remove("status");
        }
        let mut causes = validation::metadata(&next, resource == Resource::Namespaces);
        if resource == Resource::Pods {
            causes.extend(validation::pod_update(current, &next));
        }
        if causes.is_empty() { Ok(next) } else { Err(causes) }
    });
    match result {
        Ok(Ok(updated)) => Ok(ok(StatusCode::OK, updated)),
        Ok(Err(causes)) => Err(Failure::invalid(resource.kind(), name, &causes)),
        Err(r) => Err(refusal(resource, name, r)),
    }
}

/// `current` with `patch` merged in. A resourceVersion in the patch is a
/// precondition, kept for the store to check; without one the patch
/// applies to what is there.
fn patched(current: &Value, patch: &Value) -> Value {
    let mut next = current.clone();
    next["metadata"]["resourceVersion"] = json!(null);
    patch::merge(&mut next, patch);
    if next["metadata"]["resourceVersion"].is_null() {
        next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    }
    next
}

async fn patch_object(
    State(cluster): State<Cluster>,
    Path((namespace, plural, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let resource = resource_of(&plural)?;
    let patch = patch_body(&headers, &body)?;
    apply_change(&cluster, resource, &namespace, &name, Part::Main, |current| {
        patched(current, &patch)
    })
}

async fn put_object(
    State(cluster): State<Cluster>,
    Path((namespace, plural, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, Failure> {
    let resource = resource_of(&plural)?;
    let replacement = parse_json(&body)?;
    apply_change(&cluster, resource, &namespace, &name, Part::Main, |current| {
        let mut next = replacement.clone();
        if next["metadata"]["resourceVersion"].is_null() {
            next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        }
        next
    })
}

async fn patch_status(
    State(cluster): State<Cluster>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let patch = patch_body(&headers, &body)?;
    apply_change(&cluster, Resource::Pods, &namespace, &name, Part::Status, |current| {
        patched(current, &patch)
    })
}

async fn put_status(
    State(cluster): State<Cluster>,
    Path((namespace, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Failure> {
    let replacement = parse_json(&body)?;
    apply_change(&cluster, Resource::Pods, &namespace, &name, Part::Status, |current| {
        let mut next = replacement.clone();
        if next["metadata"]["resourceVersion"].is_null() {
            next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        }
        next
    })
}

// ---- list and watch ----

struct Selection {
    resource: Resource,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Selection {
    fn admits(&self, namespace: &str, object: &Value) -> bool {
        self.namespace.as_deref().is_none_or(|want| want == namespace)
            && self.labels.matches(object)
            && self.fields.matches(object)
    }

    fn admits_event(&self, event: &Event) -> bool {
        event.resource == self.resource && self.admits(&event.namespace, &event.object)
    }
}

async fn list_or_watch(
    cluster: &Cluster,
    resource: Resource,
    namespace: Option<&str>,
    params: &HashMap<String, String>,
) -> Result<Response, Failure> {
    let labels = LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| Failure::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(
        params.get("fieldSelector").map_or("", String::as_str),
        resource == Resource::Pods,
    )
    .map_err(Failure::bad_request)?;
    let selection = Selection {
        resource,
        namespace: namespace.map(str::to_owned),
        labels,
        fields,
    };
    if params.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return watch(cluster, selection, params);
    }
    let (items, revision) = cluster.store.list(resource, namespace);
    let mut items: Vec<Value> = items
        .into_iter()
        .filter(|o| selection.admits(o["metadata"]["namespace"].as_str().unwrap_or_default(), o))
        .collect();
    // Pages: `limit`, and `continue` = the last name of the previous page.
    if let Some(after) = params.get("continue").filter(|c| !c.is_empty()) {
        items.retain(|o| object_key(o).as_str() > after.as_str());
    }
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let Some(limit) = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        && items.len() > limit
    {
        items.truncate(limit);
        metadata["continue"] = json!(items.last().map(object_key).unwrap_or_default());
        metadata["remainingItemCount"] = json!(0);
    }
    Ok(ok(
        StatusCode::OK,
        json!({"kind": format!("{}List", resource.kind()), "apiVersion": "v1", "metadata": metadata, "items": items}),
    ))
}

/// Orders list pages: namespace, then name.
fn object_key(object: &Value) -> String {
    format!(
        "{}/{}",
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(1);

fn watch(cluster: &Cluster, selection: Selection, params: &HashMap<String, String>) -> Result<Response, Failure> {
    let from = params
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| Failure::bad_request(format!("invalid resourceVersion {v:?}")))
        })
        .transpose()?;
    let bookmarks = params.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let (first, receiver, revision) = match from {
        Some(revision) => match cluster.store.since(revision) {
            Some((events, receiver)) => {
                let lines: Vec<Bytes> = events
                    .iter()
                    .filter(|e| selection.admits_event(e))
                    .map(|e| line(e.kind, &e.object))
                    .collect();
                (lines, Some(receiver), revision)
            }
            None => {
                // A real server answers 200 and an ERROR event carrying 410.
                let gone = Failure::expired(format!("too old resource version: {revision}"));
                (vec![line("ERROR", &gone.body())], None, revision)
            }
        },
        None => {
            let (objects, revision, receiver) = cluster.store.snapshot(selection.resource);
            let lines = objects
                .iter()
                .filter(|(ns, o)| selection.admits(ns, o))
                .map(|(_, o)| line("ADDED", o))
                .collect();
            (lines, Some(receiver), revision)
        }
    };
    let kind = selection.resource.kind();
    let state = WatchState {
        pending: first.into(),
        receiver,
        selection,
        revision,
        bookmarks,
        deadline: timeout.map(|t| tokio::time::Instant::now() + t),
        next_bookmark: tokio::time::Instant::now() + BOOKMARK_EVERY,
        kind,
    };
    let stream = futures_util::stream::unfold(state, |mut state| async move {
        let line = state.next().await?;
        Some((Ok::<_, Infallible>(line), state))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

struct WatchState {
    pending: std::collections::VecDeque<Bytes>,
    receiver: Option<broadcast::Receiver<Event>>,
    selection: Selection,
    revision: u64,
    bookmarks: bool,
    deadline: Option<tokio::time::Instant>,
    next_bookmark: tokio::time::Instant,
    kind: &'static str,
}

impl WatchState {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some(line);
            }
            let receiver = self.receiver.as_mut()?;
            let deadline = self.deadline;
            tokio::select! {
                received = receiver.recv() => match received {
                    Ok(event) => {
                        self.revision = self.revision.max(event.revision);
                        if self.selection.admits_event(&event) {
                            return Some(line(event.kind, &event.object));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.receiver = None;
                        let gone = Failure::expired("the watch fell too far behind; list and watch again");
                        return Some(line("ERROR", &gone.body()));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                () = tokio::time::sleep_until(self.next_bookmark), if self.bookmarks => {
                    self.next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
                    let object = json!({"kind": self.kind, "apiVersion": "v1",
                        "metadata": {"resourceVersion": self.revision.to_string()}});
                    return Some(line("BOOKMARK", &object));
                }
                () = async { tokio::time::sleep_until(deadline.expect("guarded")).await }, if deadline.is_some() => {
                    return None;
                }
            }
        }
    }
}

// ---- logs ----

async fn pod_log(
    State(cluster): State<Cluster>,
    Path((namespace, name)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Response, Failure> {
    let pod = cluster
        .store
        .get(Resource::Pods, &namespace, &name)
        .ok_or_else(|| Failure::not_found("pods", &name))?;
    let container = pod["spec"]["containers"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if let Some(asked) = params.get("container")
        && *asked != container
    {
        return Err(Failure::bad_request(format!(
            "container {asked} is not valid for pod {name}"
        )));
    }
    let Some(path) = cluster.logs.path(&namespace, &name) else {
        return Err(Failure::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    };
    let tail = params.get("tailLines").and_then(|t| t.parse::<usize>().ok());
    let follow = params.get("follow").is_some_and(|f| f == "true");
    let text = tokio::fs::read_to_string(&path).await.unwrap_or_default();
    let first = match tail {
        Some(n) => {
            let lines: Vec<&str> = text.lines().collect();
            let kept = lines[lines.len().saturating_sub(n)..].join("\n");
            if kept.is_empty() { kept } else { kept + "\n" }
        }
        None => text.clone(),
    };
    if !follow {
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(first))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()));
    }
    // Follow: what is there, then what the container writes, until it ends.
    let state = (Some(first), text.len() as u64, path, cluster.clone(), namespace, name);
    let stream = futures_util::stream::unfold(state, |(first, offset, path, cluster, namespace, name)| async move {
        if let Some(first) = first {
            return Some((
                Ok::<_, Infallible>(Bytes::from(first)),
                (None, offset, path, cluster, namespace, name),
            ));
        }
        loop {
            let ended = cluster.logs.ended(&namespace, &name);
            let data = tokio::fs::read(&path).await.unwrap_or_default();
            if (data.len() as u64) > offset {
                let chunk = Bytes::copy_from_slice(&data[offset as usize..]);
                let offset = data.len() as u64;
                return Some((Ok(chunk), (None, offset, path, cluster, namespace, name)));
            }
            if ended {
                return None;
            }
            // A kubelet streams as the container writes; a short poll stands in.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}
