//! `pop`: the POP server and its command-line client tools.

mod backend;
mod bench;
mod cli;
mod client;
mod identity;
mod remote;
mod serve;

use clap::Parser;

/// The server allocates and frees many small JSON values per request; glibc's
/// malloc showed up at ~17% of a large submission's profile, mimalloc at a
/// fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let succeeded = runtime.block_on(async {
        match cli.command {
            cli::Command::Serve(options) => serve::serve(*options).await.map(|()| true),
            cli::Command::Puller(options) => remote::puller::pull(options).await.map(|()| true),
            cli::Command::Executor(options) => remote::executor::execute(options).await,
            cli::Command::Bench(options) => bench::run(options).await.map(|()| true),
            cli::Command::Submit { file, watch, client } => {
                client::submit(&client::ApiClient::new(&client)?, &file, watch).await
            }
            cli::Command::Progress { id, watch, client } => {
                client::progress(&client::ApiClient::new(&client)?, &id, watch).await
            }
            cli::Command::Job {
                command: cli::JobCommand::Run { job, log_only, client },
            } => client::run_job(&client::ApiClient::new(&client)?, &job, log_only)
                .await
                .map(|()| true),
            cli::Command::Ls { count, client } => client::ls(&client::ApiClient::new(&client)?, count)
                .await
                .map(|()| true),
        }
    })?;
    // A watched agenda that failed makes the command fail, for scripts.
    if !succeeded {
        std::process::exit(1);
    }
    Ok(())
}
