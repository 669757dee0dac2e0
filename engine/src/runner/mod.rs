//! Running projections: load components, tail the log, apply batches exactly once.
//!
//! # Behavior
//!
//! - **Order.** Each projection receives the events it subscribes to in log order:
//!   `(transaction_id, global_position)`, read only below the visibility horizon, so an event
//!   whose transaction commits late is never skipped (see [`Cursor`]).
//! - **Exactly once.** A batch's read-model writes and the projection's checkpoint commit in
//!   one transaction, guarded by the checkpoint the batch started from. After any error —
//!   a COMMIT whose reply never arrived included — the worker reads its checkpoint back and
//!   goes on from there with a fresh guest instance.
//! - **One scan.** Projections at the head of the log share one read per batch; one that is
//!   behind reads on its own until it meets them (see [`coordinator`]).
//! - **Isolation.** A projection that fails (a poison event, a trap, a refused write) stops
//!   with its error in the status; the others go on.

pub mod commit;
pub mod coordinator;
pub mod cursor;
pub mod deploy;
mod guest;
pub mod install;
pub mod loader;
mod ordering;
mod poison;
mod publish;
pub mod reader;
pub mod report;
pub mod retry;
mod rows;
pub mod status;
pub mod subscription;
pub mod worker;
mod writer;
mod written;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

pub use cursor::Cursor;
pub use status::{State, StatusBoard};

use coordinator::{Coordinator, Wakeups};
use reader::LogReader;
use worker::WorkerContext;

/// What `refract run` needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// How to reach the database.
    pub database_url: String,
    /// The event store's schema.
    pub store_schema: String,
    /// The directory of projection components.
    pub projections_dir: PathBuf,
    /// Longest wait before reading the log again without a notification.
    pub poll_interval: Duration,
    /// Whether to LISTEN for the event store's notifications (otherwise: polling only).
    pub notify: bool,
    /// Where compiled components are cached by content hash, so that a restart or a reload
    /// does not compile an unchanged component again; `None`: no cache.
    pub cache_dir: Option<PathBuf>,
    /// Where to serve `/healthz`, `/status`, `/metrics` and the status page; `None`: nowhere.
    pub http: Option<crate::http::Listener>,
}

/// Why the engine could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database could not be reached or prepared.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// The schema could not be migrated.
    #[error(transparent)]
    Migrate(#[from] crate::migrate::MigrateError),
    /// The projections directory could not be read.
    #[error(transparent)]
    Load(#[from] loader::LoadError),
    /// The WebAssembly engine could not start.
    #[error(transparent)]
    Wasm(#[from] crate::wasm::WasmError),
    /// A query failed.
    #[error("database: {0}")]
    Query(#[from] tokio_postgres::Error),
}

/// The longest wait between attempts to reconnect the log reader.
const READER_BACKOFF: Duration = Duration::from_secs(5);

/// Runs every projection in `config.projections_dir` until `shutdown` becomes `true`,
/// watching the directory for new, changed and removed components (see [`deploy`]).
/// Components that fail to load are reported and skipped; the others run.
pub async fn run(config: RunConfig, status: StatusBoard, shutdown: watch::Receiver<bool>) -> Result<(), RunError> {
    let runtime = crate::wasm::Runtime::with_cache(config.cache_dir.as_deref())?;
    let (engine, switched) = Engine::start(&config, status.clone(), shutdown.clone()).await?;
    let mut deployer = deploy::Deployer::new(runtime, config.projections_dir.clone(), engine.ctx.clone(), switched);
    deployer.start().await?;
    let mut tasks = JoinSet::new();
    tasks.spawn(deployer.run(shutdown.clone()));
    if let Some(listener) = config.http.clone() {
        tasks.spawn(crate::http::serve(listener, config.clone(), status.clone(), shutdown.clone()));
    }
    engine.read_log(&config, shutdown).await;
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Runs one worker of `loaded` in `mode` (a rebuild, or a point-in-time build) with a log
/// reader of its own, until the worker's work is done or `shutdown`. Progress shows in
/// `status` and, through the status table, in `refract status`.
pub async fn build(
    config: RunConfig,
    loaded: loader::Loaded,
    mode: worker::Mode,
    status: StatusBoard,
    shutdown: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let (stop, stopped) = watch::channel(false);
    let (engine, _switched) = Engine::start(&config, status, stopped.clone()).await?;
    let mut outer = shutdown.clone();
    let ctx = WorkerContext { shutdown: shutdown.clone(), ..engine.ctx.clone() };
    let span = tracing::info_span!("projection", projection = %loaded.name(), version = %loaded.description.version);
    let worker = tokio::spawn(tracing::Instrument::instrument(worker::run(loaded, ctx, mode), span));
    tokio::spawn(async move {
        tokio::select! {
            _ = worker => {}
            _ = outer.wait_for(|stop| *stop) => {}
        }
        let _ = stop.send(true);
    });
    engine.read_log(&config, stopped).await;
    Ok(())
}

/// The parts every worker runs on: the log reader, the wake-ups, the status publisher.
struct Engine {
    ctx: WorkerContext,
    coordinator: Coordinator,
    tasks: JoinSet<()>,
}

impl Engine {
    /// Migrates the store, connects the log reader and starts the background tasks.
    async fn start(
        config: &RunConfig,
        status: StatusBoard,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Engine, mpsc::UnboundedReceiver<worker::Switched>), RunError> {
        let mut client = crate::db::connect(&config.database_url).await?;
        crate::migrate::migrate(&mut client, &config.store_schema).await?;
        let (control, control_rx) = mpsc::unbounded_channel();
        let (switched, switched_rx) = mpsc::unbounded_channel();
        let wakeups = Wakeups {
            notified: Arc::new(Notify::new()),
            capacity: Arc::new(Notify::new()),
            poll_interval: config.poll_interval,
        };
        let ctx = WorkerContext {
            database_url: config.database_url.clone(),
            store_schema: config.store_schema.clone(),
            control,
            capacity: wakeups.capacity.clone(),
            status: status.clone(),
            shutdown: shutdown.clone(),
            switched,
        };
        let mut tasks = JoinSet::new();
        if config.notify {
            tasks.spawn(publish::listen(config.clone(), wakeups.notified.clone(), shutdown.clone()));
        }
        tasks.spawn(publish::publish_status(config.clone(), status, shutdown.clone()));
        let coordinator =
            Coordinator::new(LogReader::new(client, &config.store_schema).await?, control_rx, wakeups, shutdown);
        Ok((Engine { ctx, coordinator, tasks }, switched_rx))
    }

    /// Reads the log for the workers until `shutdown`, reconnecting when the connection is
    /// lost; then waits for the background tasks.
    async fn read_log(self, config: &RunConfig, shutdown: watch::Receiver<bool>) {
        let Engine { ctx, mut coordinator, mut tasks } = self;
        drop(ctx);
        loop {
            match coordinator.run().await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, "reading the log failed; reconnecting");
                    tokio::time::sleep(READER_BACKOFF.min(config.poll_interval.max(Duration::from_millis(200)))).await;
                    match crate::db::connect(&config.database_url).await {
                        Ok(client) => match LogReader::new(client, &config.store_schema).await {
                            Ok(reader) => coordinator.reconnect(reader),
                            Err(error) => tracing::warn!(%error, "cannot prepare the log reader"),
                        },
                        Err(error) => tracing::warn!(%error, "cannot reconnect the log reader"),
                    }
                }
            }
            if *shutdown.borrow() {
                break;
            }
        }
        tracing::info!(reads = coordinator.reads(), "log reader stopped");
        while tasks.join_next().await.is_some() {}
    }
}
