//! A fake Kubernetes cluster for POP's tests, in the manner of envtest and
//! kwok: an API server that speaks the real wire format for what POP uses
//! (core/v1 pods with `status` and `log`, configmaps, namespaces; create,
//! get, list with `labelSelector`/`fieldSelector` and pages, watch with
//! `resourceVersion`, bookmarks and `410 Expired`, merge and strategic
//! merge patches, `Status` failures, server-filled metadata) and enforces
//! the rules a real one does (names, label values, the annotation budget,
//! immutable pod specs, the `Always` restart default), plus a process
//! kubelet that runs each pod's container as a local program.
//!
//! POP's launcher, puller, executor and reaper talk to it only through
//! `kube::Client` over HTTP on loopback, exactly as to a cluster. It is
//! test infrastructure: nothing POP ships depends on it.

mod api;
mod cluster;
pub mod kubelet;
mod patch;
mod selectors;
mod state;
mod status;
mod store;
mod time;
mod validation;

pub use cluster::{FakeCluster, write_kubeconfig};
pub use state::{Audit, Cluster, ClusterOptions, Creation, Logs};
pub use store::{HISTORY, Resource, Store};
