//! End-to-end tests: each starts the real `pop serve` binary on a loopback
//! port with a real SQLite file in a temporary directory, and talks to it
//! over HTTP exactly as a client would.

mod harness;

#[cfg(feature = "aws")]
mod aws;

mod chaos;
mod cli;
mod errors;
mod execution;
mod isolation;
#[cfg(feature = "jwt")]
mod jwt;
#[cfg(feature = "kubernetes")]
mod kubernetes;
mod plugins;
mod remote_puller;
mod reruns;
mod resourcepool;
mod restart;
mod scheduling;
mod templates;
mod tenancy;
mod walkthrough;
