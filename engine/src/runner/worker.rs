//! One projection's worker: owns the projection, runs its guest, commits its batches.
//!
//! A worker holds the projection's session advisory lock on its writing connection, so one
//! engine at a time writes a projection; another engine's worker waits in `standby` and takes
//! over within [`TAKEOVER_INTERVAL`] when the owner's session ends. After any error the worker
//! trusts nothing it remembers: it drops the guest instance (whose memory may hold state of a
//! batch that never committed), reconnects, reads its checkpoint back and starts again there.
//!
//! Within a session the stages overlap: the coordinator reads ahead, the guest applies a batch
//! while the worker plans the writes of the one before it and the [`writer`](super::writer)
//! commits the one before that, in order. What must follow a
//! commit waits for it: a `get-row` that queries (see [`DbRows`]), judging a failed batch (see
//! [`poison`]), the swap-in at the head, and the end of the session, which lets every batch
//! handed to the writer commit (or fail) first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use super::commit::{CommitError, Committer, is_transient, read_checkpoint};
use super::coordinator::Control;
use super::cursor::Cursor;
use super::guest::{ApplyResult, Guest};
use super::install::{
    InstallError, LOCK_KEY, Login, Purpose, Target, finish_snapshot, prepare, prepare_snapshot, retire, role_of, sweep,
    switch,
};
use super::loader::Loaded;
use super::poison::{self, DeadLetters, Verdict};
use super::reader::Batch;
use super::rows::DbRows;
use super::status::{LastError, State, StatusBoard};
use super::writer::{Announced, Destination, Job, Stopped, WriteError, Writer};
use super::written::WrittenKeys;
use crate::readmodel::{Tables, plan_with_new_rows, quote_ident};
use crate::wasm::WasmError;
use crate::wasm::types::{Event, Op};

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
    Stopped(#[from] Stopped),
    #[error(
        "the projection reached its deadline while it waited for earlier batches to commit; trying again \
         from the checkpoint"
    )]
    Interrupted,
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
            return Ok(fail(error.to_string(), client));
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
    let writer_client = login.connect().await?;
    let tables = Tables::load(&client, schema).await?;
    let cursor = read_checkpoint(&client, &ctx.store_schema, schema)
        .await?
        .ok_or_else(|| SessionError::NoCheckpoint(schema.to_owned()))?;
    ctx.status.update(key, |s| {
        s.checkpoint = cursor;
        s.state = State::CatchingUp;
    });

    let written = Arc::new(Mutex::new(if cursor == Cursor::START && tables_empty(&writer_client, &tables).await? {
        WrittenKeys::empty(&tables)
    } else {
        WrittenKeys::existing(&tables)
    }));
    let mut writer = Writer::start(
        Committer::new(writer_client),
        Destination {
            store_schema: ctx.store_schema.clone(),
            schema: schema.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
            status: ctx.status.clone(),
            statement_timeout: loaded.settings.limits().call_deadline,
        },
    );
    let rows_client = Arc::new(login.connect().await?);
    let rows = DbRows::new(rows_client, tokio::runtime::Handle::current(), tables.clone(), written.clone())
        .fenced(writer.fence());
    let rows_lost = rows.lost();
    let guest = match Guest::spawn(loaded.projector.clone(), name, loaded.settings.limits(), Box::new(rows)).await {
        Ok(guest) => guest,
        Err(error) => return Ok(fail(error.to_string(), client)),
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

    let stages =
        Stages { loaded, ctx, mode, target: &target, tables: &tables, login: &login, until, guest, rows_lost, written };
    let halt = stages.run(&mut client, &mut writer, &mut queue, cursor).await;
    // Whatever stopped the pipeline, the batches handed to the writer commit first, or the
    // first that cannot is what ends the session.
    match writer.close().await {
        Err(WriteError { error, .. }) if error.is_transient() => Err(error.into()),
        Err(WriteError { range, error }) => Ok(SessionEnd::Failed(client, batch_error(range, error))),
        Ok(()) => match halt? {
            Halt::End(end) => Ok(end),
            Halt::Failed(error) => Ok(SessionEnd::Failed(client, error)),
        },
    }
}

/// How a session's pipeline stopped. The session ends so once the batches handed to the writer
/// have committed.
enum Halt {
    End(SessionEnd),
    /// The projection failed with this error; the session's connection keeps its lock.
    Failed(LastError),
}

/// What the guest made of a batch.
struct Applied {
    /// The operations to commit.
    ops: Vec<Op>,
    /// The events left out of them (see [`poison`]).
    dead: DeadLetters,
    /// The events the guest received.
    events: usize,
}

