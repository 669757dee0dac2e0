//! When a guest fails on a batch: find the event at fault and, by the projection's error policy
//! (`on_error` in its settings), stop there or dead-letter it and go on without it.
//!
//! A trap ends the whole batch and tells nothing of the event, so the batch is replayed one
//! event at a time on a fresh instance (a trapped instance's memory is not to be trusted),
//! committing nothing, until an event fails alone: that is the poison event. Under `skip`, the
//! batch is then applied again without it, on a fresh instance too, as often as another event
//! fails (each round removes one). Its operations are committed together with the dead letters
//! and the checkpoint, in one transaction: a dead letter is written exactly once, like the
//! read model. Failures that are not the guest's (the replay's connection lost) are transient:
//! the session starts again from its checkpoint, and nothing becomes a dead letter.

use std::sync::{Arc, Mutex};

use super::cursor::Cursor;
use super::guest::{ApplyResult, Guest};
use super::install::Login;
use super::loader::{Loaded, OnError};
use super::reader::Batch;
use super::rows::DbRows;
use super::written::WrittenKeys;
use crate::readmodel::{Param, Statement, Tables, quote_ident};
use crate::wasm::types::{Event, Op};

/// Most events of one batch that may be dead-lettered: past it the failure is the projection's
/// as a whole (every event fails, each after a deadline perhaps), and it stops.
pub const MAX_DEAD_LETTERS_PER_BATCH: usize = 100;

/// The event at which a guest failed, and how.
#[derive(Debug, Clone)]
pub(super) struct Poison {
    /// What went wrong.
    pub(super) message: String,
    /// The event's position.
    pub(super) position: i64,
    /// The event's id.
    pub(super) event_id: String,
}

/// What becomes of a batch the guest failed.
pub(super) enum Verdict {
    /// The projection stops at this failure.
    Stop(Poison),
    /// The projection stops with this error of the whole batch: no single event fails alone.
    StopBatch(String),
    /// The batch's operations without its poison events, to commit with their dead letters.
    Apply {
        /// The operations of the other events.
        ops: Vec<Op>,
        /// The events left out.
        dead: DeadLetters,
    },
}

/// Why a replay could not tell: not the guest's fault, so worth a new session.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReplayError {
    /// The replay's own connection could not be opened.
    #[error("replaying a failed batch: {0}")]
    Connect(#[from] crate::db::DbError),
    /// The replay's connection for reading rows was lost.
    #[error("replaying a failed batch: the connection for reading rows was lost")]
    RowsLost,
}

/// Judges the batch of `events` (the ones the projection receives) that the guest failed with
/// `failed`, by the projection's error policy.
pub(super) async fn judge(
    loaded: &Loaded,
    login: &Login,
    tables: &Tables,
    events: Vec<Event>,
    failed: ApplyResult,
) -> Result<Verdict, ReplayError> {
    let mut named = named_event(failed, &events);
    if loaded.settings.on_error == OnError::Stop {
        return Ok(match named {
            Ok(poison) => Verdict::Stop(poison),
            Err(error) => match first_poison(loaded, login, tables, &events).await? {
                Some(poison) => Verdict::Stop(poison),
                None => Verdict::StopBatch(error),
            },
        });
    }
    let mut remaining = events;
    let mut dead = DeadLetters::default();
    loop {
        let poison = match named {
            Ok(poison) => poison,
            Err(error) => match first_poison(loaded, login, tables, &remaining).await? {
                Some(poison) => poison,
                None => return Ok(Verdict::StopBatch(error)),
            },
        };
        let position = poison.position;
        if dead.0.len() == MAX_DEAD_LETTERS_PER_BATCH {
            let message = format!(
                "{} (and {MAX_DEAD_LETTERS_PER_BATCH} events of this batch before it were dead-lettered: more than \
                 one batch may skip, so the projection stops)",
                poison.message
            );
            return Ok(Verdict::Stop(Poison { message, ..poison }));
        }
        tracing::warn!(projection = %loaded.name(), position, event_id = poison.event_id, error = %poison.message, "event skipped into dead_letters");
        remaining.retain(|e| e.global_position != position);
        dead.0.push((position, poison.message));
        if remaining.is_empty() {
            return Ok(Verdict::Apply { ops: Vec::new(), dead });
        }
        let replay = Replay::start(loaded, login, tables).await?;
        let result = match &replay.guest {
            Ok(guest) => guest.apply(batch_of(remaining.clone()), None).await,
            Err(error) => return Ok(Verdict::StopBatch(error.clone())),
        };
        replay.check_rows()?;
        match result {
            Ok(Ok(ops)) => return Ok(Verdict::Apply { ops, dead }),
            failed => named = named_event(failed, &remaining),
        }
    }
}

