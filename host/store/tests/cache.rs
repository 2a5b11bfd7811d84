//! `CachedStore` over `SqliteStore`: the port's conformance suite, that cached
//! reads skip the inner store, that writes invalidate (also when a read or a
//! cancelled write overlaps them), and that entries expire.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pop_store::{
    CacheOptions, CachedStore, Document, Filter, ObjectKind, Query, Result, ScanCursor, ScanPage, SqliteOptions,
    SqliteStore, Store, Write, conformance,
};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// Long enough that no test passes by expiry unless it means to.
const LONG_TTL: Duration = Duration::from_secs(600);

fn object(value: Value) -> Document {
    match value {
        Value::Object(map) => map,
        other => panic!("{other} is not an object"),
    }
}

fn sqlite(dir: &TempDir) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(dir.path().join("pop.db"), SqliteOptions::default()).expect("open store"))
}

fn cached(inner: Arc<dyn Store>, ttl: Duration) -> CachedStore {
    let options = CacheOptions {
        ttl,
        ..CacheOptions::default()
    };
    CachedStore::new(inner, options)
}

/// A pause inside an inner call: `entered` fires when the call gets there,
/// and the call goes on once `release` fires.
struct Gate {
    entered: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// The test's side of a [`Gate`].
struct GateHandle {
    entered: oneshot::Receiver<()>,
    release: oneshot::Sender<()>,
}

fn gate() -> (Gate, GateHandle) {
    let (entered_tx, entered_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    let gate = Gate {
        entered: entered_tx,
        release: release_rx,
    };
    let handle = GateHandle {
        entered: entered_rx,
        release: release_tx,
    };
    (gate, handle)
}

impl Gate {
    async fn pass(self) {
        let _ = self.entered.send(());
        let _ = self.release.await;
    }
}

/// The inner store as the cache sees it: counts the calls that reach it, and
/// can hold the next get after it has read (so that a write lands before the
/// read returns) or the next write before it applies.
struct Probe {
    inner: Arc<dyn Store>,
    gets: AtomicUsize,
    queries: AtomicUsize,
    counts: AtomicUsize,
    get_gate: Mutex<Option<Gate>>,
    write_gate: Mutex<Option<Gate>>,
    /// Fires when the gated write has been applied.
    write_done: Mutex<Option<oneshot::Sender<()>>>,
}

impl Probe {
    fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            gets: AtomicUsize::new(0),
            queries: AtomicUsize::new(0),
            counts: AtomicUsize::new(0),
            get_gate: Mutex::new(None),
            write_gate: Mutex::new(None),
            write_done: Mutex::new(None),
        })
    }

    fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    fn hold_next_get(&self) -> GateHandle {
        let (gate, handle) = gate();
        *self.get_gate.lock().unwrap() = Some(gate);
        handle
    }

    fn hold_next_write(&self) -> (GateHandle, oneshot::Receiver<()>) {
        let (gate, handle) = gate();
        let (done_tx, done_rx) = oneshot::channel();
        *self.write_gate.lock().unwrap() = Some(gate);
        *self.write_done.lock().unwrap() = Some(done_tx);
        (handle, done_rx)
    }
}

#[async_trait]
impl Store for Probe {
    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Option<Document>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let result = self.inner.get(kind, id).await;
        let gate = self.get_gate.lock().unwrap().take();
        if let Some(gate) = gate {
            gate.pass().await;
        }
        result
    }

    async fn query(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> Result<Vec<Document>> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        self.inner.query(kind, query, visible).await
    }

    async fn count(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> Result<u64> {
        self.counts.fetch_add(1, Ordering::SeqCst);
        self.inner.count(kind, query, visible).await
    }
    async fn scan(
        &self,
        kind: ObjectKind,
        query: &Query,
        filter: Option<Filter>,
        from: Option<&ScanCursor>,
        examine: usize,
    ) -> Result<ScanPage> {
        self.inner.scan(kind, query, filter, from, examine).await
    }

    async fn write(&self, writes: Vec<Write>) -> Result<Vec<Option<Document>>> {
        let gate = self.write_gate.lock().unwrap().take();
        let gated = gate.is_some();
        if let Some(gate) = gate {
            gate.pass().await;
        }
        let result = self.inner.write(writes).await;
        if gated && let Some(done) = self.write_done.lock().unwrap().take() {
            let _ = done.send(());
        }
        result
    }
}

