//! The behaviour every [`Store`] must show. Each backend's tests call
//! [`run_all`] unchanged; each `case_*` can also be called on its own.
//!
//! Cases panic with a message naming what broke. They share the store and
//! may meet data left by other cases or earlier runs, so every id and every
//! filtered value is unique to the case and the run (see [`unique`]), and
//! scans over a whole table narrow their view with a [`Filter`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::{Document, Expect, Filter, ObjectKind, Query, Store, StoreError, Write, field_text};

/// Runs every case in turn.
pub async fn run_all(store: Arc<dyn Store>) {
    let store = &store;
    case_put_get_roundtrip(store).await;
    case_get_absent(store).await;
    case_put_requires_string_id(store).await;
    case_create_existing_fails(store).await;
    case_must_exist(store).await;
    case_put_replaces_whole_document(store).await;
    case_merge_sparse(store).await;
    case_merge_absent(store).await;
    case_merge_cannot_change_id(store).await;
    case_delete(store).await;
    case_batch_atomic(store).await;
    case_batch_sees_own_writes(store).await;
    case_empty_batch(store).await;
    case_filter_indexed(store).await;
    case_filter_unindexed(store).await;
    case_filter_compares_text(store).await;
    case_numbers_round_trip(store).await;
    case_filter_indexed_boolean(store).await;
    case_filters_are_anded(store).await;
    case_filter_never_matches_null_or_absent(store).await;
    case_filter_by_id(store).await;
    case_limit(store).await;
    case_insertion_order_kept(store).await;
    case_doc_filter_before_limit(store).await;
    case_count(store).await;
    case_concurrent_writes(store).await;
    case_concurrent_mixed_outcomes(store).await;
    case_merge_expect(store).await;
    case_delete_expect(store).await;
    case_expect_batch_atomic(store).await;
    case_concurrent_claims(store).await;
    case_every_kind(store).await;
    case_document_limits(store).await;
    case_write_count_limit(store).await;
    case_scan_pages(store).await;
    case_scan_keeps_its_place(store).await;
}

/// Walks every page of a scan, returning the ids seen in order and the
/// number of pages; `between` runs after each page with the ids seen so far.
async fn walk<F, Fut>(
    store: &Arc<dyn Store>,
    kind: ObjectKind,
    query: &Query,
    filter: Option<Filter>,
    examine: usize,
    mut between: F,
) -> (Vec<String>, usize)
where
    F: FnMut(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut seen, mut pages, mut from) = (Vec::new(), 0, None);
    loop {
        let page = store
            .scan(kind, query, filter.clone(), from.as_ref(), examine)
            .await
            .unwrap_or_else(|e| panic!("scan page {pages}: {e}"));
        pages += 1;
        assert!(pages < 1_000, "a scan must end");
        assert!(page.docs.len() <= examine, "a page holds at most `examine` documents");
        seen.extend(
            page.docs
                .iter()
                .map(|d| d["id"].as_str().unwrap_or_default().to_owned()),
        );
        between(seen.clone()).await;
        match page.next {
            Some(next) => from = Some(next),
            None => return (seen, pages),
        }
    }
}

