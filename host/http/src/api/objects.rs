//! Handlers of the data-object resources (`/pop/<kind>[/{id}]`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{MethodRouter, get};
use pop_core::ObjectKind;
use pop_ports::Query;

use super::context::RequestContext;
use super::reply::{self, Reply, body_object};
use crate::error::WithCid as _;
use pop_app::AppState;
use pop_app::domain::objects::{self as domain, DEFAULT_LIMIT, ListRequest, Listing, MAX_LIMIT};
use pop_app::domain::progress;
use pop_app::services::submission;
use pop_app::{AppError, AppResult};

/// GET/POST/PUT/DELETE for one kind; agendas and agenda progress have their
/// own POST and PUT (submission, cascading progress).
pub fn routes(kind: ObjectKind) -> MethodRouter<AppState> {
    read_routes(kind)
        .post(move |state, ctx, body| create(kind, state, ctx, body))
        .put(move |state, ctx, id, body| update(kind, state, ctx, id, body))
        .delete(move |state, ctx, id, query| remove(kind, state, ctx, id, query))
}

/// The released agendas waiting in insight queues: readable, and removable
/// by their owner (an operator taking work out of a queue).
pub fn queue_routes() -> MethodRouter<AppState> {
    let kind = ObjectKind::QueuedAgenda;
    read_routes(kind).delete(move |state, ctx, id, query| remove(kind, state, ctx, id, query))
}

/// GET only, for kinds with their own writes (plugins).
pub fn read_routes(kind: ObjectKind) -> MethodRouter<AppState> {
    get(move |state, ctx, id, query| list(kind, state, ctx, id, query))
}

async fn list(
    kind: ObjectKind,
    State(app): State<AppState>,
    ctx: RequestContext,
    id: Option<Path<String>>,
    RawQuery(query): RawQuery,
) -> Reply {
    let result = async {
        let request = parse_list_request(id.map(|Path(id)| id), query.as_deref())?;
        app.plugins.list_visible(&ctx.caller, kind, request).await
    }
    .await;
    match result.map_err(|e| e.with_cid(&ctx.cid))? {
        Listing::Objects(docs) => Ok(reply::objects(docs, &ctx.cid)),
        Listing::Count(n) => Ok(reply::count(n, &ctx.cid)),
    }
}

async fn create(
    kind: ObjectKind,
    State(app): State<AppState>,
    ctx: RequestContext,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let result = async {
        let body = body_object(body)?;
        let store = app.store.as_ref();
        let cid = ctx.cid.0.as_str();
        match kind {
            ObjectKind::Agenda => submission::submit(store, &app.plugins, &ctx.caller, body, cid).await,
            ObjectKind::AgendaProgress => progress::create(store, &ctx.caller, body, cid, app.now()).await,
            _ => domain::create(store, &ctx.caller, kind, body, cid, app.now()).await,
        }
    }
    .await;
    refresh_after_write(&app, kind).await;
    Ok(reply::objects(
        vec![result.map_err(|e| e.with_cid(&ctx.cid))?],
        &ctx.cid,
    ))
}

async fn update(
    kind: ObjectKind,
    State(app): State<AppState>,
    ctx: RequestContext,
    id: Option<Path<String>>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let result = async {
        let body = body_object(body)?;
        let id = id.map(|Path(id)| id);
        let store = app.store.as_ref();
        match kind {
            ObjectKind::AgendaProgress => {
                progress::update(store, &ctx.caller, id.as_deref(), body, &ctx.cid.0, app.now()).await
            }
            _ => domain::update(store, &ctx.caller, kind, id.as_deref(), body, app.now()).await,
        }
    }
    .await;
    refresh_after_write(&app, kind).await;
    Ok(reply::objects(
        vec![result.map_err(|e| e.with_cid(&ctx.cid))?],
        &ctx.cid,
    ))
}

async fn remove(
    kind: ObjectKind,
    State(app): State<AppState>,
    ctx: RequestContext,
    id: Option<Path<String>>,
    RawQuery(query): RawQuery,
) -> Reply {
    let result = async {
        let id = match id {
            Some(Path(id)) => Some(id),
            None => parse_list_request(None, query.as_deref())?.id,
        };
        domain::delete(app.store.as_ref(), &ctx.caller, kind, id.as_deref()).await
    }
    .await;
    refresh_after_write(&app, kind).await;
    let removed = result.map_err(|e| e.with_cid(&ctx.cid))?;
    Ok(reply::objects(removed.into_iter().collect(), &ctx.cid))
}

/// A customer write may name or drop a visibility policy.
async fn refresh_after_write(app: &AppState, kind: ObjectKind) {
    if kind == ObjectKind::Agenda {
        app.backlog_grew.notify_one();
    }
    if kind == ObjectKind::Customer
        && let Err(e) = app.plugins.refresh_policy_owners().await
    {
        tracing::error!(error = %e, "could not refresh the customers with visibility policies");
    }
}

/// Parse the id and POP's `by*` query parameters (spec §3.3).
fn parse_list_request(path_id: Option<String>, raw_query: Option<&str>) -> AppResult<ListRequest> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw_query.unwrap_or(""))
        .map_err(|e| AppError::BadRequest(format!("The query string could not be parsed: {e}")))?;
    let mut request = ListRequest {
        id: path_id.filter(|s| !s.is_empty()),
        ..Default::default()
    };
    let mut limit = DEFAULT_LIMIT;
    let mut filters = Vec::new();
    for (key, value) in pairs {
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            "id" if request.id.is_none() && !value.is_empty() => request.id = Some(value),
            "bylimit" => {
                limit = value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        AppError::BadRequest(format!(
                            "bylimit must be a whole number from 1 to {MAX_LIMIT}; got '{value}'"
                        ))
                    })?;
            }
            "byfields" => {
                let fields = value
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(String::from)
                    .collect();
                request.fields = Some(fields);
            }
            "bycount" => request.count_only = value.trim().eq_ignore_ascii_case("true"),
            _ if key.starts_with("by") && key.len() > 2 => filters.push((key[2..].to_string(), value)),
            _ => {}
        }
    }
    request.query = Query {
        filters,
        limit: Some(limit),
    };
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        let r = parse_list_request(
            None,
            Some("bylinkId=a%20b&bycustomerId=acme&bylimit=5&byfields=id,title&other=1"),
        )
        .unwrap();
        assert_eq!(
            r.query.filters,
            vec![
                ("linkId".to_string(), "a b".to_string()),
                ("customerId".into(), "acme".into())
            ]
        );
        assert_eq!(r.query.limit, Some(5));
        assert_eq!(r.fields, Some(vec!["id".to_string(), "title".to_string()]));
        assert!(!r.count_only);
        let r = parse_list_request(Some("p".into()), Some("id=q&ByCount=TRUE")).unwrap();
        assert_eq!(r.id.as_deref(), Some("p"));
        assert!(r.count_only);
        assert_eq!(r.query.limit, Some(DEFAULT_LIMIT));
        assert_eq!(parse_list_request(None, Some("id=q")).unwrap().id.as_deref(), Some("q"));
        for bad in ["bylimit=0", "bylimit=x", "bylimit=100000"] {
            assert!(
                matches!(parse_list_request(None, Some(bad)), Err(AppError::BadRequest(_))),
                "{bad}"
            );
        }
    }
}
