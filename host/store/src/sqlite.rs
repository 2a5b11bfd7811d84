//! [`SqliteStore`]: the embedded [`Store`], one SQLite file in WAL mode.
//!
//! * One table per [`ObjectKind`] (`seq`, `id`, `body`), where `seq` keeps
//!   insertion order and `body` is the JSON document. Every indexed field of
//!   the kind gets an expression index on its text form (see [`schema`]).
//! * Writes go to one writer thread that owns the only read-write connection
//!   and commits whatever batches are queued in one durable transaction
//!   (group commit, see [`writer`]). `synchronous=FULL` makes each commit
//!   survive power loss, and grouping keeps that affordable.
//! * Reads run on a small pool of read-only connections through
//!   `spawn_blocking`; WAL lets them proceed while the writer commits.
//! * A background thread checkpoints the WAL (see [`checkpointer`]), so no
//!   commit pays for it.

mod checkpointer;
mod plan;
mod reader;
mod schema;
mod writer;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};

use crate::{
    Document, DocumentLimits, Filter, ObjectKind, Query, Result, ScanCursor, ScanPage, Store, StoreError, Write,
};
use checkpointer::Checkpointer;
use reader::ReadPool;
use writer::Writer;

/// Tuning of a [`SqliteStore`]. `SqliteOptions::default()` suits a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Read-only connections, i.e. how many reads run at the same time.
    pub read_connections: usize,
    /// How long a connection waits for a lock held by another one (another
    /// process on the same file, or a checkpoint) before failing.
    pub busy_timeout: Duration,
    /// Most write batches committed by one transaction.
    pub max_batches_per_commit: usize,
    /// Write batches that may wait for the writer before `write` waits too.
    pub write_queue: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            read_connections: 4,
            busy_timeout: Duration::from_secs(5),
            max_batches_per_commit: 256,
            write_queue: 4096,
        }
    }
}

/// The embedded [`Store`]: see the module documentation.
pub struct SqliteStore {
    // Field order matters for Drop: idle readers close before the writer
    // thread is joined, so the writer's connection is the last one and
    // checkpoints the WAL when it closes. The checkpointer is only held
    // (its thread runs on its own), and stops first.
    _checkpointer: Checkpointer,
    reads: ReadPool,
    writer: Writer,
}

impl SqliteStore {
    /// Open (creating if needed) the database file at `path` and its schema.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut conn = open_writer_connection(&path, &options)?;
        schema::ensure(&mut conn)?;
        let checkpointer = Checkpointer::spawn(&path, &options)?;
        let reads = ReadPool::open(path, &options)?;
        let writer = Writer::spawn(conn, &options)?;
        Ok(Self {
            _checkpointer: checkpointer,
            reads,
            writer,
        })
    }

    /// The `EXPLAIN QUERY PLAN` lines of the statement `query` runs, so that
    /// tests can check that indexed filters use their index.
    #[doc(hidden)]
    pub fn explain_query_plan(&self, kind: ObjectKind, query: &Query) -> Result<Vec<String>> {
        let query = query.clone();
        self.reads.run_blocking(move |conn| reader::explain(conn, kind, &query))
    }

    /// SQLite's own check of the file (`PRAGMA integrity_check`): the
    /// problems it finds, none when the file is sound.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        self.reads.run_blocking(|conn| {
            let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(db)?;
            let rows = stmt.query_map([], |row| row.get::<_, String>(0)).map_err(db)?;
            let lines = rows.collect::<Result<Vec<_>, _>>().map_err(db)?;
            Ok(lines.into_iter().filter(|line| line != "ok").collect())
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Option<Document>> {
        let id = id.to_owned();
        self.reads.run(move |conn| reader::get(conn, kind, &id)).await
    }

    async fn query(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> Result<Vec<Document>> {
        let query = query.clone();
        self.reads
            .run(move |conn| reader::query(conn, kind, &query, visible.as_ref()))
            .await
    }

    async fn count(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> Result<u64> {
        let query = query.clone();
        self.reads
            .run(move |conn| reader::count(conn, kind, &query, visible.as_ref()))
            .await
    }

    async fn scan(
        &self,
        kind: ObjectKind,
        query: &Query,
        filter: Option<Filter>,
        from: Option<&ScanCursor>,
        examine: usize,
    ) -> Result<ScanPage> {
        let (query, from) = (query.clone(), from.cloned());
        self.reads
            .run(move |conn| reader::scan_page(conn, kind, &query, filter.as_ref(), from.as_ref(), examine))
            .await
    }

    async fn write(&self, writes: Vec<Write>) -> Result<Vec<Option<Document>>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        pop_ports::check_write_count(writes.len(), self.max_writes())?;
        self.writer.submit(writes).await
    }

    fn document_limits(&self, _kind: ObjectKind) -> DocumentLimits {
        LIMITS
    }
}

