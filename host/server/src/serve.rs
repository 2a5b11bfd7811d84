//! `pop serve`: open the store, authenticate, serve the API until SIGINT or
//! SIGTERM, then finish in-flight requests and flush the store.

use std::sync::Arc;

use anyhow::Context as _;
use pop_store::{CacheOptions, CachedStore, DirBlobStore, SqliteOptions, SqliteStore, Store};
use pop_wasm::{Limits, Runtime, RuntimeConfig};
use std::time::Duration;
use tokio::net::TcpListener;

use crate::app::AppState;
use crate::auth::Authenticator;
use crate::cli::ServeOptions;
use crate::plugins::PluginHost;

/// File name of the embedded store inside the data directory.
pub const STORE_FILE: &str = "pop.db";
/// Directory of plugin binaries (content-addressed) inside the data directory.
pub const BLOB_DIR: &str = "blobs";
/// Directory of compiled plugin artifacts inside the data directory.
pub const WASM_CACHE_DIR: &str = "wasm-cache";

pub async fn serve(options: ServeOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("cannot create data directory {}", options.data_dir.display()))?;
    let store_path = options.data_dir.join(STORE_FILE);
    let store = SqliteStore::open(&store_path, SqliteOptions::default())
        .with_context(|| format!("cannot open store {}", store_path.display()))?;
    let auth = match &options.tokens {
        Some(path) => Authenticator::from_token_file(path)?,
        None => {
            let (auth, path) = Authenticator::with_admin_token(&options.data_dir)?;
            println!("pop admin token (super user) is in {}", path.display());
            auth
        }
    };
    // Customers, insights, pools and templates are read on every submission
    // and rarely change: serve them from memory (invalidated on write).
    let store: Arc<dyn Store> = Arc::new(CachedStore::new(Arc::new(store), CacheOptions::default()));
    let blobs = DirBlobStore::open(options.data_dir.join(BLOB_DIR))?;
    // Compiled plugins are kept next to the data so restarts skip Cranelift.
    let limits = Limits {
        deadline: Duration::from_millis(options.plugin_deadline_ms),
        ..Limits::default()
    };
    let config = RuntimeConfig {
        limits,
        cache_dir: Some(options.data_dir.join(WASM_CACHE_DIR)),
        ..Default::default()
    };
    let runtime = Runtime::new(config)?;
    let plugins = PluginHost::start(Arc::new(runtime), store.clone(), Arc::new(blobs))
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the plugin host: {e}"))?;
    let scheduler = crate::scheduler::spawn(
        store.clone(),
        plugins.clone(),
        std::time::Duration::from_millis(options.schedule_interval_ms),
    );
    let state = AppState::new(store, auth, plugins);
    let listener = TcpListener::bind(&options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, store = %store_path.display(), "pop serving");
    // Tests and tools read this line to find the port.
    println!("pop listening on http://{address}");
    axum::serve(listener, crate::api::router(state.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("pop stopped accepting requests; flushing the store");
    scheduler.abort();
    let _ = scheduler.await;
    drop(state);
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
