//! Pure domain of POP: the data model (POP's JSON), the `@<reference>` engine,
//! agenda validation, template expansion, insight selection, visibility rules,
//! rerun reset closure and progress roll-up.
//!
//! Invariant: this crate performs no I/O and has no async code, so it compiles
//! to `wasm32-wasip2` and the built-in plugins reuse exactly these functions.

pub mod execution;
pub mod insight;
pub mod model;
pub mod params;
pub mod reference;
pub mod rerun;
pub mod retry;
pub mod scheduling;
pub mod summary;
pub mod template;
pub mod validation;
pub mod visibility;

pub use model::*;
pub use params::ParamsMap;
