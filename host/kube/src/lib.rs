//! The Kubernetes adapter of the `Launcher` port (issue 13): each
//! operation whose registry entry is a `podConfig` runs in a pod of its
//! own, found again by name after a restart, followed through a watch, its
//! progress and result read from the annotations its handler writes
//! (`pop.report.progress`, `pop.report.payload`; `pop-pod-report` writes
//! them for handlers in any language), and reaped once finished. Only this
//! crate depends on `kube` and `k8s-openapi`.

pub mod executors;
mod launcher;
mod logs;
pub mod pod;

pub use launcher::{ConnectError, PodLauncher, PodLauncherConfig};
