//! POP outside the server (spec §5.1, §5.3.1): `pop puller` claims an
//! insight's agendas from a POP server over HTTP and runs each in-process
//! or as an executor pod; `pop executor` runs one agenda (what an executor
//! pod runs). Both only make outgoing calls, with a token scoped to the
//! insights they serve, so a center behind a firewall can run its own
//! cluster.

pub mod executor;
mod ledger;
pub mod puller;
mod run;
mod service;

use std::path::Path;

use pop_handlers_registry::Registry;

/// The registry at `path`, else the built-in one.
fn load_registry(path: Option<&Path>) -> anyhow::Result<Registry> {
    Ok(match path {
        Some(path) => Registry::load(path)?,
        None => Registry::from_json(pop_handlers_registry::DEFAULT_REGISTRY_JSON)?,
    })
}
