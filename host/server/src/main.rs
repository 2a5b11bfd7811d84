//! `pop`: the POP server and its command-line client tools.

mod api;
mod app;
mod auth;
mod bench;
mod cid;
mod cli;
mod domain;
mod error;
mod plugins;
mod runner;
mod scheduler;
mod serve;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match cli.command {
            cli::Command::Serve(options) => serve::serve(options).await,
            cli::Command::Bench(options) => bench::run(options).await,
        }
    })
}
