//! The event store: appending and reading events in the schema of ADR-002.
//!
//! An append runs in one transaction: it locks the stream's row in `streams` (creating it if
//! needed), checks the expected version, inserts every event in one multi-row statement and
//! bumps the stream's version. Events carry stable ids: an append whose events are already
//! stored returns the original outcome and writes nothing.

mod append;
mod error;
mod event;
mod read;
mod validate;

pub use error::{InvalidInput, StoreError};
pub use event::{AppendOutcome, AppendRequest, ExpectedVersion, Metadata, NewEvent, RecordedEvent};

use tokio_postgres::{Client, Statement};

use crate::readmodel::quote_ident;

/// The channel on which the `events` trigger NOTIFYs, once per inserting statement, with the
/// schema's name as payload.
pub const NOTIFY_CHANNEL: &str = "refract_events";

/// Longest stream id (`VARCHAR(500)`).
pub const MAX_STREAM_ID_CHARS: usize = 500;
/// Longest category (`VARCHAR(250)`).
pub const MAX_CATEGORY_CHARS: usize = 250;
/// Longest event type (`VARCHAR(500)`).
pub const MAX_EVENT_TYPE_CHARS: usize = 500;

/// The category of a stream: the part of its id before the first `-` (`order-123` → `order`),
/// or the whole id when it has none.
pub fn category(stream_id: &str) -> &str {
    stream_id.split_once('-').map_or(stream_id, |(category, _)| category)
}

/// Checks appends the way [`EventStore::append_all`] does, without touching the database.
pub fn validate_requests(requests: &[AppendRequest]) -> Result<(), InvalidInput> {
    validate::requests(requests)
}

/// The event store of one schema, over one connection.
pub struct EventStore {
    client: Client,
    schema: String,
    statements: Statements,
}

/// Statements prepared once per store, so an append costs no extra parse round trips.
struct Statements {
    lock_stream: Statement,
    create_stream: Statement,
    find_event_ids: Statement,
    stream_head: Statement,
    insert_events: Statement,
    read_stream: Statement,
    read_all: Statement,
}

impl EventStore {
    /// A store over the tables of `schema`, which must have been migrated.
    pub async fn new(client: Client, schema: &str) -> Result<Self, StoreError> {
        let statements = Statements::prepare(&client, schema).await.map_err(|err| not_migrated(err, schema))?;
        Ok(EventStore { client, schema: schema.to_owned(), statements })
    }

    /// The schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The connection, e.g. for queries of one's own.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Statements {
    async fn prepare(client: &Client, schema: &str) -> Result<Self, tokio_postgres::Error> {
        let schema = quote_ident(schema);
        let streams = format!("{schema}.streams");
        let events = format!("{schema}.events");
        let columns = "global_position, transaction_id::text::bigint, stream_id::text, version, event_id, \
                       event_type::text, data, metadata, timestamp";
        Ok(Statements {
            lock_stream: client
                .prepare(&format!("SELECT version FROM {streams} WHERE stream_id = $1 FOR UPDATE"))
                .await?,
            create_stream: client
                .prepare(&format!(
                    "INSERT INTO {streams} (stream_id, category, version) VALUES ($1, $2, 0)
                     ON CONFLICT (stream_id) DO NOTHING RETURNING version"
                ))
                .await?,
            find_event_ids: client
                .prepare(&format!(
                    "SELECT event_id, stream_id::text, version, global_position FROM {events}
                      WHERE event_id = ANY($1::uuid[])"
                ))
                .await?,
            stream_head: client
                .prepare(&format!("SELECT COALESCE(max(version), 0) FROM {events} WHERE stream_id = $1"))
                .await?,
            // All events in one statement, numbered by their place in the arrays, and the
            // stream's version bumped in the same statement.
            insert_events: client
                .prepare(&format!(
                    "WITH appended AS (
                         INSERT INTO {events} (stream_id, version, event_id, event_type, data, metadata)
                         SELECT $1, $2 + e.n, e.event_id, e.event_type, e.data, e.metadata
                           FROM unnest($3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[])
                                WITH ORDINALITY AS e(event_id, event_type, data, metadata, n)
                         RETURNING version, global_position
                     ), bumped AS (
                         UPDATE {streams} SET version = $7, updated_at = now() WHERE stream_id = $1
                     )
                     SELECT version, global_position FROM appended ORDER BY version"
                ))
                .await?,
            read_stream: client
                .prepare(&format!(
                    "SELECT {columns} FROM {events} WHERE stream_id = $1 AND version >= $2 ORDER BY version"
                ))
                .await?,
            read_all: client
                .prepare(&format!(
                    "SELECT {columns} FROM {events} WHERE global_position > $1 ORDER BY global_position LIMIT $2"
                ))
                .await?,
        })
    }
}

/// Maps "no such table/column" to [`StoreError::NotMigrated`].
fn not_migrated(err: tokio_postgres::Error, schema: &str) -> StoreError {
    use tokio_postgres::error::SqlState;
    match err.code() {
        Some(code) if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_COLUMN => {
            let detail = err.as_db_error().map_or_else(|| err.to_string(), |db| db.message().to_owned());
            StoreError::NotMigrated { schema: schema.to_owned(), detail }
        }
        _ => StoreError::Db(err),
    }
}