/// What this store keeps; the writer checks every document it stores.
const LIMITS: DocumentLimits = DocumentLimits::ITEM;

/// The one read-write connection, set up for durable WAL operation.
fn open_writer_connection(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(db)?;
    conn.busy_timeout(options.busy_timeout).map_err(db)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(db)?;
    // Readers on their own connections need WAL to see one file; an
    // in-memory or otherwise WAL-less database would silently split them.
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::backend(format!(
            "{}: journal_mode is {mode}, WAL is required",
            path.display()
        )));
    }
    // FULL syncs the WAL on every commit: an acknowledged write survives
    // power loss, not just a crash of this process.
    conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;
    // Checkpoints run in the background (see `checkpointer`); commits only
    // checkpoint themselves past this backstop.
    conn.pragma_update(None, "wal_autocheckpoint", checkpointer::BACKSTOP_PAGES)
        .map_err(db)?;
    // The WAL file keeps its high-water mark unless told otherwise; under a
    // steady load that is the backstop's 32 MiB on top of the data. Cut it
    // back whenever it is reset, so the files hold the data and little more.
    conn.pragma_update(None, "journal_size_limit", checkpointer::WAL_SIZE_LIMIT)
        .map_err(db)?;
    Ok(conn)
}

/// Maps a SQLite failure to the port's error.
fn db(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    match error.sqlite_error_code() {
        // Another connection holds the file: the same write may pass later.
        Some(DatabaseBusy | DatabaseLocked) => StoreError::unavailable("the database is busy", error),
        _ => StoreError::backend_caused_by("SQLite failed", error),
    }
}

/// Parses a stored body; a row that is not a JSON object is a backend fault,
/// never a panic. Without serde_json's depth limit (on a stack that grows
/// as needed): whatever was stored, by this version or an older one with
/// other limits, must stay readable and deletable.
fn parse_body(kind: ObjectKind, id: &str, body: &str) -> Result<Document> {
    use serde::Deserialize;
    let mut parser = serde_json::Deserializer::from_str(body);
    parser.disable_recursion_limit();
    let parsed = Document::deserialize(serde_stacker::Deserializer::new(&mut parser)).and_then(|doc| {
        parser.end()?;
        Ok(doc)
    });
    parsed.map_err(|e| StoreError::backend(format!("{kind} {id}: stored body is not a JSON object: {e}")))
}

/// Reads `(id, body)` from a row selected as `SELECT id, body ...` and
/// parses the body.
fn row_document(kind: ObjectKind, row: &rusqlite::Row<'_>) -> Result<Document> {
    let id = row
        .get_ref(0)
        .map_err(db)?
        .as_str()
        .map_err(|e| StoreError::backend(e.to_string()))?;
    let body = row
        .get_ref(1)
        .map_err(db)?
        .as_str()
        .map_err(|e| StoreError::backend(e.to_string()))?;
    parse_body(kind, id, body)
}
