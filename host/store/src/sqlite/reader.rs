//! The read side: a pool of read-only connections and the read operations.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params_from_iter};
use tokio::sync::Semaphore;

use super::plan::Driver;
use super::schema::table;
use super::{SqliteOptions, db, parse_body, row_document};
use crate::{Document, Filter, ObjectKind, Query, Result, ScanCursor, ScanPage, StoreError, field_text};

/// Prepared statements kept per connection: a few per table.
const STATEMENT_CACHE: usize = 64;

/// Read-only connections, at most `read_connections` in use at once.
pub(super) struct ReadPool {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
}

struct Shared {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    /// Opens all connections now, so that a bad path fails `open` rather
    /// than the first read.
    pub(super) fn open(path: PathBuf, options: &SqliteOptions) -> Result<Self> {
        let size = options.read_connections.max(1);
        let shared = Shared {
            path,
            busy_timeout: options.busy_timeout,
            idle: Mutex::new(Vec::new()),
        };
        for _ in 0..size {
            let conn = shared.connect()?;
            shared.give_back(conn);
        }
        Ok(Self {
            shared: Arc::new(shared),
            permits: Arc::new(Semaphore::new(size)),
        })
    }

    /// Runs `f` on a pooled connection on tokio's blocking threads.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::backend("read pool closed"))?;
        let shared = Arc::clone(&self.shared);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            shared.with_connection(f)
        });
        task.await
            .map_err(|e| StoreError::backend(format!("read task failed: {e}")))?
    }

    /// Runs `f` on a pooled connection on the calling thread (diagnostics).
    pub(super) fn run_blocking<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.shared.with_connection(f)
    }
}

impl Shared {
    fn connect(&self) -> Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(db)?;
        conn.busy_timeout(self.busy_timeout).map_err(db)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    /// Lends an idle connection to `f`. A connection is only returned when
    /// `f` does not panic; a lost one is replaced by opening a new one.
    fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = match self.take() {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let out = f(&conn);
        self.give_back(conn);
        out
    }

    fn take(&self) -> Option<Connection> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }

    fn give_back(&self, conn: Connection) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
    }
}

/// The document `id` of `kind`.
pub(super) fn get(conn: &Connection, kind: ObjectKind, id: &str) -> Result<Option<Document>> {
    let sql = format!("SELECT body FROM {} WHERE id = ?1", table(kind));
    let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
    let body: Option<String> = stmt.query_row([id], |row| row.get(0)).optional().map_err(db)?;
    body.map(|body| parse_body(kind, id, &body)).transpose()
}

/// Up to `query.limit` matching, visible documents in insertion order.
pub(super) fn query(
    conn: &Connection,
    kind: ObjectKind,
    query: &Query,
    visible: Option<&Filter>,
) -> Result<Vec<Document>> {
    let limit = query.limit.unwrap_or(usize::MAX);
    let mut found = Vec::new();
    if limit == 0 {
        return Ok(found);
    }
    scan(conn, kind, query, visible, |doc| {
        found.push(doc);
        if found.len() >= limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok(found)
}

/// One bounded page of a scan: the rows matching `query`'s equality
/// filters after `from` (a `seq`), at most `examine` of them, those passing
/// `filter` returned; the cursor is the last `seq` looked at.
pub(super) fn scan_page(
    conn: &Connection,
    kind: ObjectKind,
    query: &Query,
    filter: Option<&Filter>,
    from: Option<&ScanCursor>,
    examine: usize,
) -> Result<ScanPage> {
    let after: i64 = match from {
        None => 0,
        Some(ScanCursor(text)) => text
            .parse()
            .map_err(|_| StoreError::InvalidDocument(format!("not a cursor of this store: {text:?}")))?,
    };
    let driver = Driver::choose(kind, query);
    let mut stmt = conn.prepare_cached(&driver.page_sql(kind)).map_err(db)?;
    let examine_sql = i64::try_from(examine.max(1)).unwrap_or(i64::MAX);
    let mut rows = match driver.param() {
        Some(value) => stmt.query(rusqlite::params![after, examine_sql, value]),
        None => stmt.query(rusqlite::params![after, examine_sql]),
    }
    .map_err(db)?;
    let mut page = ScanPage::default();
    let mut last = after;
    let mut examined = 0usize;
    while let Some(row) = rows.next().map_err(db)? {
        examined += 1;
        last = row.get(0).map_err(db)?;
        let id: String = row.get(1).map_err(db)?;
        let body: String = row.get(2).map_err(db)?;
        let doc = parse_body(kind, &id, &body)?;
        if matches_filters(&doc, &query.filters) && filter.is_none_or(|keep| keep.admits(kind, &doc)) {
            page.docs.push(doc);
        }
    }
    if examined >= examine.max(1) {
        page.next = Some(ScanCursor(last.to_string()));
    }
    Ok(page)
}

/// How many documents match `query` (ignoring its limit) and `visible`.
pub(super) fn count(conn: &Connection, kind: ObjectKind, query: &Query, visible: Option<&Filter>) -> Result<u64> {
    let driver = Driver::choose(kind, query);
    if visible.is_none() && driver.decides(query) {
        return count_in_sql(conn, kind, &driver);
    }
    let mut n = 0u64;
    scan(conn, kind, query, visible, |_| {
        n += 1;
        ControlFlow::Continue(())
    })?;
    Ok(n)
}

/// The `EXPLAIN QUERY PLAN` details of the statement `query` steps through.
pub(super) fn explain(conn: &Connection, kind: ObjectKind, query: &Query) -> Result<Vec<String>> {
    let driver = Driver::choose(kind, query);
    let sql = format!("EXPLAIN QUERY PLAN {}", driver.select_sql(kind));
    let mut stmt = conn.prepare(&sql).map_err(db)?;
    let rows = stmt
        .query_map(params_from_iter(driver.param()), |row| row.get::<_, String>(3))
        .map_err(db)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db)
}

fn count_in_sql(conn: &Connection, kind: ObjectKind, driver: &Driver) -> Result<u64> {
    let mut stmt = conn.prepare_cached(&driver.count_sql(kind)).map_err(db)?;
    let n: i64 = stmt
        .query_row(params_from_iter(driver.param()), |row| row.get(0))
        .map_err(db)?;
    u64::try_from(n).map_err(|_| StoreError::backend(format!("negative count {n}")))
}

/// Steps the rows SQLite selects, in insertion order, handing each document
/// that matches every filter and `visible` to `on_match` until it breaks.
/// Rows are decoded one at a time, so a limited query never holds more than
/// its result in memory.
fn scan(
    conn: &Connection,
    kind: ObjectKind,
    query: &Query,
    visible: Option<&Filter>,
    mut on_match: impl FnMut(Document) -> ControlFlow<()>,
) -> Result<()> {
    let driver = Driver::choose(kind, query);
    let mut stmt = conn.prepare_cached(&driver.select_sql(kind)).map_err(db)?;
    let mut rows = stmt.query(params_from_iter(driver.param())).map_err(db)?;
    while let Some(row) = rows.next().map_err(db)? {
        let doc = row_document(kind, row)?;
        if !matches_filters(&doc, &query.filters) || !visible.is_none_or(|keep| keep.admits(kind, &doc)) {
            continue;
        }
        if on_match(doc).is_break() {
            break;
        }
    }
    Ok(())
}

/// Every filter holds, comparing text forms (spec §3.3).
fn matches_filters(doc: &Document, filters: &[(String, String)]) -> bool {
    filters
        .iter()
        .all(|(field, value)| field_text(doc, field).as_deref() == Some(value.as_str()))
}
