//! `SqliteStore`: the port's conformance suite, plus what only SQLite has
//! (a file that outlives the store, query plans, rows edited behind its back).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use pop_store::{ObjectKind, Query, SqliteOptions, SqliteStore, Store, StoreError, Write, conformance, field_text};
use serde_json::{Value, json};
use tempfile::TempDir;

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default()).expect("open store")
}

fn object(value: Value) -> pop_store::Document {
    match value {
        Value::Object(map) => map,
        other => panic!("{other} is not an object"),
    }
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<SqliteStore>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_on_a_fresh_and_a_reopened_store() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("pop.db");
    conformance::run_all(Arc::new(open(&path))).await;
    // The second run meets the first run's data in every table.
    conformance::run_all(Arc::new(open(&path))).await;
}

#[tokio::test(flavor = "current_thread")]
async fn conformance_on_one_thread_and_one_reader() {
    let dir = TempDir::new().unwrap();
    let options = SqliteOptions {
        read_connections: 1,
        max_batches_per_commit: 1,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(dir.path().join("pop.db"), options).unwrap();
    conformance::run_all(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_drop_and_reopen() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("pop.db");
    let store: Arc<dyn Store> = Arc::new(open(&path));
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let doc = object(json!({"id": format!("a{i}"), "linkId": "reopen", "i": i}));
                store.write(vec![Write::create(ObjectKind::Agenda, doc)]).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    store
        .write(vec![Write::merge(
            ObjectKind::Agenda,
            "a7",
            object(json!({"merged": true})),
        )])
        .await
        .unwrap();
    store
        .write(vec![Write::delete(ObjectKind::Agenda, "a8")])
        .await
        .unwrap();
    drop(store);

    let store = open(&path);
    let found = store
        .query(ObjectKind::Agenda, &Query::by("linkId", "reopen"), None)
        .await
        .unwrap();
    let ids: Vec<_> = found.iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
    let expected: Vec<_> = (0..300).filter(|&i| i != 8).map(|i| format!("a{i}")).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(sorted, expected_sorted, "writes lost across reopen");
    let a7 = store.get(ObjectKind::Agenda, "a7").await.unwrap().unwrap();
    assert_eq!(a7.get("merged"), Some(&json!(true)));
}

#[test]
fn reopen_keeps_schema_and_version() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("pop.db");
    drop(open(&path));
    drop(open(&path));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 1);
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn open_fails_cleanly_on_a_bad_path() {
    let dir = TempDir::new().unwrap();
    let result = SqliteStore::open(dir.path().join("missing").join("pop.db"), SqliteOptions::default());
    assert!(matches!(result, Err(StoreError::Backend { .. })));
}

#[test]
fn indexed_filters_use_their_index_in_insertion_order() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir.path().join("pop.db"));
    for kind in ObjectKind::ALL {
        for field in kind.indexed_fields() {
            let plan = store
                .explain_query_plan(kind, &Query::by(*field, "x").and("other", "y"))
                .unwrap()
                .join("\n");
            let index = format!("ix_{}_{field}", kind.table());
            assert!(
                plan.contains(&format!("USING INDEX {index}")),
                "{kind}.{field} does not use {index}:\n{plan}"
            );
            assert!(
                !plan.contains("TEMP B-TREE"),
                "{kind}.{field} sorts instead of streaming:\n{plan}"
            );
        }
        let plan = store
            .explain_query_plan(kind, &Query::by("id", "x"))
            .unwrap()
            .join("\n");
        assert!(
            plan.contains("USING INDEX sqlite_autoindex"),
            "{kind}.id does not use its index:\n{plan}"
        );
    }
    let plan = store
        .explain_query_plan(ObjectKind::Agenda, &Query::by("cid", "x"))
        .unwrap()
        .join("\n");
    assert!(plan.starts_with("SCAN"), "unindexed filter should scan:\n{plan}");
    assert!(
        !plan.contains("TEMP B-TREE"),
        "a scan must stream in seq order:\n{plan}"
    );
}

/// The index holds each field's text form; for every kind of JSON scalar,
/// the index lookup (query) and the SQL count must agree with `field_text`.
#[tokio::test]
async fn index_keys_are_the_text_form_of_each_value() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir.path().join("pop.db"));
    let values = [
        json!(0),
        json!(5),
        json!(-7),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1.5),
        json!(0.1),
        json!(-0.0),
        json!(1.0),
        json!(1e20),
        json!(1.5e-9),
        json!(f64::MAX),
        json!(true),
        json!(false),
        json!(""),
        json!("5"),
        json!("true"),
        json!("é ☃ \"q\" \\ / \n\t\u{1}\u{7f}"),
        json!("null"),
    ];
    for (i, value) in values.iter().enumerate() {
        let doc = object(json!({"id": format!("v{i}"), "title": value}));
        store.write(vec![Write::create(ObjectKind::Agenda, doc)]).await.unwrap();
    }
    for (i, value) in values.iter().enumerate() {
        let doc = object(json!({"title": value}));
        let text = field_text(&doc, "title").unwrap();
        let query = Query::by("title", &text);
        let found = store.query(ObjectKind::Agenda, &query, None).await.unwrap();
        let ids: Vec<_> = found.iter().map(|d| d["id"].clone()).collect();
        assert!(
            ids.contains(&json!(format!("v{i}"))),
            "title {value} not found by {text:?}: {ids:?}"
        );
        let scanned: Vec<_> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| field_text(&object(json!({"title": v})), "title").as_deref() == Some(text.as_str()))
            .map(|(j, _)| json!(format!("v{j}")))
            .collect();
        assert_eq!(ids, scanned, "index lookup of {text:?} differs from field_text");
        let sql_count = store.count(ObjectKind::Agenda, &query, None).await.unwrap();
        assert_eq!(
            sql_count,
            scanned.len() as u64,
            "SQL count of {text:?} differs from field_text"
        );
    }
    let nulls = store
        .count(ObjectKind::Agenda, &Query::by("title", "null"), None)
        .await
        .unwrap();
    assert_eq!(nulls, 1, "only the string \"null\" matches \"null\"");
}

