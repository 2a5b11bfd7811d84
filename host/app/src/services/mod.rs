//! The application services that take plugin decisions (insight matching,
//! visibility): agenda submission, `run`/`rerun` and the progress summary,
//! and the resource-pool services of pullers and executors. The HTTP layer
//! only translates requests to these calls.

pub mod resourcepool;
pub mod service;
pub mod submission;
