//! WAL checkpoints off the write path.
//!
//! By default SQLite checkpoints inside the commit that pushes the WAL past
//! 1,000 pages, so one unlucky write (often a large one) also pays for
//! copying the WAL back into the database. Here a thread with its own
//! connection runs a PASSIVE checkpoint every interval: it copies what no
//! reader still needs and never blocks the writer or readers. The writer
//! keeps a much higher automatic threshold only as a backstop.

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
        let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "background WAL checkpoint failed");
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
