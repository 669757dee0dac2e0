//! One projection's worker: owns the projection, runs its guest, commits its batches.
//!
//! A worker holds the projection's session advisory lock on its writing connection, so one
//! engine at a time writes a projection; another engine's worker waits in `standby` and takes
//! over within [`TAKEOVER_INTERVAL`] when the owner's session ends. After any error the worker
//! trusts nothing it remembers: it drops the guest instance (whose memory may hold state of a
//! batch that never committed), reconnects, reads its checkpoint back and starts again there.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use super::commit::{CommitError, commit_batch, is_transient, read_checkpoint};
use super::coordinator::Control;
use super::cursor::Cursor;
use super::guest::Guest;
use super::install::{InstallError, Installed, install};
use super::loader::Loaded;
use super::reader::Batch;
use super::rows::DbRows;
use super::status::{LastError, State, StatusBoard};
use super::written::WrittenKeys;
use crate::readmodel::{Tables, plan, quote_ident};
use crate::wasm::WasmError;

/// How often a standby engine tries to take a projection over.
pub const TAKEOVER_INTERVAL: Duration = Duration::from_secs(2);
/// The first wait before a new session after an error.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Batches queued for a worker ahead of the one it is applying.
const QUEUE: usize = 2;

/// What every worker shares.
#[derive(Clone)]
pub struct WorkerContext {
    /// How to reach the database.
    pub database_url: String,
    /// The event store's schema.
    pub store_schema: String,
    /// The coordinator's control channel.
    pub control: mpsc::UnboundedSender<Control>,
    /// Signalled when a worker takes a batch off its queue.
    pub capacity: Arc<Notify>,
    /// Status of every projection.
    pub status: StatusBoard,
    /// Becomes `true` when the engine shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// How a session of the worker ended, when it did not end with a transient error.
enum SessionEnd {
    Shutdown,
    Standby,
    /// Failed; the session's connection keeps the projection's lock.
    Failed(tokio_postgres::Client),
}

/// An error that ends a session; the worker starts a new one after a pause.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("database: {}", crate::db::describe(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Connect(#[from] crate::db::DbError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error("the coordinator has stopped")]
    CoordinatorGone,
    #[error("a batch after {got} arrived where one after {expected} was due")]
    OutOfStep { expected: Cursor, got: Cursor },
    #[error("the connection for reading rows was lost")]
    RowsLost,
}

