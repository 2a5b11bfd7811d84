//! The DynamoDB adapter of the `Store` port (issue 14).
//!
//! * One table per kind (`<prefix><Kind>`, spec §7.1's names), hash key
//!   `id`. An item holds the document zlib-compressed in `doc` (so a
//!   document at the port's 400 KB limit fits DynamoDB's 400 KB item), its
//!   place in insertion order `seq`, a version `ver` bumped by every write,
//!   and the text of each indexed field in `ix_<field>`.
//! * Insertion order: the GSI `in_order` (`tbl`, `seq`) for walks of a
//!   whole kind, one GSI `by_<field>` (`ix_<field>`, `seq`) per indexed
//!   field for equality filters; the port's other filters apply to the
//!   pages read. GSIs are eventually consistent on DynamoDB (moto applies
//!   them at once): a query may miss a write of the last moment, a `get`
//!   never does (consistent read).
//! * Writes read the items they touch (consistent reads), apply the port's
//!   rules to them in memory (`pop_ports::rules`, the same as every
//!   adapter), and write the outcome in one `TransactWriteItems`, each item
//!   conditional on the version read: a write that lost a race is worked
//!   out again from fresh reads, so guards (`Expect`) are exact and
//!   concurrent writers never lose each other's changes.

mod codec;
mod error;
mod schema;
mod store;

pub use error::ConnectError;
pub use schema::TableNames;
pub use store::DynamoStore;