/// A scan walks the documents matching its equality filters in insertion
/// order, `examine` at a time, returning those that pass its filter; the
/// last page says there is no next one.
pub async fn case_scan_pages(store: &Arc<dyn Store>) {
    let kind = ObjectKind::AgendaProgress;
    let link = unique("scan-link");
    let docs = seed(store, kind, "scan", |i| json!({"linkId": link, "n": i}), 7).await;
    let ids: Vec<String> = docs
        .iter()
        .map(|d| d["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let by_link = Query::by("linkId", &link);
    let (seen, pages) = walk(store, kind, &by_link, None, 3, |_| async {}).await;
    assert_eq!(seen, ids, "every matching document once, in insertion order");
    assert!((3..=4).contains(&pages), "7 documents, 3 per page: {pages} pages");
    let even = Filter::Any((0..7).step_by(2).map(|n| Filter::equals("n", n)).collect());
    let (seen, _) = walk(store, kind, &by_link, Some(even), 2, |_| async {}).await;
    let wanted: Vec<String> = ids.iter().step_by(2).cloned().collect();
    assert_eq!(seen, wanted, "the filter applies to what each page examined");
    // An unindexed equality filter scans the same way.
    let marker = docs[0]["marker"].as_str().unwrap_or_default().to_owned();
    let (seen, _) = walk(store, kind, &Query::by("marker", &marker), None, 4, |_| async {}).await;
    assert_eq!(seen, ids, "by an unindexed field");
    let page = store
        .scan(kind, &Query::by("linkId", unique("scan-none")), None, None, 5)
        .await
        .expect("an empty scan");
    assert!(page.docs.is_empty() && page.next.is_none(), "nothing to scan: {page:?}");
}

/// Deleting what a scan has seen, the document its cursor points at, or
/// documents it has not reached yet, and adding new ones, never makes it
/// lose its place: every document present for the whole walk is seen once.
pub async fn case_scan_keeps_its_place(store: &Arc<dyn Store>) {
    let kind = ObjectKind::AgendaProgress;
    let link = unique("scan-place-link");
    let docs = seed(store, kind, "scan-place", |_| json!({"linkId": link}), 9).await;
    let ids: Vec<String> = docs
        .iter()
        .map(|d| d["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let by_link = Query::by("linkId", &link);
    // After the first page (ids 0..3): delete 0 and 2 (2 is where the cursor
    // points), delete 6 (not reached yet), add one new document.
    let added = unique("scan-place-new");
    let mut first = true;
    let (seen, _) = walk(store, kind, &by_link, None, 3, |_| {
        let run = std::mem::take(&mut first);
        let (store, ids, link, added) = (store.clone(), ids.clone(), link.clone(), added.clone());
        async move {
            if run {
                for gone in [&ids[0], &ids[2], &ids[6]] {
                    write_one(&store, Write::delete(kind, gone.clone()), "delete while scanning").await;
                }
                let new = object(json!({"id": added, "linkId": link}));
                write_one(&store, Write::create(kind, new), "add while scanning").await;
            }
        }
    })
    .await;
    let expected: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 6)
        .map(|(_, id)| id.clone())
        .collect();
    // A document added during the walk may or may not be seen (it is, at
    // the end, on a store that keeps insertion order by a sequence).
    let mut with_added = expected.clone();
    with_added.push(added);
    assert!(
        seen == expected || seen == with_added,
        "the walk kept its place: {seen:?}"
    );
    let foreign = store
        .scan(kind, &by_link, None, Some(&crate::ScanCursor("not a cursor".into())), 3)
        .await;
    assert!(foreign.is_err(), "a cursor this store did not hand out is refused");
}

/// The store declares DynamoDB's transaction limit; a batch of exactly that
/// many writes applies, one more is refused whole with `TooManyWrites`.
pub async fn case_write_count_limit(store: &Arc<dyn Store>) {
    let limit = store.max_writes();
    assert_eq!(
        limit,
        crate::MAX_WRITES_PER_BATCH,
        "every store declares DynamoDB's limit"
    );
    let prefix = unique("batch-limit");
    let writes = |count: usize, tag: &str| -> Vec<Write> {
        (0..count)
            .map(|n| {
                Write::put(
                    ObjectKind::Customer,
                    object(json!({"id": format!("{prefix}-{tag}-{n}")})),
                )
            })
            .collect()
    };
    let applied = store
        .write(writes(limit, "fits"))
        .await
        .expect("a batch at the limit applies");
    assert_eq!(applied.len(), limit);
    match store.write(writes(limit + 1, "over")).await {
        Err(StoreError::TooManyWrites { writes, limit: named }) => {
            assert_eq!((writes, named), (limit + 1, limit));
        }
        other => panic!("a batch over the limit: expected TooManyWrites, got {other:?}"),
    }
    let none = get(store, ObjectKind::Customer, &format!("{prefix}-over-0")).await;
    assert!(none.is_none(), "a refused batch writes nothing");
}

/// Put then get returns the same JSON: every type, nested values and the
/// order of fields.
pub async fn case_put_get_roundtrip(store: &Arc<dyn Store>) {
    let id = unique("roundtrip");
    let doc = object(json!({
        "zeta": 1,
        "id": id,
        "alpha": "a",
        "negative": -7,
        "big": u64::MAX,
        "float": 1.5,
        "yes": true,
        "no": false,
        "nothing": null,
        "nested": {"y": 1, "x": [1, "two", null, {"deep": true}]},
        "empty": {},
        "list": [],
        "text": "é ☃ \"quoted\" \\ \n\t \u{1}",
    }));
    let stored = write_one(store, Write::put(ObjectKind::Agenda, doc.clone()), "roundtrip put").await;
    assert_eq!(stored.as_ref(), Some(&doc), "Put must return the stored document");
    let got = get(store, ObjectKind::Agenda, &id)
        .await
        .expect("roundtrip: stored document not found");
    assert_eq!(got, doc, "roundtrip: JSON changed");
    assert_eq!(keys(&got), keys(&doc), "roundtrip: field order changed");
}

/// Getting an id never stored gives `None`.
pub async fn case_get_absent(store: &Arc<dyn Store>) {
    for kind in ObjectKind::ALL {
        let got = get(store, kind, &unique("absent")).await;
        assert_eq!(got, None, "get of an absent id in {kind} must be None");
    }
}

/// A Put whose document has no string `id` is refused as invalid.
pub async fn case_put_requires_string_id(store: &Arc<dyn Store>) {
    for doc in [json!({"title": "no id"}), json!({"id": 5}), json!({"id": null})] {
        let err = store
            .write(vec![Write::put(ObjectKind::Agenda, object(doc.clone()))])
            .await;
        assert!(
            matches!(err, Err(StoreError::InvalidDocument(_))),
            "Put of {doc} must be InvalidDocument, got {err:?}"
        );
    }
}

/// Creating an existing id fails with AlreadyExists and writes nothing.
pub async fn case_create_existing_fails(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Customer;
    let id = unique("create-existing");
    let original = object(json!({"id": id, "title": "original"}));
    write_one(store, Write::create(kind, original.clone()), "first create").await;
    let again = store
        .write(vec![Write::create(kind, object(json!({"id": id, "title": "second"})))])
        .await;
    assert_already_exists(again, kind, &id, "second create of the same id");
    assert_eq!(
        get(store, kind, &id).await,
        Some(original),
        "a refused create must not change the stored document"
    );
}

/// MustExist fails with NotFound on an absent id (creating nothing) and
/// replaces the whole document on an existing one.
pub async fn case_must_exist(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Insight;
    let id = unique("must-exist");
    let doc = object(json!({"id": id, "title": "t"}));
    let put = Write::Put {
        kind,
        doc: doc.clone(),
        condition: crate::Condition::MustExist,
    };
    assert_not_found(
        store.write(vec![put.clone()]).await,
        kind,
        &id,
        "MustExist on an absent id",
    );
    assert_eq!(
        get(store, kind, &id).await,
        None,
        "a refused MustExist must not create the document"
    );

    write_one(
        store,
        Write::create(kind, object(json!({"id": id, "title": "old", "extra": 1}))),
        "create",
    )
    .await;
    write_one(store, put, "MustExist on an existing id").await;
    assert_eq!(
        get(store, kind, &id).await,
        Some(doc),
        "MustExist must replace the whole document"
    );
}

/// An unconditional Put replaces the stored document entirely (fields it
/// lacks are gone).
pub async fn case_put_replaces_whole_document(store: &Arc<dyn Store>) {
    let kind = ObjectKind::ResourcePool;
    let id = unique("replace");
    write_one(
        store,
        Write::put(kind, object(json!({"id": id, "a": 1, "b": 2}))),
        "first put",
    )
    .await;
    let replacement = object(json!({"id": id, "b": 3}));
    write_one(store, Write::put(kind, replacement.clone()), "replacing put").await;
    assert_eq!(
        get(store, kind, &id).await,
        Some(replacement),
        "Put must replace, not merge"
    );
}

/// Merge overwrites only the non-null fields of the patch; nested objects
/// are replaced whole; existing fields keep their place, new ones follow.
pub async fn case_merge_sparse(store: &Arc<dyn Store>) {
    let kind = ObjectKind::AgendaProgress;
    let id = unique("merge");
    let stored = object(json!({
        "id": id, "a": 1, "b": "keep", "nested": {"p": 1, "q": 2}, "flag": true, "list": [1, 2]
    }));
    write_one(store, Write::create(kind, stored), "create").await;
    let patch = object(json!({"a": 2, "b": null, "nested": {"p": 9}, "new": "n", "list": []}));
    let merged = write_one(store, Write::merge(kind, &id, patch), "merge").await;
    let expected = object(json!({
        "id": id, "a": 2, "b": "keep", "nested": {"p": 9}, "flag": true, "list": [], "new": "n"
    }));
    assert_eq!(
        merged.as_ref(),
        Some(&expected),
        "Merge must return the merged document"
    );
    let got = get(store, kind, &id).await.expect("merged document vanished");
    assert_eq!(got, expected, "Merge stored the wrong document");
    assert_eq!(
        keys(&got),
        keys(&expected),
        "Merge must keep existing fields in place and append new ones"
    );
}

/// Merge into an absent id fails with NotFound and creates nothing.
pub async fn case_merge_absent(store: &Arc<dyn Store>) {
    let kind = ObjectKind::OperationProgress;
    let id = unique("merge-absent");
    let result = store
        .write(vec![Write::merge(kind, &id, object(json!({"a": 1})))])
        .await;
    assert_not_found(result, kind, &id, "Merge into an absent id");
    assert_eq!(
        get(store, kind, &id).await,
        None,
        "a refused Merge must not create the document"
    );
}

/// A patch may repeat the id but not change it.
pub async fn case_merge_cannot_change_id(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Agenda;
    let id = unique("merge-id");
    let doc = object(json!({"id": id, "a": 1}));
    write_one(store, Write::create(kind, doc.clone()), "create").await;
    let same = write_one(
        store,
        Write::merge(kind, &id, object(json!({"id": id, "a": 2}))),
        "merge repeating the id",
    )
    .await;
    assert_eq!(
        same.and_then(|d| d.get("a").cloned()),
        Some(json!(2)),
        "a patch repeating the id must apply"
    );
    let other = store
        .write(vec![Write::merge(kind, &id, object(json!({"id": "other", "a": 3})))])
        .await;
    assert!(
        matches!(other, Err(StoreError::InvalidDocument(_))),
        "a patch changing the id must be InvalidDocument, got {other:?}"
    );
    assert_eq!(
        get(store, kind, &id).await.and_then(|d| d.get("a").cloned()),
        Some(json!(2))
    );
}

/// Delete returns the removed document; deleting an absent id is `Ok(None)`.
pub async fn case_delete(store: &Arc<dyn Store>) {
    let kind = ObjectKind::ReadyAgenda;
    let id = unique("delete");
    let doc = object(json!({"id": id, "insightId": "i"}));
    write_one(store, Write::create(kind, doc.clone()), "create").await;
    let removed = write_one(store, Write::delete(kind, &id), "delete").await;
    assert_eq!(removed, Some(doc), "Delete must return the removed document");
    assert_eq!(get(store, kind, &id).await, None, "a deleted document must be gone");
    let again = write_one(store, Write::delete(kind, &id), "delete of an absent id").await;
    assert_eq!(again, None, "deleting an absent id must give None");
}

/// A batch whose last write fails leaves none of its writes applied.
pub async fn case_batch_atomic(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Agenda;
    let existing = unique("atomic-existing");
    let victim = unique("atomic-victim");
    let original = object(json!({"id": existing, "v": 1}));
    let victim_doc = object(json!({"id": victim, "v": 1}));
    write(
        store,
        vec![
            Write::create(kind, original.clone()),
            Write::create(kind, victim_doc.clone()),
        ],
        "setup",
    )
    .await;

    let fresh = unique("atomic-fresh");
    let missing = unique("atomic-missing");
    let batch = vec![
        Write::create(kind, object(json!({"id": fresh}))),
        Write::put(kind, object(json!({"id": existing, "v": 2}))),
        Write::merge(kind, &existing, object(json!({"w": 3}))),
        Write::delete(kind, &victim),
        Write::create(ObjectKind::Customer, object(json!({"id": fresh}))),
        Write::merge(kind, &missing, object(json!({"v": 9}))),
    ];
    assert_not_found(
        store.write(batch).await,
        kind,
        &missing,
        "batch ending in a Merge of an absent id",
    );
    assert_eq!(
        get(store, kind, &fresh).await,
        None,
        "failed batch: its create was applied"
    );
    assert_eq!(
        get(store, ObjectKind::Customer, &fresh).await,
        None,
        "failed batch: its create in another table was applied"
    );
    assert_eq!(
        get(store, kind, &existing).await,
        Some(original),
        "failed batch: its put/merge was applied"
    );
    assert_eq!(
        get(store, kind, &victim).await,
        Some(victim_doc),
        "failed batch: its delete was applied"
    );

    let batch = vec![
        Write::create(kind, object(json!({"id": fresh}))),
        Write::create(kind, object(json!({"id": existing}))),
    ];
    assert_already_exists(
        store.write(batch).await,
        kind,
        &existing,
        "batch ending in a create of an existing id",
    );
    assert_eq!(
        get(store, kind, &fresh).await,
        None,
        "failed batch: its first create was applied"
    );
}

/// Writes of one batch apply in order, each seeing the earlier ones, and
/// the results come back in the same order.
pub async fn case_batch_sees_own_writes(store: &Arc<dyn Store>) {
    let kind = ObjectKind::AgendaTemplate;
    let id = unique("batch-order");
    let gone = unique("batch-order-gone");
    let results = write(
        store,
        vec![
            Write::create(kind, object(json!({"id": id, "a": 1}))),
            Write::merge(kind, &id, object(json!({"b": 2}))),
            Write::create(kind, object(json!({"id": gone}))),
            Write::delete(kind, &gone),
            Write::delete(kind, &gone),
        ],
        "batch",
    )
    .await;
    let expected = vec![
        Some(object(json!({"id": id, "a": 1}))),
        Some(object(json!({"id": id, "a": 1, "b": 2}))),
        Some(object(json!({"id": gone}))),
        Some(object(json!({"id": gone}))),
        None,
    ];
    assert_eq!(results, expected, "batch results must follow the writes in order");
    assert_eq!(
        get(store, kind, &id).await,
        expected[1],
        "the merge must see the create before it"
    );
}

/// An empty batch succeeds with no results.
pub async fn case_empty_batch(store: &Arc<dyn Store>) {
    assert_eq!(
        write(store, Vec::new(), "empty batch").await,
        Vec::<Option<Document>>::new()
    );
}

/// Equality on an indexed field finds exactly the matching documents.
pub async fn case_filter_indexed(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Agenda;
    let link = unique("indexed-link");
    let docs = seed(
        store,
        kind,
        "indexed",
        |i| json!({"linkId": if i % 2 == 0 { link.clone() } else { unique("other") }}),
        6,
    )
    .await;
    let found = query(store, kind, &Query::by("linkId", &link), None).await;
    assert_eq!(found, every_other(&docs), "query by the indexed field linkId");
}

/// Equality on a field without an index finds exactly the matching documents.
pub async fn case_filter_unindexed(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Agenda;
    let cid = unique("unindexed-cid");
    let docs = seed(
        store,
        kind,
        "unindexed",
        |i| json!({"cid": if i % 2 == 0 { cid.clone() } else { unique("other") }}),
        6,
    )
    .await;
    let found = query(store, kind, &Query::by("cid", &cid), None).await;
    assert_eq!(found, every_other(&docs), "query by the unindexed field cid");
}

/// Numbers come back exactly as stored, and a filter finds them by their
/// text: floats of 16 and 17 significant digits included (serde_json's
/// default parser is off by an ulp on some of them, which turned
/// `99833779086000.25` into `99833779086000.23`).
pub async fn case_numbers_round_trip(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Agenda;
    let numbers = [
        json!(99833779086000.25),
        json!(132833779086000.25),
        json!(0.1),
        json!(1e300),
        json!(-2.5e-308),
        json!(u64::MAX),
        json!(i64::MIN),
    ];
    let link = unique("numbers-link");
    for (i, number) in numbers.iter().enumerate() {
        let id = unique("number");
        let doc = object(json!({"id": id, "linkId": link, "title": number, "num": number, "i": i}));
        write_one(store, Write::create(kind, doc.clone()), "store a number").await;
        assert_eq!(
            get(store, kind, &id).await,
            Some(doc.clone()),
            "{number} comes back as stored"
        );
        let text = number.to_string();
        for field in ["title", "num"] {
            let found = query(store, kind, &Query::by("linkId", &link).and(field, &text), None).await;
            assert_eq!(found, vec![doc.clone()], "{field} = {text}");
        }
        let indexed = query(store, kind, &Query::by("title", &text), None).await;
        assert!(indexed.contains(&doc), "indexed title = {text}");
    }
}

/// Filters compare text: number 5 matches "5" and the string "5", `true`
/// matches "true", objects and arrays match their compact JSON; on indexed
/// and unindexed fields alike.
pub async fn case_filter_compares_text(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Agenda;
    let n = unique_number();
    let float = n as f64 + 0.25;
    let float_text = Value::from(float).to_string();
    let link = unique("text-link");
    let docs = seed(
        store,
        kind,
        "text",
        |i| match i {
            0 => json!({"linkId": link, "title": n, "num": n, "flag": true, "obj": {"a": [1, "b"]}}),
            1 => json!({"linkId": link, "title": n.to_string(), "num": n.to_string(), "flag": "true"}),
            2 => json!({"linkId": link, "title": n + 1, "num": n + 1, "flag": false}),
            _ => json!({"linkId": link, "title": float, "num": float, "flag": 1}),
        },
        4,
    )
    .await;
    let expect = |indexes: &[usize]| indexes.iter().map(|&i| docs[i].clone()).collect::<Vec<_>>();
    let n_text = n.to_string();
    assert_eq!(
        query(store, kind, &Query::by("title", &n_text), None).await,
        expect(&[0, 1]),
        "indexed title = {n_text}"
    );
    assert_eq!(
        query(store, kind, &Query::by("title", &float_text), None).await,
        expect(&[3]),
        "indexed title = {float_text}"
    );
    let by_link = |field: &str, value: &str| Query::by("linkId", &link).and(field, value);
    assert_eq!(
        query(store, kind, &by_link("num", &n_text), None).await,
        expect(&[0, 1]),
        "unindexed num = {n_text}"
    );
    assert_eq!(
        query(store, kind, &by_link("num", &float_text), None).await,
        expect(&[3]),
        "unindexed num = {float_text}"
    );
    assert_eq!(
        query(store, kind, &by_link("flag", "true"), None).await,
        expect(&[0, 1]),
        "flag = true"
    );
    assert_eq!(
        query(store, kind, &by_link("flag", "false"), None).await,
        expect(&[2]),
        "flag = false"
    );
    assert_eq!(
        query(store, kind, &by_link("flag", "1"), None).await,
        expect(&[3]),
        "flag = 1 must not match true"
    );
    assert_eq!(
        query(store, kind, &by_link("obj", r#"{"a":[1,"b"]}"#), None).await,
        expect(&[0]),
        "object as compact JSON"
    );
}

/// A boolean on an indexed field matches "true" whichever filter drives
/// the query (the table may hold other such documents: a Filter narrows
/// the view to this run's).
pub async fn case_filter_indexed_boolean(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Agenda;
    let marker = unique("indexed-bool");
    let docs = seed(
        store,
        kind,
        "indexed-bool",
        |i| json!({"marker": marker, "title": i != 1}),
        3,
    )
    .await;
    let mine = marker_filter(&marker);
    let found = query(store, kind, &Query::by("title", "true"), Some(mine.clone())).await;
    assert_eq!(found, vec![docs[0].clone(), docs[2].clone()], "indexed title = true");
    let n = store
        .count(kind, &Query::by("title", "false"), Some(mine))
        .await
        .expect("count failed");
    assert_eq!(n, 1, "count of indexed title = false");
}

/// Several filters must all hold.
pub async fn case_filters_are_anded(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Agenda;
    let link = unique("and-link");
    let customer = unique("and-customer");
    let cid = unique("and-cid");
    let docs = seed(
        store,
        kind,
        "and",
        |i| json!({"linkId": link, "customerId": if i < 2 { customer.clone() } else { unique("c") }, "cid": if i % 2 == 0 { cid.clone() } else { unique("x") }}),
        4,
    )
    .await;
    let q = Query::by("linkId", &link).and("customerId", &customer).and("cid", &cid);
    assert_eq!(
        query(store, kind, &q, None).await,
        vec![docs[0].clone()],
        "three filters ANDed"
    );
    let q = Query::by("cid", &cid).and("linkId", &link);
    assert_eq!(
        query(store, kind, &q, None).await,
        vec![docs[0].clone(), docs[2].clone()],
        "two filters ANDed"
    );
    let q = Query::by("linkId", &link).and("linkId", unique("nope"));
    assert_eq!(
        query(store, kind, &q, None).await,
        Vec::<Document>::new(),
        "contradicting filters match nothing"
    );
}

/// A null or absent field matches no filter, not even "null" or "".
pub async fn case_filter_never_matches_null_or_absent(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Agenda;
    let link = unique("null-link");
    seed(
        store,
        kind,
        "null",
        |i| {
            if i == 0 {
                json!({"linkId": link, "opt": null})
            } else {
                json!({"linkId": link})
            }
        },
        2,
    )
    .await;
    for value in ["null", ""] {
        let found = query(store, kind, &Query::by("linkId", &link).and("opt", value), None).await;
        assert!(
            found.is_empty(),
            "filter opt = {value:?} matched a null or absent field: {found:?}"
        );
    }
}

/// `id` is a filter like any other.
pub async fn case_filter_by_id(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Customer;
    let docs = seed(store, kind, "by-id", |_| json!({"title": "t"}), 2).await;
    let id = docs[1]["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        query(store, kind, &Query::by("id", &id), None).await,
        vec![docs[1].clone()],
        "query by id"
    );
    let q = Query::by("id", &id).and("title", "other");
    assert!(
        query(store, kind, &q, None).await.is_empty(),
        "query by id must apply the other filters"
    );
}

/// `limit` caps the result and keeps insertion order.
pub async fn case_limit(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Agenda;
    let link = unique("limit-link");
    let docs = seed(store, kind, "limit", |_| json!({"linkId": link}), 5).await;
    let by_link = Query::by("linkId", &link);
    assert_eq!(
        query(store, kind, &by_link.clone().limit(3), None).await,
        docs[..3].to_vec(),
        "limit 3"
    );
    assert!(
        query(store, kind, &by_link.clone().limit(0), None).await.is_empty(),
        "limit 0"
    );
    assert_eq!(
        query(store, kind, &by_link.clone().limit(10), None).await,
        docs,
        "limit above the match count"
    );
    assert_eq!(query(store, kind, &by_link, None).await, docs, "no limit");
    let marker = docs[0]["marker"].as_str().unwrap_or_default().to_owned();
    let scanned = query(store, kind, &Query::all().limit(2), Some(marker_filter(&marker))).await;
    assert_eq!(scanned, docs[..2].to_vec(), "limit over a whole-table scan");
}

/// Merged and replaced documents keep their place in insertion order.
pub async fn case_insertion_order_kept(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Agenda;
    let link = unique("order-link");
    let docs = seed(store, kind, "order", |_| json!({"linkId": link}), 3).await;
    let id = |i: usize| docs[i]["id"].as_str().unwrap_or_default().to_owned();
    let mut replaced = docs[1].clone();
    replaced.insert("replaced".into(), json!(true));
    let mut must_exist = docs[2].clone();
    must_exist.insert("again".into(), json!(true));
    write(
        store,
        vec![
            Write::merge(kind, id(0), object(json!({"merged": true}))),
            Write::put(kind, replaced),
            Write::Put {
                kind,
                doc: must_exist,
                condition: crate::Condition::MustExist,
            },
        ],
        "updates",
    )
    .await;
    let found = query(store, kind, &Query::by("linkId", &link), None).await;
    let ids: Vec<_> = found.iter().map(|d| d["id"].clone()).collect();
    assert_eq!(
        ids,
        vec![json!(id(0)), json!(id(1)), json!(id(2))],
        "updates must not move documents"
    );
    assert_eq!(found[0].get("merged"), Some(&json!(true)), "the merge is visible");
    assert_eq!(
        found[1].get("replaced"),
        Some(&json!(true)),
        "the replacement is visible"
    );
    // Deleting the newest and adding another: the newcomer is still last,
    // and a re-created id goes to the end like any new document.
    write_one(store, Write::delete(kind, id(2)), "delete the newest").await;
    let late = unique("order-late");
    write_one(
        store,
        Write::create(kind, object(json!({"id": late, "linkId": link}))),
        "add after the delete",
    )
    .await;
    write_one(
        store,
        Write::create(kind, object(json!({"id": id(2), "linkId": link}))),
        "re-create the deleted one",
    )
    .await;
    let ids: Vec<_> = query(store, kind, &Query::by("linkId", &link), None)
        .await
        .iter()
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!(id(0)), json!(id(1)), json!(late), json!(id(2))],
        "new documents come after every existing one"
    );
}

/// `visible` is applied before `limit`: the limit counts visible documents.
pub async fn case_doc_filter_before_limit(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Agenda;
    let link = unique("visible-link");
    let docs = seed(
        store,
        kind,
        "visible",
        |i| json!({"linkId": link, "visible": i % 2 == 1}),
        6,
    )
    .await;
    let visible = Filter::equals("visible", true);
    let found = query(store, kind, &Query::by("linkId", &link).limit(2), Some(visible.clone())).await;
    assert_eq!(
        found,
        vec![docs[1].clone(), docs[3].clone()],
        "limit must count only visible documents"
    );
    let all = query(store, kind, &Query::by("linkId", &link), Some(visible)).await;
    assert_eq!(
        all,
        vec![docs[1].clone(), docs[3].clone(), docs[5].clone()],
        "a filter without limit"
    );
}

/// `count` honours filters and `visible`, and ignores `limit`.
pub async fn case_count(store: &Arc<dyn Store>) {
    let kind = ObjectKind::Agenda;
    let link = unique("count-link");
    let cid = unique("count-cid");
    let docs = seed(
        store,
        kind,
        "count",
        |i| json!({"linkId": link, "cid": if i < 2 { cid.clone() } else { unique("x") }, "visible": i != 0}),
        4,
    )
    .await;
    let marker = docs[0]["marker"].as_str().unwrap_or_default().to_owned();
    let visible = Filter::equals("visible", true);
    let count = |q: Query, v: Option<Filter>| {
        let store = Arc::clone(store);
        async move { store.count(kind, &q, v).await.expect("count failed") }
    };
    assert_eq!(
        count(Query::by("linkId", &link), None).await,
        4,
        "count by an indexed field"
    );
    assert_eq!(
        count(Query::by("linkId", &link).limit(1), None).await,
        4,
        "count must ignore limit"
    );
    assert_eq!(
        count(Query::by("cid", &cid), None).await,
        2,
        "count by an unindexed field"
    );
    assert_eq!(
        count(Query::by("linkId", &link).and("cid", &cid), None).await,
        2,
        "count by two filters"
    );
    assert_eq!(
        count(Query::by("linkId", &link), Some(visible.clone())).await,
        3,
        "count with a filter"
    );
    assert_eq!(
        count(Query::by("cid", &cid), Some(visible)).await,
        1,
        "count by an unindexed field with a filter"
    );
    assert_eq!(
        count(Query::by("linkId", unique("none")), None).await,
        0,
        "count of no match"
    );
    assert!(count(Query::all(), None).await >= 4, "count of the whole table");
    assert_eq!(
        count(Query::all(), Some(marker_filter(&marker))).await,
        4,
        "count of the whole table with a filter"
    );
}

/// 50 tasks writing at once: every write lands, and merges into one shared
/// document lose none of each other's fields.
pub async fn case_concurrent_writes(store: &Arc<dyn Store>) {
    const TASKS: usize = 50;
    let kind = ObjectKind::OperationProgress;
    let link = unique("concurrent");
    let shared = unique("concurrent-shared");
    write_one(
        store,
        Write::create(kind, object(json!({"id": shared}))),
        "create the shared document",
    )
    .await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = Arc::clone(store);
            let own = object(json!({"id": unique("concurrent-own"), "customerId": link, "i": i}));
            let patch = object(json!({ format!("f{i}"): i }));
            let shared = shared.clone();
            tokio::spawn(async move {
                store
                    .write(vec![Write::create(kind, own), Write::merge(kind, shared, patch)])
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("writer task panicked")
            .expect("concurrent write failed");
    }
    let n = store
        .count(kind, &Query::by("customerId", &link), None)
        .await
        .expect("count failed");
    assert_eq!(n, TASKS as u64, "concurrent creates were lost");
    let merged = get(store, kind, &shared).await.expect("shared document vanished");
    let missing: Vec<_> = (0..TASKS)
        .filter(|i| merged.get(&format!("f{i}")) != Some(&json!(i)))
        .collect();
    assert!(missing.is_empty(), "concurrent merges lost fields {missing:?}");
}

/// Concurrent batches succeed or fail on their own: a failing batch neither
/// applies nor spoils the batches committed beside it.
pub async fn case_concurrent_mixed_outcomes(store: &Arc<dyn Store>) {
    const TASKS: usize = 40;
    let kind = ObjectKind::Insight;
    let existing = unique("mixed-existing");
    write_one(store, Write::create(kind, object(json!({"id": existing}))), "create").await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = Arc::clone(store);
            let id = unique("mixed");
            let mut batch = vec![Write::create(kind, object(json!({"id": id})))];
            if i % 2 == 1 {
                batch.push(Write::create(kind, object(json!({"id": existing}))));
            }
            tokio::spawn(async move { (id, store.write(batch).await) })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let (id, result) = task.await.expect("writer task panicked");
        let present = get(store, kind, &id).await.is_some();
        if i % 2 == 1 {
            assert_already_exists(result, kind, &existing, "failing batch among concurrent ones");
            assert!(!present, "a failed concurrent batch was applied ({id})");
        } else {
            result.expect("a valid batch failed beside a failing one");
            assert!(present, "a successful concurrent batch is missing ({id})");
        }
    }
}

/// A guarded Merge applies only while every expected value holds: equal
/// values, null for absent or null fields, numbers by value. Otherwise it
/// fails with ConditionFailed and changes nothing; an absent id is NotFound.
pub async fn case_merge_expect(store: &Arc<dyn Store>) {
    let kind = ObjectKind::QueuedAgenda;
    let id = unique("merge-expect");
    let original = object(json!({"id": id, "owner": "a", "version": 1, "gone": null}));
    write_one(store, Write::create(kind, original.clone()), "create").await;

    for (expect, what) in [
        (Expect::field("owner", "b"), "a different string"),
        (Expect::field("version", "1"), "the number as a string"),
        (
            Expect::field("owner", "a").and("version", 2),
            "one of two fields differing",
        ),
        (Expect::field("owner", Value::Null), "null for a present field"),
        (Expect::field("missing", ""), "a value for an absent field"),
    ] {
        let refused = store
            .write(vec![Write::merge_if(kind, &id, expect, object(json!({"owner": "x"})))])
            .await;
        assert_condition_failed(refused, kind, &id, &format!("Merge expecting {what}"));
        assert_eq!(
            get(store, kind, &id).await,
            Some(original.clone()),
            "a refused guarded Merge ({what}) changed the document"
        );
    }

    let expect = Expect::field("owner", "a")
        .and("version", 1.0)
        .and("gone", Value::Null)
        .and("missing", Value::Null);
    let merged = write_one(
        store,
        Write::merge_if(kind, &id, expect, object(json!({"owner": "b", "version": 2}))),
        "Merge whose expectations hold",
    )
    .await;
    let expected = object(json!({"id": id, "owner": "b", "version": 2, "gone": null}));
    assert_eq!(
        merged,
        Some(expected.clone()),
        "a guarded Merge must return the merged document"
    );
    assert_eq!(
        get(store, kind, &id).await,
        Some(expected),
        "guarded Merge stored the wrong document"
    );

    let absent = unique("merge-expect-absent");
    let result = store
        .write(vec![Write::merge_if(
            kind,
            &absent,
            Expect::field("owner", Value::Null),
            object(json!({"owner": "x"})),
        )])
        .await;
    assert_not_found(result, kind, &absent, "guarded Merge into an absent id");
    assert_eq!(
        get(store, kind, &absent).await,
        None,
        "a guarded Merge created a document"
    );
}

/// A guarded Delete removes the row only while the expectations hold; on an
/// absent id it is NotFound (unlike an unguarded Delete).
pub async fn case_delete_expect(store: &Arc<dyn Store>) {
    let kind = ObjectKind::QueuedAgenda;
    let id = unique("delete-expect");
    let doc = object(json!({"id": id, "owner": "a"}));
    write_one(store, Write::create(kind, doc.clone()), "create").await;
    let refused = store
        .write(vec![Write::delete_if(kind, &id, Expect::field("owner", "b"))])
        .await;
    assert_condition_failed(refused, kind, &id, "Delete expecting another owner");
    assert_eq!(
        get(store, kind, &id).await,
        Some(doc.clone()),
        "a refused Delete removed the row"
    );

    let removed = write_one(
        store,
        Write::delete_if(kind, &id, Expect::field("owner", "a")),
        "Delete whose expectation holds",
    )
    .await;
    assert_eq!(removed, Some(doc), "a guarded Delete must return the removed document");
    assert_eq!(get(store, kind, &id).await, None, "a guarded Delete left the row");

    let again = store
        .write(vec![Write::delete_if(kind, &id, Expect::field("owner", "a"))])
        .await;
    assert_not_found(again, kind, &id, "guarded Delete of an absent id");
}

/// Documents at the declared limits are kept; one beyond either limit fails
/// with `LimitExceeded` naming it, and its batch (puts and merges alike)
/// applies nothing.
pub async fn case_document_limits(store: &Arc<dyn Store>) {
    for kind in [ObjectKind::Agenda, ObjectKind::OperationProgress] {
        document_limits_of(store, kind).await;
    }
}

async fn document_limits_of(store: &Arc<dyn Store>, kind: ObjectKind) {
    let limits = store.document_limits(kind);
    // `{"id", "p": [[...]]}`: the document is level 1, so `levels` arrays
    // make it `levels + 1` deep.
    let nested = |levels: usize| (0..levels).fold(json!(1), |inner, _| json!([inner]));
    let deepest = unique("limits-deepest");
    let doc = object(json!({"id": deepest, "p": nested(limits.max_depth - 1)}));
    write_one(store, Write::create(kind, doc.clone()), "a document at the depth limit").await;
    assert_eq!(
        get(store, kind, &deepest).await,
        Some(doc),
        "read back at the depth limit"
    );

    let fresh = unique("limits-fresh");
    let too_deep = unique("limits-too-deep");
    let batch = vec![
        Write::create(kind, object(json!({"id": fresh}))),
        Write::create(kind, object(json!({"id": too_deep, "p": nested(limits.max_depth)}))),
    ];
    match store.write(batch).await {
        Err(StoreError::LimitExceeded {
            actual, limit, unit, ..
        }) => {
            assert_eq!(
                (actual, limit, unit),
                (limits.max_depth + 1, limits.max_depth, "levels deep")
            );
        }
        other => panic!("a document past the depth limit: expected LimitExceeded, got {other:?}"),
    }
    assert_eq!(
        get(store, kind, &fresh).await,
        None,
        "the batch of a refused document applied"
    );
    assert_eq!(get(store, kind, &too_deep).await, None, "a refused document was stored");

    // A document just within the size limit is kept whole.
    let largest = unique("limits-largest");
    let skeleton = serde_json::to_vec(&json!({"id": largest, "p": ""}))
        .expect("serializes")
        .len();
    let doc = object(json!({"id": largest, "p": "x".repeat(limits.max_bytes - skeleton)}));
    write_one(store, Write::create(kind, doc.clone()), "a document at the size limit").await;
    assert!(
        get(store, kind, &largest).await == Some(doc),
        "a document at the size limit did not read back whole"
    );
    write_one(store, Write::delete(kind, &largest), "cleanup").await;

    // A merge that makes a stored document too large is refused as well.
    let base = unique("limits-merge");
    write_one(store, Write::create(kind, object(json!({"id": base, "n": 1}))), "setup").await;
    let big = "x".repeat(limits.max_bytes);
    match store
        .write(vec![Write::merge(kind, &base, object(json!({"blob": big})))])
        .await
    {
        Err(StoreError::LimitExceeded {
            unit: "bytes", limit, ..
        }) => assert_eq!(limit, limits.max_bytes),
        other => panic!(
            "a merge past the size limit: expected LimitExceeded, got {:?}",
            other.map(|_| ())
        ),
    }
    assert_eq!(
        get(store, kind, &base).await,
        Some(object(json!({"id": base, "n": 1}))),
        "a refused merge changed the document"
    );
}

/// A batch with a failing guard applies none of its writes, whatever their
/// order.
pub async fn case_expect_batch_atomic(store: &Arc<dyn Store>) {
    let kind = ObjectKind::QueuedAgenda;
    let first = unique("expect-atomic-first");
    let second = unique("expect-atomic-second");
    let fresh = unique("expect-atomic-fresh");
    let docs = [
        object(json!({"id": first, "owner": null})),
        object(json!({"id": second, "owner": "taken"})),
    ];
    write(
        store,
        docs.iter().map(|d| Write::create(kind, d.clone())).collect(),
        "setup",
    )
    .await;
    let batch = vec![
        Write::create(kind, object(json!({"id": fresh}))),
        Write::merge_if(
            kind,
            &first,
            Expect::field("owner", Value::Null),
            object(json!({"owner": "me"})),
        ),
        Write::delete_if(kind, &first, Expect::field("owner", "me")),
        Write::merge_if(
            kind,
            &second,
            Expect::field("owner", Value::Null),
            object(json!({"owner": "me"})),
        ),
    ];
    assert_condition_failed(
        store.write(batch).await,
        kind,
        &second,
        "batch ending in a failing guard",
    );
    assert_eq!(
        get(store, kind, &fresh).await,
        None,
        "failed guarded batch: its create applied"
    );
    assert_eq!(
        get(store, kind, &first).await,
        Some(docs[0].clone()),
        "failed guarded batch: its merge and delete applied"
    );
    assert_eq!(get(store, kind, &second).await, Some(docs[1].clone()));
}

/// Claiming with compare-and-set: 20 tasks race for 50 entries, each
/// repeatedly reading the unclaimed ones and claiming the first with a Merge
/// guarded on "no owner yet". Every entry is claimed exactly once, and each
/// claim the store acknowledged is the entry's final owner.
pub async fn case_concurrent_claims(store: &Arc<dyn Store>) {
    const TASKS: usize = 20;
    const ENTRIES: usize = 50;
    let kind = ObjectKind::QueuedAgenda;
    let queue = unique("claims-queue");
    let ids: Vec<String> = (0..ENTRIES).map(|_| unique("claim")).collect();
    write(
        store,
        ids.iter()
            .map(|id| Write::create(kind, object(json!({"id": id, "insightId": queue}))))
            .collect(),
        "seed the entries",
    )
    .await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = Arc::clone(store);
            let queue = queue.clone();
            tokio::spawn(async move { claim_until_empty(&store, kind, &queue, &format!("task-{task}")).await })
        })
        .collect();
    let mut claimed: Vec<(String, String)> = Vec::new();
    for (task, handle) in tasks.into_iter().enumerate() {
        let won = handle.await.expect("claiming task panicked");
        claimed.extend(won.into_iter().map(|id| (id, format!("task-{task}"))));
    }
    let mut claimed_ids: Vec<&str> = claimed.iter().map(|(id, _)| id.as_str()).collect();
    claimed_ids.sort_unstable();
    let before = claimed_ids.len();
    claimed_ids.dedup();
    assert_eq!(before, claimed_ids.len(), "an entry was claimed twice");
    assert_eq!(claimed_ids.len(), ENTRIES, "every entry must be claimed once");
    for (id, owner) in &claimed {
        let doc = get(store, kind, id).await.expect("a claimed entry vanished");
        assert_eq!(
            doc.get("owner"),
            Some(&json!(owner)),
            "{id}: the acknowledged claim was overwritten"
        );
    }
}

/// One claimer: claim the first unowned entry of `queue` until none is left;
/// the ids it won.
async fn claim_until_empty(store: &Arc<dyn Store>, kind: ObjectKind, queue: &str, owner: &str) -> Vec<String> {
    let unowned = Filter::Missing("owner".into());
    let mut won = Vec::new();
    loop {
        let free = query(
            store,
            kind,
            &Query::by("insightId", queue).limit(1),
            Some(unowned.clone()),
        )
        .await;
        let Some(id) = free.first().and_then(|d| d.get("id")).and_then(Value::as_str) else {
            return won;
        };
        let claim = Write::merge_if(
            kind,
            id,
            Expect::field("owner", Value::Null),
            object(json!({"owner": owner})),
        );
        match store.write(vec![claim]).await {
            Ok(_) => won.push(id.to_owned()),
            Err(StoreError::ConditionFailed { .. }) => {}
            Err(e) => panic!("claim of {id} failed: {e}"),
        }
    }
}

/// Every table works, with its own id space and its indexed fields.
pub async fn case_every_kind(store: &Arc<dyn Store>) {
    let id = unique("kind");
    for kind in ObjectKind::ALL {
        let mut doc = object(json!({"id": id, "kind": kind.table()}));
        for field in kind.indexed_fields() {
            doc.insert((*field).to_owned(), json!(unique(field)));
        }
        write_one(store, Write::create(kind, doc.clone()), "create in each table").await;
        assert_eq!(get(store, kind, &id).await, Some(doc.clone()), "get from {kind}");
        for field in kind.indexed_fields() {
            let value = field_text(&doc, field).unwrap_or_default();
            let q = Query::by(*field, value);
            assert_eq!(
                query(store, kind, &q, None).await,
                vec![doc.clone()],
                "query {kind} by {field}"
            );
            assert_eq!(
                store.count(kind, &q, None).await.expect("count failed"),
                1,
                "count {kind} by {field}"
            );
        }
    }
    for kind in ObjectKind::ALL {
        let removed = write_one(store, Write::delete(kind, &id), "delete in each table").await;
        let table = removed.and_then(|d| d.get("kind").cloned());
        assert_eq!(
            table,
            Some(json!(kind.table())),
            "the same id in another table was deleted instead"
        );
    }
}

/// A value unique to this case and run: the case name, the clock and a
/// process-wide counter.
pub fn unique(case: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{case}-{nanos:x}-{n}")
}

/// A number unlikely to be stored by anyone else, small enough that adding
/// a fraction keeps it exact in an f64.
fn unique_number() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 1000;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    (nanos % 1_000_000_000_000) as u64 * 1000 + n + 1_000_000
}

