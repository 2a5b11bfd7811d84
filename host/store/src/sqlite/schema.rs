//! Tables, indexes and the schema version.
//!
//! An equality filter compares text (spec §3.3), so each index is built on
//! the *text form* of a field rather than on `json_extract`, which yields
//! typed values (5 and "5" would be different keys, and `true` would be 1):
//!
//! * strings: their decoded value (`->>`);
//! * null: no key, as [`crate::field_text`] gives no text for null;
//! * numbers, booleans: their JSON text (`->`), which SQLite copies from the
//!   stored body, i.e. exactly what serde_json wrote and `field_text` yields.
//!
//! Objects and arrays get SQLite's minified JSON, which need not match
//! serde_json's; the planner therefore never drives a query with a value
//! that could be one (see `plan`).

use rusqlite::{Connection, TransactionBehavior};

use super::db;
use crate::{ObjectKind, Result, StoreError};

/// Bumped by every change of tables or indexes; `ensure` migrates up to it.
pub(super) const SCHEMA_VERSION: i64 = 1;

/// Creates whatever tables and indexes are missing, idempotently.
pub(super) fn ensure(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(db)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::backend(format!(
            "database schema version {found} is newer than this build's {SCHEMA_VERSION}"
        )));
    }
    for kind in ObjectKind::ALL {
        tx.execute_batch(&create_table_sql(kind)).map_err(db)?;
        for field in indexed_fields(kind) {
            tx.execute_batch(&create_index_sql(kind, field)).map_err(db)?;
        }
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(db)?;
    tx.commit().map_err(db)
}

/// The quoted table name of `kind`.
pub(super) fn table(kind: ObjectKind) -> String {
    format!("\"{}\"", kind.table())
}

/// The indexed fields of `kind` that can be spelled in SQL. The list is
/// static, so a field that cannot is a programming error; it merely loses
/// its index (queries on it still work by scanning) instead of breaking SQL.
pub(super) fn indexed_fields(kind: ObjectKind) -> impl Iterator<Item = &'static str> {
    kind.indexed_fields()
        .iter()
        .copied()
        .filter(|field| is_plain_field(field))
}

/// The SQL expression giving the text key of `field`; the index and the
/// queries must spell it identically for SQLite to match them.
pub(super) fn key_expr(field: &str) -> String {
    let path = format!("'$.{field}'");
    format!(
        "(CASE json_type(body, {path}) WHEN 'text' THEN body ->> {path} \
         WHEN 'null' THEN NULL ELSE body -> {path} END)"
    )
}

/// The name of the index on `field` of `kind`.
pub(super) fn index_name(kind: ObjectKind, field: &str) -> String {
    format!("ix_{}_{field}", kind.table())
}

fn create_table_sql(kind: ObjectKind) -> String {
    // `seq` is the rowid: a new row gets one more than the largest in the
    // table, so insertion order holds across deletes (a deleted last seq may
    // be handed out again, which no reader can tell apart). AUTOINCREMENT
    // would also keep that number unused, at the price of a write to
    // `sqlite_sequence` per insert: a third of a 10,000-row submission.
    // Databases created with it keep it; both behave the same here.
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\
           seq INTEGER PRIMARY KEY, \
           id TEXT UNIQUE NOT NULL, \
           body TEXT NOT NULL)",
        table(kind)
    )
}

fn create_index_sql(kind: ObjectKind, field: &str) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS \"{}\" ON {} ({})",
        index_name(kind, field),
        table(kind),
        key_expr(field)
    )
}

/// Whether `field` can be written inside `'$.<field>'` without quoting.
fn is_plain_field(field: &str) -> bool {
    !field.is_empty() && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_is_idempotent_and_sets_the_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        ensure(&mut conn).unwrap();
        ensure(&mut conn).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn ensure_refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        let err = ensure(&mut conn).unwrap_err();
        assert!(matches!(err, StoreError::Backend { message: m, .. } if m.contains("newer")));
    }

    #[test]
    fn only_plain_fields_are_indexed() {
        assert!(is_plain_field("agendaProgressId"));
        assert!(!is_plain_field("a.b"));
        assert!(!is_plain_field("a'b"));
        assert!(!is_plain_field(""));
    }
}
