//! Loading a generated log with binary COPY, keeping `streams` consistent with `events`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_util::pin_mut;
use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use super::orders::GeneratedEvent;
use crate::readmodel::quote_ident;
use crate::store::category;

/// What a load wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSummary {
    /// Events written.
    pub events: u64,
    /// Streams written.
    pub streams: u64,
}

/// Why a load failed; nothing is written then. Messages carry the database's own text.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Some of the streams exist already (the same seed loaded before, for instance).
    #[error(
        "the store already holds some of these streams ({}): load into an empty store or pick another seed",
        crate::db::describe(.0)
    )]
    StreamsExist(tokio_postgres::Error),
    /// The event store tables are missing.
    #[error("cannot load events ({}): run `refract migrate` first", crate::db::describe(.0))]
    NotMigrated(tokio_postgres::Error),
    /// Any other database error.
    #[error("loading events failed: {}", crate::db::describe(.0))]
    Db(tokio_postgres::Error),
}

// Not `#[from]`, which would also make it the `source()`: see `crate::db::DbError`.
impl From<tokio_postgres::Error> for LoadError {
    fn from(err: tokio_postgres::Error) -> Self {
        LoadError::Db(err)
    }
}

struct StreamRow {
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Writes `events` (which must start new streams at version 1) into `schema`'s `events`, and a
/// `streams` row for each of their streams, in one transaction.
pub async fn load(
    client: &mut Client,
    schema: &str,
    events: impl IntoIterator<Item = GeneratedEvent>,
) -> Result<LoadSummary, LoadError> {
    let schema = quote_ident(schema);
    let tx = client.transaction().await?;

    let sink = tx
        .copy_in(&format!(
            "COPY {schema}.events (stream_id, version, event_id, event_type, data, metadata, timestamp) \
             FROM STDIN (FORMAT binary)"
        ))
        .await
        .map_err(|err| {
            if err.code() == Some(&SqlState::UNDEFINED_TABLE) {
                LoadError::NotMigrated(err)
            } else {
                LoadError::Db(err)
            }
        })?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[Type::VARCHAR, Type::INT8, Type::UUID, Type::VARCHAR, Type::JSONB, Type::JSONB, Type::TIMESTAMPTZ],
    );
    pin_mut!(writer);
    // Streams in order of first appearance, so that `streams.id` follows the log too.
    let mut order: Vec<String> = Vec::new();
    let mut streams: HashMap<String, StreamRow> = HashMap::new();
    for event in events {
        writer
            .as_mut()
            .write(&[
                &event.stream_id,
                &event.version,
                &event.event_id,
                &event.event_type,
                &event.data,
                &event.metadata,
                &event.timestamp,
            ])
            .await?;
        match streams.get_mut(&event.stream_id) {
            Some(row) => {
                row.version = event.version;
                row.updated_at = event.timestamp;
            }
            None => {
                order.push(event.stream_id.clone());
                let row =
                    StreamRow { version: event.version, created_at: event.timestamp, updated_at: event.timestamp };
                streams.insert(event.stream_id, row);
            }
        }
    }
    let events = writer.as_mut().finish().await.map_err(streams_exist)?;

    let sink = tx
        .copy_in(&format!(
            "COPY {schema}.streams (stream_id, category, version, created_at, updated_at) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[Type::VARCHAR, Type::VARCHAR, Type::INT8, Type::TIMESTAMPTZ, Type::TIMESTAMPTZ],
    );
    pin_mut!(writer);
    for stream_id in &order {
        let row = &streams[stream_id];
        writer
            .as_mut()
            .write(&[stream_id, &category(stream_id), &row.version, &row.created_at, &row.updated_at])
            .await?;
    }
    let stream_count = writer.as_mut().finish().await.map_err(streams_exist)?;
    tx.commit().await?;
    Ok(LoadSummary { events, streams: stream_count })
}

fn streams_exist(err: tokio_postgres::Error) -> LoadError {
    if err.code() == Some(&SqlState::UNIQUE_VIOLATION) { LoadError::StreamsExist(err) } else { LoadError::Db(err) }
}
