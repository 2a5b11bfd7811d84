//! The command-line client: `pop submit`, `pop progress`, `pop ls`, `pop job run` talk to a
//! running server over HTTP, like any other client, with a bearer token from
//! `--token` / `POP_TOKEN` or, by default, the admin token that `pop serve`
//! generated in the data directory.

mod http;
mod job;
mod ls;
mod progress;
mod render;
mod submit;

pub use http::ApiClient;
pub use job::run as run_job;
pub use ls::run as ls;
pub use progress::run as progress;
pub use submit::run as submit;
