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
use super::install::{
    InstallError, LOCK_KEY, Login, Purpose, Target, finish_snapshot, prepare, prepare_snapshot, retire, role_of, sweep,
    switch,
};
use super::loader::Loaded;
use super::poison::{self, DeadLetters, Verdict};
use super::reader::Batch;
use super::rows::DbRows;
use super::status::{LastError, State, StatusBoard};
use super::written::WrittenKeys;
use crate::readmodel::{Tables, plan, quote_ident};
use crate::wasm::WasmError;
use crate::wasm::types::Event;

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
    /// Becomes `true` when the worker is to stop (the engine shuts down, or its component
    /// was removed or replaced).
    pub shutdown: watch::Receiver<bool>,
    /// Where a worker reports that its version became the active one.
    pub switched: mpsc::UnboundedSender<Switched>,
}

/// A worker swapped its version in: the views of projection `name` point at `schema` now.
#[derive(Debug, Clone)]
pub struct Switched {
    /// The projection.
    pub name: String,
    /// The version now active.
    pub schema: String,
}

/// What a worker builds and how long it runs.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `refract run`: the component's version, built beside the active one and swapped in
    /// first when it is new; then tailing the log until stopped.
    Serve,
    /// `refract rebuild`: a new version built from zero and swapped in; then the worker ends.
    Rebuild,
    /// `refract rebuild --until --into`: the read model of the events up to a point, built
    /// into a schema of its own; the worker ends at the head of the log.
    PointInTime {
        /// The schema to build into.
        into: String,
        /// The last event to include.
        until: Until,
    },
}

/// Where a point-in-time read model ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Events at or below this global position.
    Position(i64),
    /// Events recorded at or before this time, in microseconds since the Unix epoch.
    Micros(i64),
}

impl Until {
    /// Whether `event` belongs to the read model.
    pub fn admits(&self, event: &Event) -> bool {
        match *self {
            Until::Position(p) => event.global_position <= p,
            Until::Micros(t) => event.timestamp <= t,
        }
    }
}