#[tokio::test]
async fn a_corrupted_body_is_an_error_not_a_panic() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("pop.db");
    let store = open(&path);
    let put = |kind, id: &str| Write::create(kind, object(json!({"id": id, "title": "t"})));
    store
        .write(vec![
            put(ObjectKind::InsightScheduleInfo, "bad"),
            put(ObjectKind::Agenda, "bad"),
            put(ObjectKind::Agenda, "good"),
        ])
        .await
        .unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        // No index evaluates JSON on InsightScheduling, so even non-JSON fits;
        // Agenda's indexes need valid JSON, which need not be an object.
        conn.execute("UPDATE InsightScheduling SET body = '{not json' WHERE id = 'bad'", [])
            .unwrap();
        conn.execute("UPDATE Agenda SET body = '[1, 2]' WHERE id = 'bad'", [])
            .unwrap();
    }
    for kind in [ObjectKind::InsightScheduleInfo, ObjectKind::Agenda] {
        let backend = |r: Result<_, StoreError>| matches!(r, Err(StoreError::Backend { .. }));
        assert!(backend(store.get(kind, "bad").await.map(drop)), "get {kind}");
        assert!(
            backend(store.query(kind, &Query::all(), None).await.map(drop)),
            "query {kind}"
        );
        assert!(
            backend(store.query(kind, &Query::by("id", "bad"), None).await.map(drop)),
            "query by id {kind}"
        );
        assert!(
            backend(store.count(kind, &Query::by("x", "y"), None).await.map(drop)),
            "count {kind}"
        );
        let merge = store
            .write(vec![Write::merge(kind, "bad", object(json!({"a": 1})))])
            .await;
        assert!(backend(merge.map(drop)), "merge {kind}");
        let delete = store.write(vec![Write::delete(kind, "bad")]).await;
        assert!(backend(delete.map(drop)), "delete {kind}");
    }
    // The store keeps working, and a Put heals the row.
    assert!(store.get(ObjectKind::Agenda, "good").await.unwrap().is_some());
    store
        .write(vec![Write::put(ObjectKind::Agenda, object(json!({"id": "bad"})))])
        .await
        .unwrap();
    assert!(store.get(ObjectKind::Agenda, "bad").await.unwrap().is_some());
}

/// Not a benchmark (no timing is asserted): many small concurrent creates
/// all land, and the rate is printed for a quick look (`--nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_small_concurrent_writes() {
    const WRITES: usize = 2000;
    let dir = TempDir::new().unwrap();
    let store: Arc<dyn Store> = Arc::new(open(&dir.path().join("pop.db")));
    let start = Instant::now();
    let tasks: Vec<_> = (0..WRITES)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let doc = object(json!({"id": format!("w{i}"), "linkId": "burst", "customerId": "c"}));
                store.write(vec![Write::create(ObjectKind::Agenda, doc)]).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let elapsed = start.elapsed();
    println!(
        "{WRITES} durable single-document writes in {elapsed:?} ({:.0}/s)",
        WRITES as f64 / elapsed.as_secs_f64()
    );
    let n = store
        .count(ObjectKind::Agenda, &Query::by("linkId", "burst"), None)
        .await
        .unwrap();
    assert_eq!(n, WRITES as u64);
}

/// A document stored deeper than the store keeps now (an older version
/// wrote it, or a template expansion before limits were checked) is still
/// read, listed and deleted: the reader has no depth limit of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_beyond_todays_limits_stay_readable_and_deletable() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("pop.db");
    let store = open(&path);
    store
        .write(vec![Write::put(
            ObjectKind::Agenda,
            object(json!({"id": "deep", "customerId": "acme"})),
        )])
        .await
        .unwrap();
    let depth = 400;
    let body = format!(
        r#"{{"id":"deep","customerId":"acme","p":{}1{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE Agenda SET body = ?1 WHERE id = 'deep'", [&body])
            .unwrap();
    }
    let read = store
        .get(ObjectKind::Agenda, "deep")
        .await
        .unwrap()
        .expect("the deep row");
    assert_eq!(pop_store::document_depth(&read), depth + 1);
    let listed = store
        .query(ObjectKind::Agenda, &Query::by("customerId", "acme"), None)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let removed = store
        .write(vec![Write::delete(ObjectKind::Agenda, "deep")])
        .await
        .unwrap();
    assert!(removed[0].is_some(), "the delete returns the removed row");
    assert_eq!(store.get(ObjectKind::Agenda, "deep").await.unwrap(), None);
}
