//! Shared state of the server.

use std::sync::Arc;

use pop_ports::{Clock, Identity, Queue, Store};
use tokio::sync::Notify;

use crate::plugins::PluginHost;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    pub auth: Arc<dyn Identity>,
    pub plugins: Arc<PluginHost>,
    /// Wakes the scheduler loop: an agenda entered a backlog, so a queue
    /// may be topped up before the next interval.
    pub backlog_grew: Arc<Notify>,
}

/// The engines the application runs on.
#[derive(Clone)]
pub struct Engines {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
}

impl AppState {
    /// Now, on the application's clock (epoch milliseconds).
    pub fn now(&self) -> pop_core::EpochMillis {
        self.clock.now_millis()
    }

    pub fn new(engines: Engines, auth: Arc<dyn Identity>, plugins: Arc<PluginHost>, backlog_grew: Arc<Notify>) -> Self {
        Self {
            store: engines.store,
            queue: engines.queue,
            clock: engines.clock,
            auth,
            plugins,
            backlog_grew,
        }
    }
}