/// How a session of the worker ended, when it did not end with a transient error.
enum SessionEnd {
    Shutdown,
    Standby,
    /// Its version became the active one: the next session serves it under the stable name.
    Switched,
    /// Its work is done (a rebuild swapped in, a point-in-time build at the head).
    Done,
    /// Another version replaced the one it served.
    Superseded(String),
    /// Failed with this error; the session's connection keeps the projection's lock.
    Failed(tokio_postgres::Client, LastError),
    /// Committed a batch without its poison events (see [`poison`]): the next session goes on
    /// with a fresh instance.
    Skipped,
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
    #[error(transparent)]
    Replay(#[from] poison::ReplayError),
    #[error("the checkpoint of {0} is gone (the version was replaced or dropped)")]
    NoCheckpoint(String),
}

/// Runs the worker of `loaded` in `mode` until it is stopped or its work is done.
pub async fn run(loaded: Loaded, ctx: WorkerContext, mode: Mode) {
    let name = loaded.name().to_owned();
    let mut backoff = INITIAL_BACKOFF;
    let mut shutdown = ctx.shutdown.clone();
    let mut was_active = false;
    let mut key = name.clone();
    let mut schema = String::new();
    loop {
        let started = std::time::Instant::now();
        let outcome = session(&loaded, &ctx, &mode, &mut was_active, (&mut key, &mut schema)).await;
        let outcome = match outcome {
            Ok(SessionEnd::Failed(owner, error)) => {
                let gone =
                    !schema.is_empty() && matches!(read_checkpoint(&owner, &ctx.store_schema, &schema).await, Ok(None));
                if gone {
                    // The version was replaced or dropped under this worker (its tables went
                    // with it): not a failure of the projection; the next session finds out.
                    Err(SessionError::NoCheckpoint(schema.clone()))
                } else {
                    tracing::error!(projection = %name, position = error.position, event_id = error.event_id, "projection failed: {}", error.message);
                    ctx.status.update(&key, |s| {
                        s.state = State::Failed;
                        s.last_error = Some(error.clone());
                    });
                    Ok(SessionEnd::Failed(owner, error))
                }
            }
            other => other,
        };
        let _ = ctx.control.send(Control::Leave { name: schema.clone() });
        let pause = match outcome {
            Ok(SessionEnd::Shutdown) => break,
            Ok(SessionEnd::Done) => return,
            Ok(SessionEnd::Switched) => Duration::ZERO,
            Ok(SessionEnd::Superseded(active)) => {
                tracing::info!(projection = %name, %active, "superseded by a newer version; stopping");
                ctx.status.update(&key, |s| s.state = State::Stopped);
                return;
            }
            // A standalone build reports its failure and ends.
            Ok(SessionEnd::Failed(..)) if !matches!(mode, Mode::Serve) => return,
            Ok(SessionEnd::Failed(owner, _)) => {
                // Halted at a poison event or a refused write: stays failed (status says why)
                // until `refract retry` or a restart; other projections go on. The connection,
                // and with it the projection's lock, is kept, so that no other engine takes
                // over and fails the same way while this one reports the failure.
                if !super::retry::requested(&ctx.database_url, &[&name, &key], &mut shutdown).await {
                    return;
                }
                tracing::info!(projection = %name, "retry requested: resuming from the checkpoint");
                drop(owner);
                Duration::ZERO
            }
            Ok(SessionEnd::Skipped) => Duration::ZERO,
            Ok(SessionEnd::Standby) => TAKEOVER_INTERVAL,
            Err(error) => {
                tracing::warn!(projection = %name, %error, "projection session ended; restarting from its checkpoint");
                ctx.status.update(&key, |s| {
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
    // The entry may belong to the version that replaced this one by now.
    ctx.status.update(&key, |s| {
        if s.content_hash == loaded.content_hash {
            s.state = State::Stopped
        }
    });
}

/// Finds (or creates) the version `mode` works on and the key it is known by: the stable name
/// for the active version, the version's schema for one being built.
async fn target(
    client: &mut tokio_postgres::Client,
    loaded: &Loaded,
    ctx: &WorkerContext,
    mode: &Mode,
    was_active: bool,
) -> Result<Target, InstallError> {
    match mode {
        Mode::Serve => prepare(client, &ctx.store_schema, loaded, Purpose::Serve { was_active }).await,
        Mode::Rebuild => prepare(client, &ctx.store_schema, loaded, Purpose::Rebuild).await,
        Mode::PointInTime { into, .. } => prepare_snapshot(client, &ctx.store_schema, loaded, into).await,
    }
}

async fn session(
    loaded: &Loaded,
    ctx: &WorkerContext,
    mode: &Mode,
    was_active: &mut bool,
    (key, current_schema): (&mut String, &mut String),
) -> Result<SessionEnd, SessionError> {
    let name = loaded.name();
    let mut client = crate::db::connect(&ctx.database_url).await?;
    let target = match target(&mut client, loaded, ctx, mode, *was_active).await {
        Ok(target) => target,
        Err(InstallError::Superseded { active, .. }) => return Ok(SessionEnd::Superseded(active)),
        Err(InstallError::Db(e)) if is_transient(&e) => return Err(SessionError::Db(e)),
        Err(InstallError::Ddl { error, .. }) if is_transient(&error) => return Err(SessionError::Db(error)),
        Err(error) => {
            ctx.status.register(key, &loaded.content_hash, &loaded.description.version);
            return Ok(fail(error.to_string(), None, None, client));
        }
    };
    let schema = target.schema.as_str();
    current_schema.clone_from(&target.schema);
    let previous = std::mem::replace(key, if target.active { name.to_owned() } else { schema.to_owned() });
    if previous != *key {
        ctx.status.remove(&previous);
    }
    let key = key.as_str();
    ctx.status.register(key, &loaded.content_hash, &loaded.description.version);
    // A standby of the active version counts as serving it: when another engine swaps a new
    // version in, this one is superseded rather than building its older component again.
    *was_active = target.active;
    let owned: bool = client.query_one(&format!("SELECT pg_try_advisory_lock({LOCK_KEY})"), &[&schema]).await?.get(0);
    if !owned {
        ctx.status.update(key, |s| s.state = State::Standby);
        return Ok(SessionEnd::Standby);
    }
    tracing::info!(projection = %name, version = %loaded.description.version, %schema, active = target.active, "running");
    // Batches are written through the version's own role, when it has one: its rights end
    // at its schema whatever SQL the projection sends. `client` keeps the lock.
    let login = Login { url: ctx.database_url.clone(), role: role_of(&client, &ctx.store_schema, schema).await? };
    let mut writer = login.connect().await?;
    let tables = Tables::load(&client, schema).await?;
    let mut cursor = read_checkpoint(&client, &ctx.store_schema, schema)
        .await?
        .ok_or_else(|| SessionError::NoCheckpoint(schema.to_owned()))?;
    ctx.status.update(key, |s| {
        s.checkpoint = cursor;
        s.state = State::CatchingUp;
    });

    let written = Arc::new(Mutex::new(if cursor == Cursor::START && tables_empty(&writer, &tables).await? {
        WrittenKeys::empty(&tables)
    } else {
        WrittenKeys::unknown()
    }));
    let rows_client = Arc::new(login.connect().await?);
    let rows = DbRows::new(rows_client, tokio::runtime::Handle::current(), tables.clone(), written.clone());
    let rows_lost = rows.lost();
    let guest = match Guest::spawn(loaded.projector.clone(), name, loaded.settings.limits(), Box::new(rows)).await {
        Ok(guest) => guest,
        Err(error) => return Ok(fail(error.to_string(), None, None, client)),
    };
    let until = match mode {
        Mode::PointInTime { until, .. } => Some(*until),
        Mode::Serve | Mode::Rebuild => None,
    };

    let (batches, mut queue) = mpsc::channel::<Arc<Batch>>(QUEUE);
    ctx.control
        .send(Control::Join {
            name: schema.to_owned(),
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
        let selected = select(loaded, until, &batch);
        let count = selected.as_ref().map_or(batch.events.len(), Vec::len);
        let started = std::time::Instant::now();
        let (ops, dead) = if count == 0 {
            (Vec::new(), DeadLetters::default())
        } else {
            match guest.apply(batch.clone(), selected).await {
                Ok(Ok(ops)) => (ops, DeadLetters::default()),
                // The guest's error may only be a read that failed on a lost connection.
                _ if rows_lost.load(Ordering::Relaxed) => return Err(SessionError::RowsLost),
                failed => {
                    let events = select(loaded, until, &batch).unwrap_or_else(|| batch.events.clone());
                    match poison::judge(loaded, &login, &tables, events, failed).await? {
                        Verdict::Apply { ops, dead } => (ops, dead),
                        Verdict::Stop(p) => {
                            return Ok(fail(p.message, Some(p.position), Some(p.event_id), client));
                        }
                        Verdict::StopBatch(error) => {
                            return Ok(fail_batch(&batch, BatchFailure(error), client));
                        }
                    }
                }
            }
        };
        let applied = started.elapsed();
        if !loaded.settings.allow_sql
            && let Some(index) = ops.iter().position(|op| matches!(op, crate::wasm::types::Op::Sql(_)))
        {
            let refusal = BatchFailure(format!(
                "operation {index}: raw SQL operations are not allowed for this projection (set allow_sql = true \
                 in its settings file to allow them; they run as the projection's own role{})",
                if login.role.is_some() { "" } else { ", or with the engine's rights where roles cannot be created" }
            ));
            return Ok(fail_batch(&batch, refusal, client));
        }
        let statements = match plan(&tables, &ops) {
            Ok(statements) => dead.with(statements, &ctx.store_schema, schema, name),
            Err(error) => return Ok(fail_batch(&batch, error, client)),
        };
        let timeout = loaded.settings.limits().call_deadline;
        match commit_batch(&mut writer, &ctx.store_schema, schema, (batch.from, batch.to), &statements, timeout).await {
            Ok(()) => {}
            Err(error) if error.is_transient() => return Err(error.into()),
            Err(error) => return Ok(fail_batch(&batch, error, client)),
        }
        tracing::debug!(projection = %name, %schema, events = count, ops = ops.len(), statements = statements.len(), guest_ms = applied.as_millis() as u64, total_ms = started.elapsed().as_millis() as u64, "batch committed");
        written.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).record(&ops);
        cursor = batch.to;
        ctx.status.update(key, |s| {
            s.committed(cursor, count as u64, applied, started.elapsed());
            s.state = if batch.at_head { State::Live } else { State::CatchingUp };
        });
        if batch.at_head
            && (!target.active || matches!(mode, Mode::Rebuild))
            && let Some(end) = finish(&mut client, loaded, ctx, mode, &target).await?
        {
            return Ok(end);
        }
        if !dead.is_empty() {
            return Ok(SessionEnd::Skipped);
        }
    }
}

/// A version built beside the active one has reached the head: swap it in (and drop the
/// version it replaces, unless the settings keep it), or end a point-in-time build, or a
/// rebuild that had nothing to replace. `None`: not finished yet.
async fn finish(
    client: &mut tokio_postgres::Client,
    loaded: &Loaded,
    ctx: &WorkerContext,
    mode: &Mode,
    target: &Target,
) -> Result<Option<SessionEnd>, SessionError> {
    if let Mode::PointInTime { until, .. } = mode {
        // The head is the visibility horizon's: an event up to `until` that committed but is
        // not below the horizon yet (an older transaction is still open) is still to come.
        if !until_visible(client, &ctx.store_schema, *until).await? {
            return Ok(None);
        }
        ctx.status.remove(&target.schema);
        finish_snapshot(client, &ctx.store_schema, &target.schema).await?;
        return Ok(Some(SessionEnd::Done));
    }
    if target.active {
        // A rebuild of a projection that had no version: its first one is active already.
        return Ok(Some(SessionEnd::Done));
    }
    let replaced = switch(client, &ctx.store_schema, loaded, target).await?;
    tracing::info!(projection = %target.name, schema = %target.schema, ?replaced, version = %loaded.description.version, "swapped in");
    let _ = ctx.switched.send(Switched { name: target.name.clone(), schema: target.schema.clone() });
    if let Some(old) = replaced.filter(|_| !loaded.settings.keep_replaced) {
        // Waits for a commit of the old version still under way; that worker then finds its
        // checkpoint gone and stops.
        retire(&*client, &ctx.store_schema, &old).await?;
    }
    let abandoned = sweep(client, &ctx.store_schema, target).await?;
    if !abandoned.is_empty() {
        tracing::info!(projection = %target.name, ?abandoned, "dropped abandoned versions");
    }
    Ok(Some(match mode {
        Mode::Rebuild => SessionEnd::Done,
        _ => SessionEnd::Switched,
    }))
}

/// Whether every committed event up to `until` lies below the visibility horizon.
async fn until_visible(
    client: &tokio_postgres::Client,
    store_schema: &str,
    until: Until,
) -> Result<bool, tokio_postgres::Error> {
    let events = format!("{}.events", quote_ident(store_schema));
    let (bound, parameter): (&str, Box<dyn tokio_postgres::types::ToSql + Sync + Send>) = match until {
        Until::Position(position) => ("global_position <= $1", Box::new(position)),
        Until::Micros(micros) => (
            "timestamp <= $1",
            Box::new(
                chrono::DateTime::from_timestamp_micros(micros).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
            ),
        ),
    };
    let sql = format!(
        "SELECT coalesce(max(transaction_id::text::bigint), 0) < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
           FROM {events} WHERE {bound}"
    );
    Ok(client.query_one(&sql, &[parameter.as_ref()]).await?.get(0))
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

/// The events of `batch` that `loaded` subscribes to (up to `until`), or `None` when that is
/// all of them.
fn select(loaded: &Loaded, until: Option<Until>, batch: &Batch) -> Option<Vec<Event>> {
    let wanted = |e: &Event| loaded.subscription.matches(e) && until.is_none_or(|u| u.admits(e));
    if batch.events.iter().all(wanted) {
        return None;
    }
    Some(batch.events.iter().filter(|e| wanted(e)).cloned().collect())
}

/// Marks the projection failed by an error that belongs to a whole batch.
fn fail_batch(batch: &Batch, error: impl Into<BatchFailure>, owner: tokio_postgres::Client) -> SessionEnd {
    let message =
        format!("{} (batch after position {} up to {})", error.into().0, batch.from.position, batch.to.position);
    fail(message, None, None, owner)
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

/// A session ending in a failure of the projection (reported by [`run`], unless the version
/// turns out to have been replaced under the worker).
fn fail(message: String, position: Option<i64>, event_id: Option<String>, owner: tokio_postgres::Client) -> SessionEnd {
    SessionEnd::Failed(owner, LastError { message, position, event_id })
}
