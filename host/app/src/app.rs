//! Shared state of the server.

use std::sync::Arc;

use pop_ports::{Clock, Identity, Queue, Store};
use tokio::sync::Notify;

use crate::jobs::{Jobs, JobsConfig};
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
    /// The background jobs, to run one on request and read their counters.
    pub jobs: Arc<Jobs>,
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

    /// The state, with the background jobs on their default settings
    /// (see [`AppState::with_jobs`]).
    pub fn new(engines: Engines, auth: Arc<dyn Identity>, plugins: Arc<PluginHost>, backlog_grew: Arc<Notify>) -> Self {
        let jobs = Jobs::new(
            engines.store.clone(),
            engines.queue.clone(),
            engines.clock.clone(),
            JobsConfig::default(),
        );
        Self {
            store: engines.store,
            queue: engines.queue,
            clock: engines.clock,
            auth,
            plugins,
            backlog_grew,
            jobs: Arc::new(jobs),
        }
    }

    /// The same state with these jobs (the ones the server runs).
    pub fn with_jobs(self, jobs: Arc<Jobs>) -> Self {
        Self { jobs, ..self }
    }
}
