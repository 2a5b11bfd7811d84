//! Shared state of the server.

use std::sync::Arc;

use pop_store::Store;

use crate::auth::Authenticator;
use crate::plugins::PluginHost;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    pub plugins: Arc<PluginHost>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, auth: Authenticator, plugins: Arc<PluginHost>) -> Self {
        Self {
            store,
            auth: Arc::new(auth),
            plugins,
        }
    }
}
