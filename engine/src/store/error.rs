//! What can go wrong appending and reading.

use uuid::Uuid;

use super::event::ExpectedVersion;

/// Input the store refuses before writing anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    /// An empty stream id.
    #[error("stream id is empty")]
    EmptyStreamId,
    /// A stream id over the column's limit.
    #[error("stream id is {chars} characters long; at most {max} are allowed", max = super::MAX_STREAM_ID_CHARS)]
    StreamIdTooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// A stream id whose category (the part before the first `-`) is over the column's limit.
    #[error(
        "stream id {stream_id:?} has a category (the part before the first '-') of {chars} characters; \
         at most {max} are allowed",
        max = super::MAX_CATEGORY_CHARS
    )]
    CategoryTooLong {
        /// The stream id (shortened).
        stream_id: String,
        /// The category's length in characters.
        chars: usize,
    },
    /// An append without events.
    #[error("no events to append to stream {stream_id:?}")]
    NoEvents {
        /// The stream.
        stream_id: String,
    },
    /// An empty event type.
    #[error("event {event_id} has an empty event type")]
    EmptyEventType {
        /// The event.
        event_id: Uuid,
    },
    /// An event type over the column's limit.
    #[error("event type of event {event_id} is {chars} characters long; at most {max} are allowed", max = super::MAX_EVENT_TYPE_CHARS)]
    EventTypeTooLong {
        /// The event.
        event_id: Uuid,
        /// Its length in characters.
        chars: usize,
    },
    /// Data that is not a JSON object.
    #[error("data of event {event_id} ({event_type}) must be a JSON object, not {found}")]
    DataNotObject {
        /// The event.
        event_id: Uuid,
        /// Its type.
        event_type: String,
        /// What it was instead: `an array`, `a string`, ….
        found: &'static str,
    },
    /// Text with a NUL character, which PostgreSQL cannot store in text or JSONB.
    #[error("{what} contains a NUL character (\\u0000), which PostgreSQL cannot store")]
    NulCharacter {
        /// Where: `stream id`, `data of event …`.
        what: String,
    },
    /// The same event id twice in one append.
    #[error("event id {0} appears more than once in one append")]
    DuplicateEventId(Uuid),
}

/// Why an append or a read failed. A failed append writes nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The input was refused.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// The stream was not at the expected version.
    #[error("concurrency conflict on stream {stream_id:?}: expected {expected}, but the stream is at {}", describe_version(*actual))]
    Conflict {
        /// The stream.
        stream_id: String,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The stream's version when the append ran (`0`: the stream does not exist).
        actual: i64,
    },
    /// An event id that is already stored elsewhere than this append would put it: a retry
    /// must carry the same events, in the same order, to the same stream.
    #[error(
        "event {event_id} is already stored as version {version} of stream {stored_in:?}; \
         it cannot be appended to stream {stream_id:?} again as part of different events"
    )]
    EventIdTaken {
        /// The id.
        event_id: Uuid,
        /// The stream of the append.
        stream_id: String,
        /// The stream that holds it.
        stored_in: String,
        /// Its version there.
        version: i64,
    },
    /// The event store tables are missing from the schema.
    #[error("the event store tables are missing from schema {schema:?} ({detail}): run `refract migrate` first")]
    NotMigrated {
        /// The schema.
        schema: String,
        /// The database's message.
        detail: String,
    },
    /// Any other database error.
    #[error("database error: {}", crate::db::describe(.0))]
    Db(tokio_postgres::Error),
}

// Not `#[from]`: that would make the database error the `source()` too, and a report of the
// chain would repeat the message this error already carries.
impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        StoreError::Db(err)
    }
}

fn describe_version(version: i64) -> String {
    if version == 0 { "no stream (it does not exist)".to_owned() } else { format!("version {version}") }
}