/// Creates `count` documents in `kind`, one batch each, with a unique id,
/// a `marker` shared by the batch and the fields `fields(i)` returns.
async fn seed(
    store: &Arc<dyn Store>,
    kind: ObjectKind,
    case: &str,
    fields: impl Fn(usize) -> Value,
    count: usize,
) -> Vec<Document> {
    let marker = unique(case);
    let docs: Vec<Document> = (0..count)
        .map(|i| {
            let mut doc = object(json!({"id": unique(case), "marker": marker}));
            doc.extend(object(fields(i)));
            doc
        })
        .collect();
    // One batch per document, so that insertion order is the order of docs
    // even on a backend that does not order the writes of one batch.
    for doc in &docs {
        write_one(store, Write::create(kind, doc.clone()), "seed").await;
    }
    docs
}

fn marker_filter(marker: &str) -> Filter {
    Filter::equals("marker", marker)
}

fn every_other(docs: &[Document]) -> Vec<Document> {
    docs.iter().step_by(2).cloned().collect()
}

fn object(value: Value) -> Document {
    match value {
        Value::Object(map) => map,
        other => panic!("conformance bug: {other} is not an object"),
    }
}

fn keys(doc: &Document) -> Vec<&str> {
    doc.keys().map(String::as_str).collect()
}

