//! Which SQL serves a [`Query`].
//!
//! At most one filter is handed to SQLite: the `id` if given, else the first
//! (in `indexed_fields` order, which lists the more selective fields first)
//! filter on an indexed field. Every filter, that one included, is then
//! checked in Rust while stepping rows, so `field_text` stays the single
//! definition of a match.

use super::schema::{indexed_fields, key_expr, table};
use crate::{ObjectKind, Query};

/// The part of a query SQLite evaluates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Driver {
    /// No usable filter: step the whole table.
    All,
    /// `id = value`, through the unique index on `id`.
    Id(String),
    /// `key(field) = value`, through the expression index on `field`.
    Indexed { field: &'static str, value: String },
}

impl Driver {
    /// Picks the filter SQLite serves, see the module documentation.
    pub(super) fn choose(kind: ObjectKind, query: &Query) -> Self {
        if let Some((_, value)) = query.filters.iter().find(|(field, _)| field == "id") {
            return Driver::Id(value.clone());
        }
        for field in indexed_fields(kind) {
            let usable = query
                .filters
                .iter()
                .find(|(name, value)| name == field && can_drive(value));
            if let Some((_, value)) = usable {
                return Driver::Indexed {
                    field,
                    value: value.clone(),
                };
            }
        }
        Driver::All
    }

    /// Whether SQLite alone decides every filter of `query`, so that rows
    /// need no check in Rust (duplicates of the driving filter are fine).
    pub(super) fn decides(&self, query: &Query) -> bool {
        query.filters.iter().all(|(field, value)| match self {
            Driver::All => false,
            Driver::Id(id) => field == "id" && value == id,
            Driver::Indexed { field: f, value: v } => field == f && value == v,
        })
    }

    /// `SELECT id, body` of the matching rows in insertion order.
    pub(super) fn select_sql(&self, kind: ObjectKind) -> String {
        format!(
            "SELECT id, body FROM {}{} ORDER BY seq",
            table(kind),
            self.where_clause()
        )
    }

    /// `SELECT seq, id, body` of at most `?2` matching rows after seq `?1`,
    /// in insertion order (a bounded page of a scan).
    pub(super) fn page_sql(&self, kind: ObjectKind) -> String {
        let condition = match self {
            Driver::All => String::new(),
            Driver::Id(_) => " AND id = ?3".to_owned(),
            Driver::Indexed { field, .. } => format!(" AND {} = ?3", key_expr(field)),
        };
        format!(
            "SELECT seq, id, body FROM {} WHERE seq > ?1{condition} ORDER BY seq LIMIT ?2",
            table(kind)
        )
    }

    /// `SELECT COUNT(*)` of the matching rows.
    pub(super) fn count_sql(&self, kind: ObjectKind) -> String {
        format!("SELECT COUNT(*) FROM {}{}", table(kind), self.where_clause())
    }

    /// The value bound to `?1`, if the SQL has a parameter.
    pub(super) fn param(&self) -> Option<&str> {
        match self {
            Driver::All => None,
            Driver::Id(value) | Driver::Indexed { value, .. } => Some(value),
        }
    }

    fn where_clause(&self) -> String {
        match self {
            Driver::All => String::new(),
            Driver::Id(_) => " WHERE id = ?1".to_owned(),
            Driver::Indexed { field, .. } => format!(" WHERE {} = ?1", key_expr(field)),
        }
    }
}

/// Whether an index lookup finds every document whose field has `value` as
/// its text. An object or array value starts with `{` or `[`, and its key in
/// the index is SQLite's JSON text, not serde_json's; such values are
/// matched by scanning instead.
fn can_drive(value: &str) -> bool {
    !value.starts_with(['{', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_wins_over_indexed_fields() {
        let query = Query::by("linkId", "l").and("id", "x");
        assert_eq!(Driver::choose(ObjectKind::Agenda, &query), Driver::Id("x".into()));
    }

    #[test]
    fn indexed_field_order_decides() {
        let query = Query::by("title", "t").and("linkId", "l").and("cid", "c");
        let driver = Driver::choose(ObjectKind::Agenda, &query);
        assert_eq!(
            driver,
            Driver::Indexed {
                field: "linkId",
                value: "l".into()
            }
        );
        assert!(!driver.decides(&query));
        assert!(driver.decides(&Query::by("linkId", "l").and("linkId", "l")));
    }

    #[test]
    fn unindexed_or_json_values_scan() {
        assert_eq!(Driver::choose(ObjectKind::Agenda, &Query::by("cid", "c")), Driver::All);
        assert_eq!(
            Driver::choose(ObjectKind::Agenda, &Query::by("title", "{\"a\":1}")),
            Driver::All
        );
        assert!(Driver::All.decides(&Query::all()));
        assert!(!Driver::All.decides(&Query::by("cid", "c")));
    }
}
