//! [`CachedStore`]: a read-through cache in front of any [`Store`].
//!
//! Every agenda submission reads its Customer and queries the Insights of the
//! customer's resource pool. Those rows rarely change, and each read costs the
//! SQLite adapter two thread handoffs, so serving them from memory buys
//! throughput.
//!
//! * Only the configured kinds are cached; other kinds, `count` and queries
//!   with a [`Filter`] pass through (a filtered query is served from a
//!   cached unfiltered, unlimited result of the same filters, which is exactly
//!   what the inner store would return).
//! * Within one process a write is never followed by a stale read: each kind
//!   has a generation counter, bumped before and after every write touching
//!   it. A read remembers the generation it started under and fills the cache
//!   only under that generation; a lookup serves an entry only if its
//!   generation is still current. So a read that overlapped a write can never
//!   leave its pre-write value behind, even if it fills after the write's
//!   invalidation.
//! * Other processes sharing the backend are not seen: `ttl` bounds how
//!   stale an entry can be then.
//! * Writes pass through unchanged, guards ([`crate::Expect`]) included: a
//!   guard is checked by the inner store against the stored row, never
//!   against a cached copy, so a compare-and-set that read a stale entry
//!   fails and the caller re-reads (every write, failed or not, invalidates).

use std::panic;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use moka::sync::Cache;

use crate::{Document, Filter, ObjectKind, Query, Result, ScanCursor, ScanPage, Store, StoreError, Write};

/// What [`CachedStore`] caches and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOptions {
    /// Kinds whose `get` and unfiltered `query` results are cached.
    pub kinds: Vec<ObjectKind>,
    /// Most entries kept, shared evenly among `kinds` (each kind has its own
    /// cache so that a write can drop that kind's entries at once).
    pub max_entries: u64,
    /// How long an entry is served: the staleness bound when other server
    /// instances write to the same backend.
    pub ttl: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            kinds: vec![
                ObjectKind::Customer,
                ObjectKind::Insight,
                ObjectKind::ResourcePool,
                ObjectKind::AgendaTemplate,
            ],
            max_entries: 10_000,
            ttl: Duration::from_secs(5),
        }
    }
}

/// A [`Store`] that caches reads of some kinds of `inner`: see the module
/// documentation. Needs a Tokio runtime (writes to cached kinds run as tasks).
pub struct CachedStore {
    inner: Arc<dyn Store>,
    kinds: Arc<Kinds>,
}

impl CachedStore {
    pub fn new(inner: Arc<dyn Store>, options: CacheOptions) -> Self {
        Self {
            inner,
            kinds: Arc::new(Kinds::new(&options)),
        }
    }
}

#[async_trait]
impl Store for CachedStore {
    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Option<Document>> {
        let Some(cache) = self.kinds.of(kind) else {
            return self.inner.get(kind, id).await;
        };
        let key = Key::Get(id.to_owned());
        if let Some(docs) = cache.lookup(&key) {
            return Ok(docs.first().cloned());
        }
        let generation = cache.generation();
        let doc = self.inner.get(kind, id).await?;
        // Absence is cached too, as an empty list.
        cache.fill(key, generation, doc.iter().cloned().collect());
        Ok(doc)
    }