async fn get(store: &Arc<dyn Store>, kind: ObjectKind, id: &str) -> Option<Document> {
    store
        .get(kind, id)
        .await
        .unwrap_or_else(|e| panic!("get {kind} {id} failed: {e}"))
}

async fn query(store: &Arc<dyn Store>, kind: ObjectKind, q: &Query, visible: Option<Filter>) -> Vec<Document> {
    store
        .query(kind, q, visible)
        .await
        .unwrap_or_else(|e| panic!("query {kind} {q:?} failed: {e}"))
}

async fn write(store: &Arc<dyn Store>, writes: Vec<Write>, what: &str) -> Vec<Option<Document>> {
    store
        .write(writes)
        .await
        .unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

async fn write_one(store: &Arc<dyn Store>, w: Write, what: &str) -> Option<Document> {
    let mut results = write(store, vec![w], what).await;
    assert_eq!(results.len(), 1, "{what}: one write must give one result");
    results.pop().flatten()
}

fn assert_already_exists<T: std::fmt::Debug>(result: Result<T, StoreError>, kind: ObjectKind, id: &str, what: &str) {
    match result {
        Err(StoreError::AlreadyExists { kind: k, id: i }) if k == kind && i == id => {}
        other => panic!("{what}: expected AlreadyExists {kind} {id}, got {other:?}"),
    }
}

fn assert_condition_failed<T: std::fmt::Debug>(result: Result<T, StoreError>, kind: ObjectKind, id: &str, what: &str) {
    match result {
        Err(StoreError::ConditionFailed { kind: k, id: i }) if k == kind && i == id => {}
        other => panic!("{what}: expected ConditionFailed {kind} {id}, got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, kind: ObjectKind, id: &str, what: &str) {
    match result {
        Err(StoreError::NotFound { kind: k, id: i }) if k == kind && i == id => {}
        other => panic!("{what}: expected NotFound {kind} {id}, got {other:?}"),
    }
}
