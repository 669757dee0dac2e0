//! What can go wrong while a projection applies a batch.

use std::fmt;

/// An error of a projection: the batch that caused it is not applied.
///
/// Returned from [`Projection::apply`](crate::Projection::apply), it becomes the WIT
/// `projection-error` of the batch, with the global position of the event being applied,
/// and the engine stops the projection there (nothing of the batch is written). It is never
/// a trap: the host keeps control and reports it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event's data (or metadata) does not have the shape of the type it is read into.
    #[error("{event}: {part} is not a valid {target}: {message}")]
    Payload {
        /// The event (boxed: errors travel in every `Result` of a projection).
        event: Box<EventRef>,
        /// `data` or `metadata`.
        part: &'static str,
        /// The Rust type it was read into, e.g. `ItemAdded`.
        target: String,
        /// What serde said, with the line and column in the JSON.
        message: String,
    },
    /// A value could not be converted: the wrong kind for a column, out of range, not a
    /// decimal, not a UUID, …
    #[error("{0}")]
    Value(String),
    /// A row lacks a column that was asked for.
    #[error("the row has no column `{column}` (it has {present})")]
    MissingColumn {
        /// The column asked for.
        column: String,
        /// The columns it has, comma-separated.
        present: String,
    },
    /// A column of a row holds a value that does not convert to the requested type.
    #[error("column `{column}`: {source}")]
    Column {
        /// The column.
        column: String,
        /// Why it does not convert.
        source: Box<Error>,
    },
    /// The projection used a table that its [`Description`](crate::Description) does not declare.
    #[error("table `{table}` is not one of the projection's tables ({declared})")]
    UnknownTable {
        /// The table asked for.
        table: String,
        /// The declared tables, comma-separated.
        declared: String,
    },
    /// The host could not read a row back.
    #[error("reading the row {key} of table `{table}`: {message}")]
    ReadRow {
        /// The table.
        table: String,
        /// The key, as `column=value` pairs.
        key: String,
        /// What the host said.
        message: String,
    },
    /// An error of the projection's own logic; see [`Error::msg`].
    #[error("{0}")]
    Custom(String),
}

impl Error {
    /// An error with a message of the projection's own, e.g. for an event that breaks a
    /// rule of the domain.
    pub fn msg(message: impl fmt::Display) -> Error {
        Error::Custom(message.to_string())
    }
}

/// Names an event in messages: `event 42 (ItemAdded, id 7c1…, stream order-3f…, version 3)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRef {
    /// Position in the log.
    pub global_position: i64,
    /// The event's id.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The stream.
    pub stream_id: String,
    /// The version within the stream.
    pub stream_version: i64,
}

impl fmt::Display for EventRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event {} ({}, id {}, stream {}, version {})",
            self.global_position, self.event_type, self.event_id, self.stream_id, self.stream_version
        )
    }
}

/// Why a batch was refused: the SDK's form of the WIT `projection-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProjectionError {
    /// What went wrong, naming the event.
    pub message: String,
    /// The global position of the event that caused it.
    pub global_position: Option<i64>,
}
