//! The shapes of events going into and coming out of the store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The stream version an append expects to find: its optimistic-concurrency precondition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedVersion {
    /// Append whatever the stream's version is.
    Any,
    /// The stream must not exist yet (have no events).
    NoStream,
    /// The stream must be at exactly this version (`0` is the same as [`ExpectedVersion::NoStream`]).
    Exact(i64),
}

impl ExpectedVersion {
    /// Whether a stream at version `actual` (0: no stream) satisfies this expectation.
    pub fn admits(self, actual: i64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(expected) => actual == expected,
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(version) => write!(f, "version {version}"),
        }
    }
}

/// What is known about an event beyond its data, stored as the `metadata` JSON object.
///
/// The recorded time is the `timestamp` column, set by the database; `occurred_at` is when
/// the producer says the fact happened, which may be earlier (late or offline producers).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Groups every event caused by one original request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The event or command that directly caused this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// Who (user, service) caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// When the fact happened, as the producer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    /// Any other keys (e.g. `schema_version`), kept as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Metadata {
    /// The JSON object to store, or `None` (SQL `NULL`) when there is nothing to say.
    pub fn to_json(&self) -> Option<Value> {
        // Serialising strings, a timestamp and a JSON map cannot fail.
        serde_json::to_value(self).ok().filter(|value| value.as_object().is_some_and(|map| !map.is_empty()))
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The event's identity. Keep it stable across retries: an append whose events were
    /// already appended returns the original outcome instead of appending them again.
    pub event_id: Uuid,
    /// The `event_type` column, e.g. `OrderCreated`.
    pub event_type: String,
    /// The payload; must be a JSON object.
    pub data: Value,
    /// The metadata.
    pub metadata: Metadata,
}

impl NewEvent {
    /// An event with a fresh random id and no metadata.
    pub fn new(event_type: impl Into<String>, data: Value) -> Self {
        NewEvent { event_id: Uuid::new_v4(), event_type: event_type.into(), data, metadata: Metadata::default() }
    }

    /// The same event with the given id.
    pub fn with_id(self, event_id: Uuid) -> Self {
        NewEvent { event_id, ..self }
    }

    /// The same event with the given metadata.
    pub fn with_metadata(self, metadata: Metadata) -> Self {
        NewEvent { metadata, ..self }
    }
}

/// One stream's part of an append: the events, and the version the stream must be at.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendRequest {
    /// The stream, e.g. `order-6f1c…`.
    pub stream_id: String,
    /// The precondition.
    pub expected: ExpectedVersion,
    /// The events, in stream order.
    pub events: Vec<NewEvent>,
}

/// The result of a successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The stream.
    pub stream_id: String,
    /// The version of the first event appended.
    pub first_version: i64,
    /// The version of the last event appended: the stream's version after the append.
    pub last_version: i64,
    /// The `global_position` of each event, in the order given.
    pub positions: Vec<i64>,
    /// `true` when every event had been appended before (a retry): nothing was written and
    /// the fields above describe the original append.
    pub already_appended: bool,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Position in the whole log, assigned at insert time.
    pub global_position: i64,
    /// Id of the transaction that wrote it (`0` for events written before Refract's migrations).
    pub transaction_id: i64,
    /// The stream.
    pub stream_id: String,
    /// Version within the stream, from 1.
    pub version: i64,
    /// The event's identity.
    pub event_id: Uuid,
    /// The type.
    pub event_type: String,
    /// The payload.
    pub data: Value,
    /// The metadata, if any.
    pub metadata: Option<Value>,
    /// When the database recorded it.
    pub timestamp: DateTime<Utc>,
}
