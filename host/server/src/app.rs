//! Shared state of the server.

use std::sync::Arc;

use pop_store::Store;
use tokio::sync::Notify;

use crate::auth::Authenticator;
use crate::plugins::PluginHost;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    pub plugins: Arc<PluginHost>,
    /// Wakes the scheduler loop: an agenda entered a backlog, so a queue
    /// may be topped up before the next interval.
    pub backlog_grew: Arc<Notify>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        auth: Authenticator,
        plugins: Arc<PluginHost>,
        backlog_grew: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            auth: Arc::new(auth),
            plugins,
            backlog_grew,
        }
    }
}