    async fn query(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> Result<Vec<Document>> {
        let Some(cache) = self.kinds.of(kind) else {
            return self.inner.query(kind, query, visible).await;
        };
        if let Some(visible) = visible {
            // The unlimited unfiltered result holds every match in insertion
            // order; filtering it and then limiting is what the inner store
            // does. Nothing else answers a filtered query.
            let unlimited = Key::Query(query.filters.clone(), None);
            if let Some(docs) = cache.lookup(&unlimited) {
                let limit = query.limit.unwrap_or(usize::MAX);
                return Ok(docs
                    .iter()
                    .filter(|doc| visible.admits(kind, doc))
                    .take(limit)
                    .cloned()
                    .collect());
            }
            return self.inner.query(kind, query, Some(visible)).await;
        }
        let key = Key::Query(query.filters.clone(), query.limit);
        if let Some(docs) = cache.lookup(&key) {
            return Ok(docs.to_vec());
        }
        let generation = cache.generation();
        let docs = self.inner.query(kind, query, None).await?;
        cache.fill(key, generation, docs.as_slice().into());
        Ok(docs)
    }

    async fn count(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> Result<u64> {
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

    fn document_limits(&self, kind: ObjectKind) -> crate::DocumentLimits {
        self.inner.document_limits(kind)
    }

    fn max_writes(&self) -> usize {
        self.inner.max_writes()
    }

    async fn write(&self, writes: Vec<Write>) -> Result<Vec<Option<Document>>> {
        let touched = self.kinds.touched_by(&writes);
        if touched.is_empty() {
            return self.inner.write(writes).await;
        }
        let invalidation = Invalidation::begin(Arc::clone(&self.kinds), touched);
        let inner = Arc::clone(&self.inner);
        // A task, so that the closing invalidation runs after the inner write
        // has finished even if our caller stops waiting: an inner write may
        // still commit after its future is dropped (SqliteStore's writer
        // thread does), and a read in between must not outlive it in cache.
        let task = tokio::spawn(async move {
            let _end = invalidation;
            inner.write(writes).await
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::backend(format!("cached write task failed: {e}"))),
        }
    }
}

/// The cache of each cached kind, indexed by `ObjectKind as usize`.
struct Kinds([Option<KindCache>; ObjectKind::ALL.len()]);

impl Kinds {
    fn new(options: &CacheOptions) -> Self {
        let cached = |kind: ObjectKind| options.kinds.contains(&kind);
        let count = ObjectKind::ALL.iter().filter(|k| cached(**k)).count().max(1) as u64;
        let capacity = options.max_entries.div_ceil(count);
        // moka refuses a ttl over 1000 years; a century is forever here.
        let ttl = options.ttl.min(Duration::from_secs(100 * 365 * 24 * 3600));
        let mut slots: [Option<KindCache>; ObjectKind::ALL.len()] = Default::default();
        for kind in ObjectKind::ALL.into_iter().filter(|k| cached(*k)) {
            slots[kind as usize] = Some(KindCache::new(capacity, ttl));
        }
        Self(slots)
    }

    fn of(&self, kind: ObjectKind) -> Option<&KindCache> {
        self.0[kind as usize].as_ref()
    }

    /// The cached kinds `writes` touch, each once.
    fn touched_by(&self, writes: &[Write]) -> Vec<ObjectKind> {
        let mut kinds: Vec<ObjectKind> = writes
            .iter()
            .map(|w| match w {
                Write::Put { kind, .. } | Write::Merge { kind, .. } | Write::Delete { kind, .. } => *kind,
            })
            .filter(|kind| self.of(*kind).is_some())
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    }
}

/// A cached get (the id) or unfiltered query (filters and limit).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Get(String),
    Query(Vec<(String, String)>, Option<usize>),
}

/// A cached result and the generation of its kind it was read under. A get
/// is stored as zero or one document. `Arc` because moka clones values out.
#[derive(Clone)]
struct Entry {
    generation: u64,
    docs: Arc<[Document]>,
}

struct KindCache {
    /// Bumped before and after every write touching the kind.
    generation: AtomicU64,
    entries: Cache<Key, Entry>,
}

impl KindCache {
    fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            generation: AtomicU64::new(0),
            entries: Cache::builder().max_capacity(capacity).time_to_live(ttl).build(),
        }
    }

    /// The generation to pass to [`KindCache::fill`], taken before the read.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The cached result for `key`, unless a write began since it was read.
    /// The generation is checked after fetching the entry, so a write that
    /// began meanwhile rejects it too.
    fn lookup(&self, key: &Key) -> Option<Arc<[Document]>> {
        let entry = self.entries.get(key)?;
        (entry.generation == self.generation()).then_some(entry.docs)
    }

    /// Caches `docs`, read under `generation`, unless a write began since.
    /// A write that begins between this check and the insert is still safe:
    /// the entry carries `generation`, which lookups then reject.
    fn fill(&self, key: Key, generation: u64, docs: Arc<[Document]>) {
        if self.generation() == generation {
            self.entries.insert(key, Entry { generation, docs });
        }
    }

    /// Makes every entry of the kind unservable, and drops them.
    fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate_all();
    }
}

/// Invalidates the touched kinds when a write begins and again, on drop,
/// when it has ended (also if it failed, panicked or was aborted).
///
/// The first invalidation keeps reads overlapping the write from filling
/// under the pre-write generation; the second rejects whatever they filled
/// under the in-between one, since they may have read the pre-write state.
struct Invalidation {
    kinds: Arc<Kinds>,
    touched: Vec<ObjectKind>,
}

impl Invalidation {
    fn begin(kinds: Arc<Kinds>, touched: Vec<ObjectKind>) -> Self {
        let invalidation = Self { kinds, touched };
        invalidation.invalidate();
        invalidation
    }

    fn invalidate(&self) {
        for kind in &self.touched {
            if let Some(cache) = self.kinds.of(*kind) {
                cache.invalidate();
            }
        }
    }
}

impl Drop for Invalidation {
    fn drop(&mut self) {
        self.invalidate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window an integration test cannot reach: a write begins and ends
    /// between a read's generation check and its insert. The entry then
    /// carries the old generation and must not be served.
    #[test]
    fn entries_of_an_older_generation_are_not_served() {
        let cache = KindCache::new(16, Duration::from_secs(60));
        let key = Key::Get("c1".into());
        let generation = cache.generation();
        cache.invalidate();
        cache.invalidate();
        cache.entries.insert(
            key.clone(),
            Entry {
                generation,
                docs: Arc::new([]),
            },
        );
        assert!(cache.lookup(&key).is_none());

        cache.fill(key.clone(), cache.generation(), Arc::new([]));
        assert!(cache.lookup(&key).is_some());
    }
}