/// What a session's pipeline works with: receive a batch, apply it in the guest, plan its
/// writes and hand them to the writer, which commits them while the guest applies the next.
/// A batch's writes are planned while the guest already applies the batch after it.
struct Stages<'s> {
    loaded: &'s Loaded,
    ctx: &'s WorkerContext,
    mode: &'s Mode,
    target: &'s Target,
    tables: &'s Tables,
    login: &'s Login,
    until: Option<Until>,
    guest: Guest,
    /// Set when a read of the guest failed for a reason that is not the projection's.
    rows_lost: Arc<AtomicBool>,
    written: Arc<Mutex<WrittenKeys>>,
}

/// A batch the guest has applied, announced to the writer, whose writes are not planned yet.
struct Unplanned {
    batch: Arc<Batch>,
    applied: Applied,
    /// Per operation: its row did not exist before the batch.
    new: Vec<bool>,
    announced: Announced,
    started: std::time::Instant,
    took: Duration,
}

/// A guest call under way.
struct Call<F> {
    /// The call, or `None` when the projection receives none of the batch's events.
    reply: Option<F>,
    /// Events the guest receives.
    events: usize,
    /// Whether a batch before it had not committed when it started.
    behind: bool,
}

impl Stages<'_> {
    /// Runs batches from `queue`, the first starting at `cursor`, through the guest to
    /// `writer`, until something ends the session.
    async fn run(
        &self,
        client: &mut tokio_postgres::Client,
        writer: &mut Writer,
        queue: &mut mpsc::Receiver<Arc<Batch>>,
        mut cursor: Cursor,
    ) -> Result<Halt, SessionError> {
        let mut shutdown = self.ctx.shutdown.clone();
        // The batch applied last, planned and handed over once the guest has the next one, or
        // before waiting when there is none yet.
        let mut unplanned: Option<Unplanned> = None;
        loop {
            // While catching up the queue is seldom empty: the stop is looked for here too.
            if *shutdown.borrow() {
                return Ok(Halt::End(SessionEnd::Shutdown));
            }
            let batch = match queue.try_recv() {
                Ok(batch) => batch,
                Err(mpsc::error::TryRecvError::Disconnected) => return Err(SessionError::CoordinatorGone),
                Err(mpsc::error::TryRecvError::Empty) => {
                    if let Some(halt) = self.hand(client, writer, unplanned.take()).await? {
                        return Ok(halt);
                    }
                    tokio::select! {
                        batch = queue.recv() => batch.ok_or(SessionError::CoordinatorGone)?,
                        _ = shutdown.wait_for(|stop| *stop) => return Ok(Halt::End(SessionEnd::Shutdown)),
                        stopped = writer.stopped() => return Err(stopped.into()),
                    }
                }
            };
            self.ctx.capacity.notify_one();
            if batch.from != cursor {
                // Batches of one session follow each other; anything else means the worker and
                // the coordinator disagree: start again from the checkpoint.
                return Err(SessionError::OutOfStep { expected: cursor, got: batch.from });
            }
            let started = std::time::Instant::now();
            let call = self.call(writer, &batch);
            if let Some(halt) = self.hand(client, writer, unplanned.take()).await? {
                return Ok(halt);
            }
            let applied = match self.conclude(writer, &batch, call).await? {
                Ok(applied) => applied,
                Err(error) => return Ok(Halt::Failed(error)),
            };
            let took = started.elapsed();
            // Rows never written before are inserted without looking for them. Recorded before
            // the batch commits: the guest may read while it does (see `WrittenKeys::record`).
            let new = self.written.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).record(&applied.ops);
            // Before the guest applies the next batch: its reads wait for this one.
            let announced = writer.announce();
            if !self.loaded.settings.allow_sql
                && let Some(index) = applied.ops.iter().position(|op| matches!(op, Op::Sql(_)))
            {
                let refusal = BatchFailure(format!(
                    "operation {index}: raw SQL operations are not allowed for this projection (set allow_sql = true \
                     in its settings file to allow them; they run as the projection's own role{})",
                    if self.login.role.is_some() {
                        ""
                    } else {
                        ", or with the engine's rights where roles cannot be created"
                    }
                ));
                return Ok(Halt::Failed(batch_error((batch.from, batch.to), refusal)));
            }
            cursor = batch.to;
            let skipped = !applied.dead.is_empty();
            unplanned = Some(Unplanned { batch, applied, new, announced, started, took });
            if skipped {
                // The session's instance failed on this batch: the next session goes on with
                // a fresh one, once this batch has committed.
                return Ok(self
                    .hand(client, writer, unplanned.take())
                    .await?
                    .unwrap_or(Halt::End(SessionEnd::Skipped)));
            }
        }
    }

    /// Plans the writes of `unplanned` (if any) and hands them to `writer`; at the head, ends
    /// a build that is finished. `Some`: the session ends so.
    async fn hand(
        &self,
        client: &mut tokio_postgres::Client,
        writer: &mut Writer,
        unplanned: Option<Unplanned>,
    ) -> Result<Option<Halt>, SessionError> {
        let Some(Unplanned { batch, applied: Applied { ops, dead, events }, new, announced, started, took }) =
            unplanned
        else {
            return Ok(None);
        };
        let range = (batch.from, batch.to);
        let statements = match plan_with_new_rows(self.tables, &ops, &new) {
            Ok(statements) => dead.with(statements, &self.ctx.store_schema, &self.target.schema, self.loaded.name()),
            Err(error) => return Ok(Some(Halt::Failed(batch_error(range, error)))),
        };
        let job = Job { range, at_head: batch.at_head, statements, events, ops: ops.len(), started, applied: took };
        writer.hand(announced, job).await?;
        if batch.at_head && (!self.target.active || matches!(self.mode, Mode::Rebuild)) {
            writer.settled().await?;
            if let Some(end) = finish(client, self.loaded, self.ctx, self.mode, self.target).await? {
                return Ok(Some(Halt::End(end)));
            }
        }
        Ok(None)
    }

    /// Starts applying `batch` in the guest.
    fn call(&self, writer: &Writer, batch: &Arc<Batch>) -> Call<impl Future<Output = ApplyResult> + use<>> {
        let selected = select(self.loaded, self.until, batch);
        let events = selected.as_ref().map_or(batch.events.len(), Vec::len);
        let behind = writer.pending();
        let reply = (events > 0).then(|| self.guest.apply(batch.clone(), selected));
        Call { reply, events, behind }
    }

    /// What the guest made of `batch` in `call`, or how the projection failed on it. Stops
    /// early when the writer stops.
    async fn conclude(
        &self,
        writer: &mut Writer,
        batch: &Arc<Batch>,
        call: Call<impl Future<Output = ApplyResult>>,
    ) -> Result<Result<Applied, LastError>, SessionError> {
        let Call { reply, events, behind } = call;
        let applied = |ops, dead| Applied { ops, dead, events };
        let Some(reply) = reply else {
            return Ok(Ok(applied(Vec::new(), DeadLetters::default())));
        };
        let failed = tokio::select! {
            result = reply => match result {
                // A guest may go on after a read failed: its writes could rest on a row it never saw.
                Ok(Ok(_)) if self.rows_lost.load(Ordering::Relaxed) => return Err(SessionError::RowsLost),
                Ok(Ok(ops)) => return Ok(Ok(applied(ops, DeadLetters::default()))),
                failed => failed,
            },
            stopped = writer.stopped() => return Err(stopped.into()),
        };
        // The failure is judged on the state every batch before this one built.
        writer.settled().await?;
        // The guest's error may only be a read that failed on a lost connection.
        if self.rows_lost.load(Ordering::Relaxed) {
            return Err(SessionError::RowsLost);
        }
        // Its deadline counts the time its reads waited for the batches before it to commit.
        if behind && matches!(failed, Err(WasmError::Deadline(_))) {
            return Err(SessionError::Interrupted);
        }
        let events = select(self.loaded, self.until, batch).unwrap_or_else(|| batch.events.clone());
        Ok(match poison::judge(self.loaded, self.login, self.tables, events, failed).await? {
            Verdict::Apply { ops, dead } => Ok(applied(ops, dead)),
            Verdict::Stop(p) => {
                Err(LastError { message: p.message, position: Some(p.position), event_id: Some(p.event_id) })
            }
            Verdict::StopBatch(error) => Err(batch_error((batch.from, batch.to), BatchFailure(error))),
        })
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

/// The error of a projection failed by an error that belongs to a whole batch, the one
/// from `from` to `to`.
fn batch_error((from, to): (Cursor, Cursor), error: impl Into<BatchFailure>) -> LastError {
    let message = format!("{} (batch after position {} up to {})", error.into().0, from.position, to.position);
    LastError { message, position: None, event_id: None }
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

/// A session ending in a failure of the projection before its first batch (reported by
/// [`run`], unless the version turns out to have been replaced under the worker).
fn fail(message: String, owner: tokio_postgres::Client) -> SessionEnd {
    SessionEnd::Failed(owner, LastError { message, position: None, event_id: None })
}