/// The failure as the guest named it: its event, when it gave one that is in `events`;
/// otherwise the failure's message, for a replay to find the event.
fn named_event(failed: ApplyResult, events: &[Event]) -> Result<Poison, String> {
    match failed {
        Ok(Ok(_)) => Err("the batch failed once and not again".to_owned()),
        Ok(Err(error)) => match error.global_position.and_then(|p| events.iter().find(|e| e.global_position == p)) {
            Some(event) => {
                Ok(Poison { message: error.message, position: event.global_position, event_id: event.event_id.clone() })
            }
            None => Err(error.message),
        },
        Err(error) => Err(error.to_string()),
    }
}

/// A fresh instance with a connection of its own for `get-row`, committing nothing.
struct Replay {
    guest: Result<Guest, String>,
    lost: Arc<std::sync::atomic::AtomicBool>,
}

impl Replay {
    async fn start(loaded: &Loaded, login: &Login, tables: &Tables) -> Result<Replay, ReplayError> {
        let client = Arc::new(login.connect().await?);
        let written = Arc::new(Mutex::new(WrittenKeys::unknown()));
        let rows = DbRows::new(client, tokio::runtime::Handle::current(), tables.clone(), written);
        let lost = rows.lost();
        let limits = loaded.settings.limits();
        let guest = Guest::spawn(loaded.projector.clone(), loaded.name(), limits, Box::new(rows)).await;
        Ok(Replay { guest: guest.map_err(|e| e.to_string()), lost })
    }

    /// Fails when a read of the replay failed for a reason that is not the guest's.
    fn check_rows(&self) -> Result<(), ReplayError> {
        match self.lost.load(std::sync::atomic::Ordering::Relaxed) {
            true => Err(ReplayError::RowsLost),
            false => Ok(()),
        }
    }
}

/// Replays `events` one at a time on a fresh instance, committing nothing, to find the first
/// that fails alone. `None` when none does.
async fn first_poison(
    loaded: &Loaded,
    login: &Login,
    tables: &Tables,
    events: &[Event],
) -> Result<Option<Poison>, ReplayError> {
    let replay = Replay::start(loaded, login, tables).await?;
    let Ok(guest) = &replay.guest else { return Ok(None) };
    for event in events {
        let (position, event_id) = (event.global_position, event.event_id.clone());
        let message = match guest.apply(batch_of(vec![event.clone()]), None).await {
            Ok(Ok(_)) => continue,
            Ok(Err(error)) => error.message,
            Err(error) => error.to_string(),
        };
        replay.check_rows()?;
        return Ok(Some(Poison { message, position, event_id }));
    }
    Ok(None)
}

fn batch_of(events: Vec<Event>) -> Arc<Batch> {
    Arc::new(Batch { from: Cursor::START, to: Cursor::START, events, at_head: false })
}

/// Events left out of a batch, with their errors: `(position, error)`.
#[derive(Debug, Default)]
pub(super) struct DeadLetters(Vec<(i64, String)>);

impl DeadLetters {
    /// Whether no event was left out.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `statements` followed by the insert of these dead letters of projection `name` (whose
    /// version has checkpoint key `key`) into the event store's `dead_letters` (in
    /// `store_schema`), so that they commit with the batch. An event dead-lettered before (by
    /// an earlier version of the projection) is updated.
    pub(super) fn with(
        &self,
        mut statements: Vec<Statement>,
        store_schema: &str,
        key: &str,
        name: &str,
    ) -> Vec<Statement> {
        if self.0.is_empty() {
            return statements;
        }
        // Through a function of the engine's: the version's own role cannot read `events`.
        let sql = format!("SELECT {}.refract_dead_letter($1, $2, $3::text[], $4::text[])", quote_ident(store_schema));
        let positions = self.0.iter().map(|(p, _)| Some(p.to_string())).collect();
        let errors = self.0.iter().map(|(_, e)| Some(e.replace('\0', "\u{FFFD}"))).collect();
        let params = vec![
            Param::Scalar(Some(key.to_owned())),
            Param::Scalar(Some(name.to_owned())),
            Param::Column(positions),
            Param::Column(errors),
        ];
        statements.push(Statement { sql, params });
        statements
    }
}