async fn put(store: &dyn Store, kind: ObjectKind, doc: Value) {
    store.write(vec![Write::put(kind, object(doc))]).await.expect("put");
}

async fn get(store: &dyn Store, kind: ObjectKind, id: &str) -> Option<Document> {
    store.get(kind, id).await.expect("get")
}

#[test]
fn cached_store_is_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<CachedStore>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_with_the_default_kinds_cached() {
    let dir = TempDir::new().unwrap();
    conformance::run_all(Arc::new(CachedStore::new(sqlite(&dir), CacheOptions::default()))).await;
}

#[tokio::test(flavor = "current_thread")]
async fn conformance_with_every_kind_cached() {
    let dir = TempDir::new().unwrap();
    let options = CacheOptions {
        kinds: ObjectKind::ALL.to_vec(),
        max_entries: 64,
        ttl: LONG_TTL,
    };
    conformance::run_all(Arc::new(CachedStore::new(sqlite(&dir), options))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_gets_skip_the_inner_store() {
    let dir = TempDir::new().unwrap();
    let probe = Probe::new(sqlite(&dir));
    let store = cached(probe.clone(), LONG_TTL);
    put(&store, ObjectKind::Customer, json!({"id": "c1", "title": "one"})).await;

    let first = get(&store, ObjectKind::Customer, "c1").await.expect("c1");
    let mut second = get(&store, ObjectKind::Customer, "c1").await.expect("c1");
    assert_eq!(first, second);
    assert_eq!(probe.gets(), 1, "the second get must be served from the cache");

    // Callers own what they get: changing it leaves the cache alone.
    second.insert("title".into(), json!("changed by the caller"));
    assert_eq!(get(&store, ObjectKind::Customer, "c1").await, Some(first));

    assert_eq!(get(&store, ObjectKind::Customer, "absent").await, None);
    assert_eq!(get(&store, ObjectKind::Customer, "absent").await, None);
    assert_eq!(probe.gets(), 2, "absence must be cached too");

    // Agenda is not a cached kind.
    put(&store, ObjectKind::Agenda, json!({"id": "a1"})).await;
    get(&store, ObjectKind::Agenda, "a1").await;
    get(&store, ObjectKind::Agenda, "a1").await;
    assert_eq!(probe.gets(), 4, "gets of an uncached kind must pass through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_queries_skip_the_inner_store() {
    let dir = TempDir::new().unwrap();
    let probe = Probe::new(sqlite(&dir));
    let store = cached(probe.clone(), LONG_TTL);
    for (id, visible) in [("i1", false), ("i2", true), ("i3", true), ("i4", true)] {
        put(
            &store,
            ObjectKind::Insight,
            json!({"id": id, "resourcePoolId": "p1", "visible": visible}),
        )
        .await;
    }
    let by_pool = Query::by("resourcePoolId", "p1");
    let all = store.query(ObjectKind::Insight, &by_pool, None).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(store.query(ObjectKind::Insight, &by_pool, None).await.unwrap(), all);
    assert_eq!(probe.queries(), 1, "the second query must be served from the cache");

    // A filtered query is answered from the cached unfiltered, unlimited
    // result exactly as the inner store would: filter first, then limit.
    let visible = Filter::equals("visible", true);
    let limited = by_pool.clone().limit(2);
    let served = store
        .query(ObjectKind::Insight, &limited, Some(visible.clone()))
        .await
        .unwrap();
    assert_eq!(
        probe.queries(),
        1,
        "a filtered query must be served from the cached result"
    );
    let direct = probe
        .inner
        .query(ObjectKind::Insight, &limited, Some(visible.clone()))
        .await
        .unwrap();
    assert_eq!(served, direct);
    let ids: Vec<_> = served.iter().map(|d| d["id"].clone()).collect();
    assert_eq!(ids, vec![json!("i2"), json!("i3")]);

    // Other filters have no cached unfiltered result: pass through.
    let other = Query::by("resourcePoolId", "p2");
    store
        .query(ObjectKind::Insight, &other, Some(visible.clone()))
        .await
        .unwrap();
    store.query(ObjectKind::Insight, &other, Some(visible)).await.unwrap();
    assert_eq!(
        probe.queries(),
        3,
        "filtered queries without a cached result pass through"
    );

    // A limit is part of the cached query.
    let first = store.query(ObjectKind::Insight, &limited, None).await.unwrap();
    assert_eq!(first, all[..2].to_vec());
    store.query(ObjectKind::Insight, &limited, None).await.unwrap();
    assert_eq!(probe.queries(), 4);

    // Counts are never cached.
    for _ in 0..2 {
        assert_eq!(store.count(ObjectKind::Insight, &by_pool, None).await.unwrap(), 4);
    }
    assert_eq!(probe.counts.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_invalidate_their_kind() {
    let dir = TempDir::new().unwrap();
    let probe = Probe::new(sqlite(&dir));
    let store = cached(probe.clone(), LONG_TTL);
    let kind = ObjectKind::Customer;

    assert_eq!(get(&store, kind, "c1").await, None);
    put(&store, kind, json!({"id": "c1", "title": "one"})).await;
    assert_eq!(
        get(&store, kind, "c1").await,
        Some(object(json!({"id": "c1", "title": "one"})))
    );

    store
        .write(vec![Write::merge(kind, "c1", object(json!({"extra": 2})))])
        .await
        .unwrap();
    assert_eq!(
        get(&store, kind, "c1").await,
        Some(object(json!({"id": "c1", "title": "one", "extra": 2}))),
        "get after merge"
    );

    put(&store, kind, json!({"id": "c1", "title": "two"})).await;
    assert_eq!(
        get(&store, kind, "c1").await,
        Some(object(json!({"id": "c1", "title": "two"})))
    );

    store.write(vec![Write::delete(kind, "c1")]).await.unwrap();
    assert_eq!(get(&store, kind, "c1").await, None, "get after delete");

    // A write to another kind leaves this kind's entries alone.
    put(&store, kind, json!({"id": "c2"})).await;
    get(&store, kind, "c2").await;
    let gets = probe.gets();
    put(&store, ObjectKind::Agenda, json!({"id": "a1"})).await;
    get(&store, kind, "c2").await;
    assert_eq!(probe.gets(), gets, "an Agenda write must not invalidate Customers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_matching_document_shows_in_a_cached_query() {
    let dir = TempDir::new().unwrap();
    let store = cached(sqlite(&dir), LONG_TTL);
    let by_pool = Query::by("resourcePoolId", "p1");
    let ids = |docs: Vec<Document>| docs.iter().map(|d| d["id"].clone()).collect::<Vec<_>>();

    put(&store, ObjectKind::Insight, json!({"id": "i1", "resourcePoolId": "p1"})).await;
    assert_eq!(
        ids(store.query(ObjectKind::Insight, &by_pool, None).await.unwrap()),
        vec![json!("i1")]
    );
    put(&store, ObjectKind::Insight, json!({"id": "i2", "resourcePoolId": "p1"})).await;
    assert_eq!(
        ids(store.query(ObjectKind::Insight, &by_pool, None).await.unwrap()),
        vec![json!("i1"), json!("i2")],
        "query after creating a matching insight"
    );
    store
        .write(vec![Write::delete(ObjectKind::Insight, "i1")])
        .await
        .unwrap();
    assert_eq!(
        ids(store.query(ObjectKind::Insight, &by_pool, None).await.unwrap()),
        vec![json!("i2")],
        "query after deleting a matching insight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_after_the_ttl() {
    let dir = TempDir::new().unwrap();
    let probe = Probe::new(sqlite(&dir));
    let store = cached(probe.clone(), Duration::from_millis(200));
    put(&store, ObjectKind::Customer, json!({"id": "c1", "v": 1})).await;
    assert_eq!(get(&store, ObjectKind::Customer, "c1").await.unwrap()["v"], json!(1));

    // Another server instance writes to the shared backend: unseen until the
    // entry expires.
    put(probe.inner.as_ref(), ObjectKind::Customer, json!({"id": "c1", "v": 2})).await;
    let written = Instant::now();
    let seen = get(&store, ObjectKind::Customer, "c1").await.unwrap();
    if written.elapsed() < Duration::from_millis(150) {
        assert_eq!(seen["v"], json!(1), "a fresh entry must be served");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let gets = probe.gets();
    assert_eq!(get(&store, ObjectKind::Customer, "c1").await.unwrap()["v"], json!(2));
    assert_eq!(probe.gets(), gets + 1, "an expired entry must be read again");
}

/// A read that started before a write, but returns after the write and its
/// invalidation, must not leave its pre-write value in the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_overlapping_a_write_does_not_cache_the_old_value() {
    let dir = TempDir::new().unwrap();
    let probe = Probe::new(sqlite(&dir));
    let store = Arc::new(cached(probe.clone(), LONG_TTL));
    put(store.as_ref(), ObjectKind::Customer, json!({"id": "c1", "v": 1})).await;

    let gate = probe.hold_next_get();
    let reader = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { get(store.as_ref(), ObjectKind::Customer, "c1").await })
    };
    gate.entered.await.expect("the get reached the inner store");
    // The inner read is done (v 1); the write lands before the get returns.
    put(store.as_ref(), ObjectKind::Customer, json!({"id": "c1", "v": 2})).await;
    gate.release.send(()).unwrap();
    assert_eq!(reader.await.unwrap().unwrap()["v"], json!(1), "the overlapping get");

    assert_eq!(
        get(store.as_ref(), ObjectKind::Customer, "c1").await.unwrap()["v"],
        json!(2),
        "a get after the write must see it"
    );
}

/// A read while a write is being applied may see the old state, but must not
/// be served from the cache once the write has returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_during_a_write_is_not_served_after_it() {
    let dir = TempDir::new().unwrap();
    let probe = Probe::new(sqlite(&dir));
    let store = Arc::new(cached(probe.clone(), LONG_TTL));
    put(store.as_ref(), ObjectKind::Customer, json!({"id": "c1", "v": 1})).await;

    let (gate, _done) = probe.hold_next_write();
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { put(store.as_ref(), ObjectKind::Customer, json!({"id": "c1", "v": 2})).await })
    };
    gate.entered.await.expect("the write reached the inner store");
    assert_eq!(
        get(store.as_ref(), ObjectKind::Customer, "c1").await.unwrap()["v"],
        json!(1)
    );
    gate.release.send(()).unwrap();
    writer.await.unwrap();

    assert_eq!(
        get(store.as_ref(), ObjectKind::Customer, "c1").await.unwrap()["v"],
        json!(2),
        "a get after the write must see it"
    );
}

/// A caller that stops waiting for its write does not stop the inner write,
/// so the cache must still be invalidated when that write ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_write_still_invalidates_when_it_ends() {
    let dir = TempDir::new().unwrap();
    let probe = Probe::new(sqlite(&dir));
    let store = cached(probe.clone(), LONG_TTL);
    put(&store, ObjectKind::Customer, json!({"id": "c1", "v": 1})).await;

    let (gate, done) = probe.hold_next_write();
    {
        let write = put(&store, ObjectKind::Customer, json!({"id": "c1", "v": 2}));
        tokio::pin!(write);
        tokio::select! {
            _ = &mut write => panic!("the gated write returned"),
            entered = gate.entered => entered.expect("the write reached the inner store"),
        }
        // The write future is dropped here, with the inner write still held.
    }
    assert_eq!(get(&store, ObjectKind::Customer, "c1").await.unwrap()["v"], json!(1));
    gate.release.send(()).unwrap();
    done.await.expect("the inner write was applied");

    // The invalidation follows the inner write on its own task.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if get(&store, ObjectKind::Customer, "c1").await.unwrap()["v"] == json!(2) {
            break;
        }
        assert!(Instant::now() < deadline, "the cancelled write's value is never served");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
