//! `refract run`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use super::DbArgs;
use refract::runner::{RunConfig, StatusBoard};

/// Arguments of `refract run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
    /// Directory of projection components (`NAME.wasm`, with optional settings in `NAME.toml`).
    #[arg(long, env = "REFRACT_PROJECTIONS", default_value = "projections.d")]
    projections: PathBuf,
    /// Longest wait, in milliseconds, before reading the log again when no notification came.
    #[arg(long, env = "REFRACT_POLL_INTERVAL_MS", default_value_t = 1000)]
    poll_interval_ms: u64,
    /// Do not LISTEN for new-event notifications; rely on polling alone.
    #[arg(long, env = "REFRACT_NO_NOTIFY")]
    no_notify: bool,
}

/// Runs `refract run` until SIGINT or SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = RunConfig {
        database_url: args.db.database_url,
        store_schema: args.db.schema,
        projections_dir: args.projections,
        poll_interval: Duration::from_millis(args.poll_interval_ms.max(1)),
        notify: !args.no_notify,
    };
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping: finishing the batches under way");
        let _ = stop.send(true);
    });
    refract::runner::run(config, StatusBoard::default(), shutdown).await.context("refract run failed")
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
