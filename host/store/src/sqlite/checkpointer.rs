//! WAL checkpoints off the write path.
//!
//! By default SQLite checkpoints inside the commit that pushes the WAL past
//! 1,000 pages, so one unlucky write (often a large one) also pays for
//! copying the WAL back into the database. Here a thread with its own
//! connection runs a PASSIVE checkpoint every interval: it copies what no
//! reader still needs and never blocks the writer or readers. The writer
//! keeps a much higher automatic threshold only as a backstop. When the WAL
//! passes 8 MiB anyway (a steady load never leaves a moment without a
//! reader), the thread truncates it, holding new writers back for the time
//! the readers in flight take.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{SqliteOptions, db};
use crate::Result;

/// WAL pages after which a commit checkpoints itself anyway (32 MiB at the
/// default page size), should the background thread fall behind.
pub(super) const BACKSTOP_PAGES: i64 = 8192;

/// Bytes the WAL file is cut back to after a checkpoint or a reset
/// (`journal_size_limit`): what the deleted rows' pages were, the database
/// file reuses; the WAL would otherwise stay at its largest.
pub(super) const WAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;

/// WAL pages past which the thread truncates the WAL (8 MiB at the default
/// page size), waiting for the readers in flight.
const TRUNCATE_AFTER_PAGES: i64 = 2048;

/// How often the thread checkpoints.
const INTERVAL: Duration = Duration::from_millis(250);

pub(super) struct Checkpointer {
    /// Dropping it wakes the thread and ends it.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(super) fn spawn(path: &Path, options: &SqliteOptions) -> Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(db)?;
        conn.busy_timeout(options.busy_timeout).map_err(db)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
            .map_err(db)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pop-sqlite-checkpoint".into())
            .spawn(move || run(&conn, &stopped))
            .map_err(|e| crate::StoreError::backend(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        // (busy, WAL frames, frames checkpointed); a busy result just means
        // a reader or the writer held on, and the next round continues.
        let outcome = checkpoint(conn, "PASSIVE");
        // Under a steady load some reader always holds an older snapshot,
        // so a passive checkpoint never gets to restart the WAL and the
        // file grows to the backstop. Past a bound, wait for the readers
        // in flight (new writers wait meanwhile, readers do not) and cut
        // the file back to nothing.
        let outcome = match outcome {
            Ok((_, frames, _)) if frames > TRUNCATE_AFTER_PAGES => checkpoint(conn, "TRUNCATE"),
            other => other,
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "background WAL checkpoint failed");
        }
    }
}

/// Runs a checkpoint of `mode`: (busy, WAL frames, frames checkpointed).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    })
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