/// Runs the worker of `loaded` until the engine shuts down.
pub async fn run(loaded: Loaded, ctx: WorkerContext) {
    let name = loaded.name().to_owned();
    ctx.status.register(&name, &loaded.content_hash, &loaded.description.version);
    let mut backoff = INITIAL_BACKOFF;
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let started = std::time::Instant::now();
        let outcome = session(&loaded, &ctx).await;
        let _ = ctx.control.send(Control::Leave { name: name.clone() });
        let pause = match outcome {
            Ok(SessionEnd::Shutdown) => break,
            Ok(SessionEnd::Failed(_owner)) => {
                // Halted at a poison event or a refused write: stays failed (status says why)
                // until the engine restarts; other projections go on. The connection, and with
                // it the projection's lock, is kept, so that no other engine takes over and
                // fails the same way while this one reports the failure.
                let _ = shutdown.wait_for(|stop| *stop).await;
                return;
            }
            Ok(SessionEnd::Standby) => TAKEOVER_INTERVAL,
            Err(error) => {
                tracing::warn!(projection = %name, %error, "projection session ended; restarting from its checkpoint");
                ctx.status.update(&name, |s| {
                    s.last_error =
                        Some(LastError { message: format!("retrying: {error}"), position: None, event_id: None })
                });
                backoff =
                    if started.elapsed() > MAX_BACKOFF { INITIAL_BACKOFF } else { (backoff * 2).min(MAX_BACKOFF) };
                backoff
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    ctx.status.update(&name, |s| s.state = State::Stopped);
}

async fn session(loaded: &Loaded, ctx: &WorkerContext) -> Result<SessionEnd, SessionError> {
    let name = loaded.name();
    let mut client = crate::db::connect(&ctx.database_url).await?;
    let owned: bool = client
        .query_one("SELECT pg_try_advisory_lock(hashtextextended('refract.projection.' || $1, 0))", &[&name])
        .await?
        .get(0);
    if !owned {
        ctx.status.update(name, |s| s.state = State::Standby);
        return Ok(SessionEnd::Standby);
    }
    match install(&mut client, &ctx.store_schema, loaded).await {
        Ok(Installed::Unchanged) => {}
        Ok(outcome) => {
            tracing::info!(projection = %name, ?outcome, version = %loaded.description.version, "installed")
        }
        Err(InstallError::Db(e)) if is_transient(&e) => return Err(SessionError::Db(e)),
        Err(InstallError::Ddl { error, .. }) if is_transient(&error) => return Err(SessionError::Db(error)),
        Err(error) => return Ok(fail(ctx, name, error.to_string(), None, None, client)),
    }
    let tables = Tables::load(&client, name).await?;
    let mut cursor = read_checkpoint(&client, &ctx.store_schema, name).await?;
    ctx.status.update(name, |s| {
        s.checkpoint = cursor;
        s.state = State::CatchingUp;
    });

    let written = Arc::new(Mutex::new(if cursor == Cursor::START && tables_empty(&client, &tables).await? {
        WrittenKeys::empty(&tables)
    } else {
        WrittenKeys::unknown()
    }));
    let rows_client = Arc::new(crate::db::connect(&ctx.database_url).await?);
    let rows = DbRows::new(rows_client, tokio::runtime::Handle::current(), tables.clone(), written.clone());
    let rows_lost = rows.lost();
    let guest = match Guest::spawn(loaded.projector.clone(), name, loaded.settings.limits(), Box::new(rows)).await {
        Ok(guest) => guest,
        Err(error) => return Ok(fail(ctx, name, error.to_string(), None, None, client)),
    };

    let (batches, mut queue) = mpsc::channel::<Arc<Batch>>(QUEUE);
    ctx.control
        .send(Control::Join {
            name: name.to_owned(),
            subscription: loaded.subscription.clone(),
            batch_size: loaded.settings.batch_size,
            cursor,
            batches,
        })
        .map_err(|_| SessionError::CoordinatorGone)?;

    let mut shutdown = ctx.shutdown.clone();
    loop {
        let batch = tokio::select! {
            batch = queue.recv() => batch.ok_or(SessionError::CoordinatorGone)?,
            _ = shutdown.wait_for(|stop| *stop) => return Ok(SessionEnd::Shutdown),
        };
        ctx.capacity.notify_one();
        if batch.from != cursor {
            // Batches of one session follow each other; anything else means the worker and
            // the coordinator disagree: start again from the checkpoint.
            return Err(SessionError::OutOfStep { expected: cursor, got: batch.from });
        }
        let selected = select(loaded, &batch);
        let count = selected.as_ref().map_or(batch.events.len(), Vec::len);
        let started = std::time::Instant::now();
        let ops = if count == 0 {
            Vec::new()
        } else {
            match guest.apply(batch.clone(), selected).await {
                Ok(Ok(ops)) => ops,
                // The guest's error may only be a read that failed on a lost connection.
                _ if rows_lost.load(Ordering::Relaxed) => return Err(SessionError::RowsLost),
                Ok(Err(error)) => {
                    let event_id = error
                        .global_position
                        .and_then(|p| batch.events.iter().find(|e| e.global_position == p))
                        .map(|e| e.event_id.clone());
                    return Ok(fail(ctx, name, error.message, error.global_position, event_id, client));
                }
                Err(error) => {
                    let events = select(loaded, &batch).unwrap_or_else(|| batch.events.clone());
                    return Ok(match find_poison(loaded, ctx, &tables, events).await {
                        Some(poison) => {
                            fail(ctx, name, poison.message, Some(poison.position), Some(poison.event_id), client)
                        }
                        None => fail_batch(ctx, name, &batch, error, client),
                    });
                }
            }
        };
        let applied = started.elapsed();
        if !loaded.settings.allow_sql
            && let Some(index) = ops.iter().position(|op| matches!(op, crate::wasm::types::Op::Sql(_)))
        {
            let refusal = BatchFailure(format!(
                "operation {index}: raw SQL operations are not allowed for this projection: they run with the \
                 engine's database rights (set allow_sql = true in its settings file to trust it)"
            ));
            return Ok(fail_batch(ctx, name, &batch, refusal, client));
        }
        let statements = match plan(&tables, &ops) {
            Ok(statements) => statements,
            Err(error) => return Ok(fail_batch(ctx, name, &batch, error, client)),
        };
        match commit_batch(&mut client, &ctx.store_schema, name, batch.from, batch.to, &statements).await {
            Ok(()) => {}
            Err(error) if error.is_transient() => return Err(error.into()),
            Err(error) => return Ok(fail_batch(ctx, name, &batch, error, client)),
        }
        tracing::debug!(projection = %name, events = count, ops = ops.len(), statements = statements.len(), guest_ms = applied.as_millis() as u64, total_ms = started.elapsed().as_millis() as u64, "batch committed");
        written.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).record(&ops);
        cursor = batch.to;
        ctx.status.update(name, |s| {
            s.committed(cursor, count as u64);
            s.state = if batch.at_head { State::Live } else { State::CatchingUp };
        });
    }
}

/// The event at which a guest failed, found by [`find_poison`].
struct Poison {
    position: i64,
    event_id: String,
    message: String,
}

/// Replays `events` one at a time on a fresh instance, committing nothing, to find the event
/// at which the guest traps or overruns its deadline: a trap ends the whole batch, and the
/// operator needs the event. `None` when the failure does not happen again that way.
async fn find_poison(
    loaded: &Loaded,
    ctx: &WorkerContext,
    tables: &Tables,
    events: Vec<crate::wasm::types::Event>,
) -> Option<Poison> {
    let client = Arc::new(crate::db::connect(&ctx.database_url).await.ok()?);
    let written = Arc::new(Mutex::new(WrittenKeys::unknown()));
    let rows = DbRows::new(client, tokio::runtime::Handle::current(), tables.clone(), written);
    let limits = loaded.settings.limits();
    let guest = Guest::spawn(loaded.projector.clone(), loaded.name(), limits, Box::new(rows)).await.ok()?;
    for event in events {
        let (position, event_id) = (event.global_position, event.event_id.clone());
        let single = Arc::new(Batch { from: Cursor::START, to: Cursor::START, events: vec![event], at_head: false });
        let message = match guest.apply(single, None).await {
            Ok(Ok(_)) => continue,
            Ok(Err(error)) => error.message,
            Err(error) => error.to_string(),
        };
        return Some(Poison { position, event_id, message });
    }
    None
}

/// Whether every table of the projection is empty.
async fn tables_empty(client: &tokio_postgres::Client, tables: &Tables) -> Result<bool, tokio_postgres::Error> {
    for table in tables.names() {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {}.{})", quote_ident(tables.schema()), quote_ident(table));
        if client.query_one(sql.as_str(), &[]).await?.get::<_, bool>(0) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The events of `batch` that `loaded` subscribes to, or `None` when that is all of them.
fn select(loaded: &Loaded, batch: &Batch) -> Option<Vec<crate::wasm::types::Event>> {
    let sub = &loaded.subscription;
    if batch.events.iter().all(|e| sub.matches(e)) {
        return None;
    }
    Some(batch.events.iter().filter(|e| sub.matches(e)).cloned().collect())
}

/// Marks the projection failed by an error that belongs to a whole batch.
fn fail_batch(
    ctx: &WorkerContext,
    name: &str,
    batch: &Batch,
    error: impl Into<BatchFailure>,
    owner: tokio_postgres::Client,
) -> SessionEnd {
    let message =
        format!("{} (batch after position {} up to {})", error.into().0, batch.from.position, batch.to.position);
    fail(ctx, name, message, None, None, owner)
}

/// The message of a failure that ends a projection's run.
struct BatchFailure(String);

impl From<WasmError> for BatchFailure {
    fn from(e: WasmError) -> Self {
        BatchFailure(e.to_string())
    }
}
impl From<crate::readmodel::PlanError> for BatchFailure {
    fn from(e: crate::readmodel::PlanError) -> Self {
        BatchFailure(format!("invalid write operation: {e}"))
    }
}
impl From<CommitError> for BatchFailure {
    fn from(e: CommitError) -> Self {
        BatchFailure(format!("the database refused the batch's writes: {e}"))
    }
}

fn fail(
    ctx: &WorkerContext,
    name: &str,
    message: String,
    position: Option<i64>,
    event_id: Option<String>,
    owner: tokio_postgres::Client,
) -> SessionEnd {
    tracing::error!(projection = %name, position, event_id, "projection failed: {message}");
    ctx.status.update(name, |s| {
        s.state = State::Failed;
        s.last_error = Some(LastError { message, position, event_id });
    });
    SessionEnd::Failed(owner)
}
