//! The write side: one thread owns the read-write connection and commits
//! queued batches together (group commit).
//!
//! With `synchronous=FULL` every commit waits for the disk, so committing
//! each small batch on its own would cap throughput at the disk's sync rate.
//! The writer instead takes every batch already queued (up to a cap), runs
//! each inside its own SAVEPOINT of one transaction, commits once and then
//! answers them all. A batch whose write fails is rolled back to its
//! savepoint and gets its error; the others are unaffected.

use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::schema::table;
use super::{SqliteOptions, db, parse_body};
use crate::rules::{check_patch_id, document_id, overlay};
use crate::{Condition, Document, Expect, ObjectKind, Result, StoreError, Write};

type Reply = oneshot::Sender<Result<Vec<Option<Document>>>>;

/// One `Store::write` call waiting for the writer.
struct Job {
    writes: Vec<Write>,
    reply: Reply,
}

/// Handle to the writer thread; dropping it flushes the queue and joins.
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(super) fn spawn(conn: Connection, options: &SqliteOptions) -> Result<Self> {
        let (queue, jobs) = mpsc::channel(options.write_queue.max(1));
        let max_group = options.max_batches_per_commit.max(1);
        let thread = std::thread::Builder::new()
            .name("pop-store-writer".into())
            .spawn(move || run(conn, jobs, max_group))
            .map_err(|e| StoreError::backend(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `writes` and waits until they are durably committed or refused.
    /// A caller that stops waiting once the batch is queued does not stop
    /// it: the batch still commits or fails as a whole.
    pub(super) async fn submit(&self, writes: Vec<Write>) -> Result<Vec<Option<Document>>> {
        let stopped = || StoreError::backend("the writer thread has stopped");
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        let (reply, answer) = oneshot::channel();
        queue.send(Job { writes, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue lets the thread commit what is still queued and
        // then leave its loop; joining waits for that last commit.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the store writer thread panicked");
        }
    }
}

/// The writer thread: commit groups of queued jobs until the queue closes.
fn run(mut conn: Connection, mut jobs: mpsc::Receiver<Job>, max_group: usize) {
    while let Some(first) = jobs.blocking_recv() {
        let group = drain(first, &mut jobs, max_group);
        commit_group(&mut conn, group);
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!("closing the store's write connection failed: {e}");
    }
}

/// `first` plus whatever else is already queued, up to `max_group` jobs.
fn drain(first: Job, jobs: &mut mpsc::Receiver<Job>, max_group: usize) -> Vec<Job> {
    let mut group = vec![first];
    while group.len() < max_group {
        match jobs.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
    group
}

/// Runs every job of `group` in one transaction and answers each once the
/// outcome is final (after the commit for those that applied).
fn commit_group(conn: &mut Connection, group: Vec<Job>) {
    let size = group.len();
    let (replies, outcomes) = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => apply_group(tx, group),
        Err(e) => fail_all(group, &db(e)),
    };
    tracing::trace!(batches = size, "store group done");
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        // A caller that stopped waiting is no reason to fail the others.
        let _ = reply.send(outcome);
    }
}

type Outcomes = (Vec<Reply>, Vec<Result<Vec<Option<Document>>>>);

fn apply_group(mut tx: Transaction<'_>, group: Vec<Job>) -> Outcomes {
    let (replies, batches): (Vec<_>, Vec<_>) = group.into_iter().map(|job| (job.reply, job.writes)).unzip();
    let size = replies.len();
    let mut outcomes = Vec::with_capacity(size);
    for writes in batches {
        match in_savepoint(&mut tx, writes) {
            Ok(outcome) => outcomes.push(outcome),
            Err(fatal) => {
                // The transaction can no longer be trusted (a savepoint could
                // not be released or rolled back): dropping it rolls back
                // everything, so no batch of the group has applied.
                tracing::error!("store transaction aborted: {fatal}");
                drop(tx);
                return (replies, abort(outcomes, size, &fatal));
            }
        }
    }
    if let Err(e) = tx.commit() {
        let e = db(e);
        tracing::error!("store commit failed: {e}");
        return (replies, abort(outcomes, size, &e));
    }
    (replies, outcomes)
}

/// Runs one job's writes in a savepoint. The outer `Err` is fatal for the
/// whole group; the inner result is the job's own outcome.
fn in_savepoint(tx: &mut Transaction<'_>, writes: Vec<Write>) -> Result<Result<Vec<Option<Document>>>> {
    let savepoint = tx.savepoint().map_err(db)?;
    match apply_batch(&savepoint, writes) {
        Ok(results) => {
            savepoint.commit().map_err(db)?;
            Ok(Ok(results))
        }
        Err(refused) => {
            // Rolls back to the savepoint, then releases it.
            savepoint.finish().map_err(db)?;
            Ok(Err(refused))
        }
    }
}

/// The outcomes of a group that did not commit, padded to `size` jobs:
/// refusals stay as they are, every other job gets `error` (nothing of any
/// job was applied either way).
fn abort(
    outcomes: Vec<Result<Vec<Option<Document>>>>,
    size: usize,
    error: &StoreError,
) -> Vec<Result<Vec<Option<Document>>>> {
    let mut aborted: Vec<_> = outcomes
        .into_iter()
        .map(|outcome| outcome.and_then(|_| Err(copy(error))))
        .collect();
    aborted.resize_with(size, || Err(copy(error)));
    aborted
}

fn fail_all(group: Vec<Job>, error: &StoreError) -> Outcomes {
    let size = group.len();
    (
        group.into_iter().map(|job| job.reply).collect(),
        abort(Vec::new(), size, error),
    )
}

/// `StoreError` is not `Clone` (it is the port's public type); a backend
/// failure shared by a group is copied as its message.
fn copy(error: &StoreError) -> StoreError {
    if error.is_transient() {
        StoreError::Unavailable {
            message: error.to_string(),
            source: None,
        }
    } else {
        StoreError::backend(error.to_string())
    }
}

/// Applies `writes` in order (a later write sees the earlier ones).
/// Rows per multi-row INSERT: a run of plain puts of one kind (a large
/// submission's operation progress rows) costs one statement per chunk
/// instead of one per row.
const PUT_CHUNK: usize = 64;

fn apply_batch(conn: &Connection, writes: Vec<Write>) -> Result<Vec<Option<Document>>> {
    let mut outcomes = Vec::with_capacity(writes.len());
    let mut writes = writes.into_iter().peekable();
    while let Some(write) = writes.next() {
        let Write::Put {
            kind,
            doc,
            condition: Condition::None,
        } = write
        else {
            outcomes.push(apply(conn, write)?);
            continue;
        };
        let mut run = vec![doc];
        while run.len() < PUT_CHUNK
            && matches!(
                writes.peek(),
                Some(Write::Put { kind: next, condition: Condition::None, .. }) if *next == kind
            )
        {
            if let Some(Write::Put { doc, .. }) = writes.next() {
                run.push(doc);
            }
        }
        put_many(conn, kind, &run)?;
        outcomes.extend(run.into_iter().map(Some));
    }
    Ok(outcomes)
}

/// Upsert `docs` (each like a [`Condition::None`] put, in order) with one
/// statement; rows keep their place when they exist, as in [`put`].
fn put_many(conn: &Connection, kind: ObjectKind, docs: &[Document]) -> Result<()> {
    let mut values = Vec::with_capacity(docs.len() * 2);
    for doc in docs {
        values.push(document_id(doc)?.to_owned());
        values.push(serialize(kind, doc)?);
    }
    let rows = vec!["(?, ?)"; docs.len()].join(", ");
    let sql = format!(
        "INSERT INTO {} (id, body) VALUES {rows} ON CONFLICT(id) DO UPDATE SET body = excluded.body",
        table(kind)
    );
    conn.prepare_cached(&sql)
        .map_err(db)?
        .execute(rusqlite::params_from_iter(values.iter()))
        .map_err(db)?;
    Ok(())
}

fn apply(conn: &Connection, write: Write) -> Result<Option<Document>> {
    match write {
        Write::Put { kind, doc, condition } => put(conn, kind, doc, condition).map(Some),
        Write::Merge {
            kind,
            id,
            patch,
            expect,
        } => merge(conn, kind, &id, patch, &expect).map(Some),
        Write::Delete { kind, id, expect } => delete(conn, kind, &id, &expect),
    }
}

fn put(conn: &Connection, kind: ObjectKind, doc: Document, condition: Condition) -> Result<Document> {
    let id = document_id(&doc)?.to_owned();
    let body = serialize(kind, &doc)?;
    let t = table(kind);
    // Upserts keep the row, hence its seq and place in insertion order;
    // INSERT OR REPLACE would delete it and append a new one.
    let sql = match condition {
        Condition::None => {
            format!("INSERT INTO {t} (id, body) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET body = excluded.body")
        }
        Condition::MustNotExist => {
            format!("INSERT INTO {t} (id, body) VALUES (?1, ?2) ON CONFLICT(id) DO NOTHING")
        }
        Condition::MustExist => format!("UPDATE {t} SET body = ?2 WHERE id = ?1"),
    };
    let changed = conn
        .prepare_cached(&sql)
        .map_err(db)?
        .execute((&id, &body))
        .map_err(db)?;
    match (changed, condition) {
        (0, Condition::MustNotExist) => Err(StoreError::AlreadyExists { kind, id }),
        (0, Condition::MustExist) => Err(StoreError::NotFound { kind, id }),
        _ => Ok(doc),
    }
}

/// The stored document, if any. Inside the writer's transaction, so a
/// guard checked against it cannot be overtaken before the write.
fn stored(conn: &Connection, kind: ObjectKind, id: &str) -> Result<Option<Document>> {
    let select = format!("SELECT body FROM {} WHERE id = ?1", table(kind));
    let body: Option<String> = conn
        .prepare_cached(&select)
        .map_err(db)?
        .query_row([id], |row| row.get(0))
        .optional()
        .map_err(db)?;
    body.map(|body| parse_body(kind, id, &body)).transpose()
}

/// `ConditionFailed` unless `doc` holds `expect`.
fn check(kind: ObjectKind, id: &str, doc: &Document, expect: &Expect) -> Result<()> {
    if expect.held_by(doc) {
        Ok(())
    } else {
        Err(StoreError::ConditionFailed {
            kind,
            id: id.to_owned(),
        })
    }
}

fn merge(conn: &Connection, kind: ObjectKind, id: &str, patch: Document, expect: &Expect) -> Result<Document> {
    check_patch_id(kind, id, &patch)?;
    let mut doc = stored(conn, kind, id)?.ok_or_else(|| StoreError::NotFound {
        kind,
        id: id.to_owned(),
    })?;
    check(kind, id, &doc, expect)?;
    overlay(&mut doc, patch);
    let update = format!("UPDATE {} SET body = ?2 WHERE id = ?1", table(kind));
    conn.prepare_cached(&update)
        .map_err(db)?
        .execute((id, serialize(kind, &doc)?))
        .map_err(db)?;
    Ok(doc)
}

fn delete(conn: &Connection, kind: ObjectKind, id: &str, expect: &Expect) -> Result<Option<Document>> {
    if !expect.is_empty() {
        let doc = stored(conn, kind, id)?.ok_or_else(|| StoreError::NotFound {
            kind,
            id: id.to_owned(),
        })?;
        check(kind, id, &doc, expect)?;
    }
    let sql = format!("DELETE FROM {} WHERE id = ?1 RETURNING body", table(kind));
    let body: Option<String> = conn
        .prepare_cached(&sql)
        .map_err(db)?
        .query_row([id], |row| row.get(0))
        .optional()
        .map_err(db)?;
    body.map(|body| parse_body(kind, id, &body)).transpose()
}

/// The stored text of `doc`, refused when it is beyond the store's limits.
fn serialize(kind: ObjectKind, doc: &Document) -> Result<String> {
    super::LIMITS.check_depth(kind, doc)?;
    let text = serde_json::to_string(doc).map_err(|e| StoreError::InvalidDocument(e.to_string()))?;
    super::LIMITS.check_size(kind, doc, text.len())?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::sqlite::schema;

    fn job(writes: Vec<Write>) -> (Job, oneshot::Receiver<Result<Vec<Option<Document>>>>) {
        let (reply, answer) = oneshot::channel();
        (Job { writes, reply }, answer)
    }

    fn create(id: &str) -> Write {
        let Value::Object(doc) = json!({"id": id}) else {
            unreachable!()
        };
        Write::create(ObjectKind::Agenda, doc)
    }

    fn stored(conn: &Connection, id: &str) -> bool {
        conn.query_row("SELECT COUNT(*) FROM Agenda WHERE id = ?1", [id], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
            == 1
    }

    /// One group, one transaction: the failing batch in the middle is rolled
    /// back alone and gets its own error; the others commit.
    #[test]
    fn a_failing_batch_does_not_spoil_its_group() {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::ensure(&mut conn).unwrap();
        let (first, first_answer) = job(vec![create("a")]);
        let (failing, failing_answer) = job(vec![create("b"), create("a")]);
        let (last, last_answer) = job(vec![create("c")]);
        commit_group(&mut conn, vec![first, failing, last]);

        assert!(first_answer.blocking_recv().unwrap().is_ok());
        let refused = failing_answer.blocking_recv().unwrap();
        assert!(matches!(refused, Err(StoreError::AlreadyExists { id, .. }) if id == "a"));
        assert!(last_answer.blocking_recv().unwrap().is_ok());
        assert!(stored(&conn, "a") && stored(&conn, "c"));
        assert!(!stored(&conn, "b"), "the refused batch's first write was committed");
        assert!(conn.is_autocommit(), "the group's transaction was left open");
    }

    /// Runs of plain puts go in multi-row statements; they must behave
    /// exactly like one put after another: later wins, existing rows keep
    /// their place, other writes in between keep their order.
    #[test]
    fn runs_of_puts_behave_like_single_puts() {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::ensure(&mut conn).unwrap();
        let put = |id: String, n: usize| {
            let Value::Object(doc) = json!({"id": id, "n": n}) else {
                unreachable!()
            };
            Write::put(ObjectKind::Agenda, doc)
        };
        apply_batch(&conn, vec![create("existing")]).unwrap();
        let mut writes: Vec<Write> = (0..150).map(|i| put(format!("p{i}"), i)).collect();
        writes.push(put("p3".into(), 1000));
        writes.insert(70, put("existing".into(), 7));
        writes.insert(100, create("created-between"));
        let outcomes = apply_batch(&conn, writes).unwrap();
        assert_eq!(outcomes.len(), 153);
        assert!(outcomes.iter().all(Option::is_some));
        let body = |id: &str| -> Value {
            let text: String = conn
                .query_row("SELECT body FROM Agenda WHERE id = ?1", [id], |r| r.get(0))
                .unwrap();
            serde_json::from_str(&text).unwrap()
        };
        assert_eq!(body("p3")["n"], json!(1000), "the later put wins");
        assert_eq!(body("existing")["n"], json!(7));
        let order: Vec<String> = conn
            .prepare("SELECT id FROM Agenda ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(order.len(), 152);
        assert_eq!(order[0], "existing", "an upserted row keeps its place");
        let at = |id: &str| order.iter().position(|o| o == id).unwrap();
        assert!(at("p68") < at("created-between") && at("created-between") < at("p120"));
        assert!(at("p149") == 151);
    }

    #[test]
    fn a_group_that_cannot_begin_fails_every_job() {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::ensure(&mut conn).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        let (only, answer) = job(vec![create("a")]);
        commit_group(&mut conn, vec![only]);
        assert!(matches!(
            answer.blocking_recv().unwrap(),
            Err(StoreError::Backend { .. })
        ));
    }

    #[test]
    fn abort_keeps_refusals_and_pads() {
        let error = StoreError::backend("disk");
        let outcomes = vec![Ok(vec![None]), Err(StoreError::InvalidDocument("x".into()))];
        let aborted = abort(outcomes, 3, &error);
        assert!(matches!(&aborted[0], Err(StoreError::Backend { .. })));
        assert!(matches!(&aborted[1], Err(StoreError::InvalidDocument(_))));
        assert!(matches!(&aborted[2], Err(StoreError::Backend { .. })));
    }
}
