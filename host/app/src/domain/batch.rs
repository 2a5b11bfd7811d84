//! Writes larger than one atomic store write.
//!
//! Every store applies at most [`Store::max_writes`] writes atomically
//! (DynamoDB's 100 items per transaction), so a write that touches more
//! rows — a 10,000-operation submission, a rerun of a wide agenda — is
//! split into *parts* written in an order chosen so that every cut between
//! them leaves a state that reads correctly and that the next attempt (or
//! the reclaimer) completes. A write that fits stays one atomic write.

use futures_util::{StreamExt, TryStreamExt, stream};
use pop_ports::{Document, Store, StoreError, Write};

use crate::error::AppResult;

/// Chunks of one part written at once: enough that a 10,000-operation
/// submission's 100 chunks reach SQLite's writer together and share its
/// group commit (16 at once made that submission 1.4 × slower than one
/// unbounded write; 128 brings it within 1.1 ×).
const CHUNKS_IN_FLIGHT: usize = 128;

/// One part of a large write.
#[derive(Debug)]
pub enum Part {
    /// Written whole, in one atomic write (the head: what makes the rest
    /// visible or runnable).
    Atomic(Vec<Write>),
    /// Rows that may be written in several atomic writes, in order.
    Chunked(Vec<Write>),
}

impl Part {
    fn len(&self) -> usize {
        match self {
            Part::Atomic(writes) | Part::Chunked(writes) => writes.len(),
        }
    }
}

/// Write `parts` in order and return what each write stored, per part.
/// When they fit in one atomic write together they go as one (all or
/// nothing); otherwise part by part, chunked parts in chunks of the store's
/// limit.
pub async fn write_parts(store: &dyn Store, parts: Vec<Part>) -> AppResult<Vec<Vec<Option<Document>>>> {
    write_guarded(store, None, parts).await
}

/// [`write_parts`] with `guard` (a guarded write that changes nothing, such
/// as a fencing guard) put first in every atomic write, so that each one
/// applies only while the guard holds. Its result is not returned.
pub async fn write_guarded(
    store: &dyn Store,
    guard: Option<&Write>,
    parts: Vec<Part>,
) -> AppResult<Vec<Vec<Option<Document>>>> {
    let guarded = |mut writes: Vec<Write>| {
        if let Some(guard) = guard {
            writes.insert(0, guard.clone());
        }
        writes
    };
    let skip = usize::from(guard.is_some());
    // What a guarded write stored, without the guard's own (empty) result.
    let unguarded = |mut stored: Vec<Option<Document>>| {
        if skip > 0 {
            stored.remove(0);
        }
        stored
    };
    let limit = store.max_writes().saturating_sub(skip).max(1);
    let lengths: Vec<usize> = parts.iter().map(Part::len).collect();
    if lengths.iter().sum::<usize>() <= limit {
        let all: Vec<Write> = parts
            .into_iter()
            .flat_map(|part| match part {
                Part::Atomic(writes) | Part::Chunked(writes) => writes,
            })
            .collect();
        let mut stored = if all.is_empty() {
            Vec::new()
        } else {
            unguarded(store.write(guarded(all)).await?)
        }
        .into_iter();
        return Ok(lengths.iter().map(|n| stored.by_ref().take(*n).collect()).collect());
    }
    let mut results = Vec::with_capacity(parts.len());
    for part in parts {
        let mut stored = Vec::with_capacity(part.len());
        match part {
            Part::Atomic(writes) if writes.is_empty() => {}
            Part::Atomic(writes) => stored.extend(unguarded(store.write(guarded(writes)).await?)),
            // The chunks of one part are independent of each other, so they
            // go at once: a store that group-commits (SQLite) folds them into
            // few commits, one that does not (DynamoDB) runs them side by
            // side. `buffered` keeps their results in order.
            Part::Chunked(writes) => {
                let mut writes = writes.into_iter().peekable();
                let mut chunks = Vec::new();
                while writes.peek().is_some() {
                    chunks.push(writes.by_ref().take(limit).collect::<Vec<Write>>());
                }
                let written: Vec<Vec<Option<Document>>> = stream::iter(chunks)
                    .map(|chunk| async { Ok::<_, StoreError>(unguarded(store.write(guarded(chunk)).await?)) })
                    .buffered(CHUNKS_IN_FLIGHT)
                    .try_collect()
                    .await?;
                stored.extend(written.into_iter().flatten());
            }
        }
        results.push(stored);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use pop_core::ObjectKind;
    use pop_memory::MemoryStore;
    use pop_ports::MAX_WRITES_PER_BATCH;
    use serde_json::json;

    use super::*;

    fn put(id: String) -> Write {
        Write::put(ObjectKind::Customer, json!({"id": id}).as_object().cloned().unwrap())
    }

    fn puts(prefix: &str, count: usize) -> Vec<Write> {
        (0..count).map(|n| put(format!("{prefix}{n}"))).collect()
    }

    #[tokio::test]
    async fn a_write_that_fits_is_one_atomic_write_and_results_come_back_per_part() {
        let store = MemoryStore::new();
        let parts = vec![Part::Chunked(puts("c", 3)), Part::Atomic(puts("h", 2))];
        let stored = write_parts(&store, parts).await.unwrap();
        assert_eq!(stored.iter().map(Vec::len).collect::<Vec<_>>(), [3, 2]);
        assert_eq!(stored[1][0].as_ref().unwrap()["id"], "h0");
        // All or nothing: a failing head leaves no child behind.
        let failing = vec![
            Part::Chunked(puts("x", 3)),
            Part::Atomic(vec![Write::merge(ObjectKind::Customer, "absent", Document::new())]),
        ];
        assert!(write_parts(&store, failing).await.is_err());
        assert!(store.get(ObjectKind::Customer, "x0").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_larger_write_goes_in_chunks_within_the_limit_and_the_head_last() {
        let store = MemoryStore::new();
        let children = MAX_WRITES_PER_BATCH * 2 + 5;
        let parts = vec![Part::Chunked(puts("c", children)), Part::Atomic(puts("h", 3))];
        let stored = write_parts(&store, parts).await.unwrap();
        assert_eq!(stored[0].len(), children);
        assert_eq!(stored[1].len(), 3);
        assert!(store.get(ObjectKind::Customer, "c204").await.unwrap().is_some());
        // A head that fails after the children were written leaves them
        // (invisible without it) and reports the failure.
        let parts = vec![
            Part::Chunked(puts("d", MAX_WRITES_PER_BATCH + 1)),
            Part::Atomic(vec![Write::merge(ObjectKind::Customer, "absent", Document::new())]),
        ];
        assert!(write_parts(&store, parts).await.is_err());
        assert!(store.get(ObjectKind::Customer, "d100").await.unwrap().is_some());
    }
}
