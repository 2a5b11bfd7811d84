//! POP's REST API over HTTP: the axum router ([`api::router`]), the request
//! context (authentication through the `Identity` port, correlation ids), and
//! the one place where application errors become HTTP statuses and POP's
//! `errorResponse` bodies ([`error`]). The handlers are thin: they parse HTTP
//! and call `pop-app`.

pub mod api;
pub mod cid;
pub mod error;

pub use api::router;
