//! Appending: optimistic concurrency through the `streams` row, idempotent on event ids.

use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Transaction};
use uuid::Uuid;

use super::error::StoreError;
use super::event::{AppendOutcome, AppendRequest, ExpectedVersion, NewEvent};
use super::{EventStore, Statements, category, validate};

impl EventStore {
    /// Appends `events` to `stream_id` if the stream is at `expected`, in one transaction and
    /// one insert statement.
    ///
    /// If every event id is already stored, in this stream and in this order, the append is a
    /// retry: it returns the original outcome (with `already_appended`) and writes nothing,
    /// whatever `expected` says.
    pub async fn append(
        &mut self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, StoreError> {
        let request = AppendRequest { stream_id: stream_id.to_owned(), expected, events: events.to_vec() };
        let mut outcomes = self.append_all(std::slice::from_ref(&request)).await?;
        Ok(outcomes.remove(0))
    }

    /// Appends to several streams atomically: every request succeeds, or nothing is written.
    /// Requests run in order, so two requests for one stream see each other.
    pub async fn append_all(&mut self, requests: &[AppendRequest]) -> Result<Vec<AppendOutcome>, StoreError> {
        validate::requests(requests)?;
        let tx = self.client.transaction().await?;
        let mut outcomes = Vec::with_capacity(requests.len());
        for request in requests {
            outcomes.push(append_in(&tx, &self.statements, request).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

async fn append_in(
    tx: &Transaction<'_>,
    st: &Statements,
    request: &AppendRequest,
) -> Result<AppendOutcome, StoreError> {
    let stream_id = request.stream_id.as_str();
    let ids: Vec<Uuid> = request.events.iter().map(|e| e.event_id).collect();

    // Lock the stream's row, creating it first if there is none. When a concurrent append
    // creates it meanwhile, probe again: that append may have carried these very events.
    let (locked, found, stored) = loop {
        let (locked, found, stored) = probe(tx, st, stream_id, &ids).await?;
        if let Some(version) = locked {
            break (version, found, stored);
        }
        let created = tx.query_opt(&st.create_stream, &[&stream_id, &category(stream_id)]).await?;
        if let Some(row) = created {
            break (row.get::<_, i64>(0), found, stored);
        }
    };
    // `streams` is authoritative for writers that keep it, but a writer that inserts only
    // into `events` (psql, a script) leaves it behind: the stream is at the later of both.
    let actual = locked.max(stored);

    if !found.is_empty() {
        return previous_outcome(request, &found);
    }
    if !request.expected.admits(actual) {
        return Err(StoreError::Conflict { stream_id: stream_id.to_owned(), expected: request.expected, actual });
    }

    let types: Vec<&str> = request.events.iter().map(|e| e.event_type.as_str()).collect();
    let data: Vec<&Value> = request.events.iter().map(|e| &e.data).collect();
    let metadata: Vec<Option<Value>> = request.events.iter().map(|e| e.metadata.to_json()).collect();
    let last_version = actual + request.events.len() as i64;
    let rows =
        tx.query(&st.insert_events, &[&stream_id, &actual, &ids, &types, &data, &metadata, &last_version]).await?;
    Ok(AppendOutcome {
        stream_id: stream_id.to_owned(),
        first_version: actual + 1,
        last_version,
        positions: rows.iter().map(|row| row.get(1)).collect(),
        already_appended: false,
    })
}

/// Locks the stream's row (if any), then — pipelined, but run after the lock is held, so
/// they see what a concurrent append to the stream committed — finds which of `ids` are
/// stored and the highest version in `events`. Returns (streams version, stored rows of
/// `ids`, events version).
async fn probe(
    tx: &Transaction<'_>,
    st: &Statements,
    stream_id: &str,
    ids: &[Uuid],
) -> Result<(Option<i64>, Vec<Row>, i64), tokio_postgres::Error> {
    let stream: [&(dyn ToSql + Sync); 1] = [&stream_id];
    let ids: [&(dyn ToSql + Sync); 1] = [&ids];
    let (locked, found, stored) = tokio::try_join!(
        tx.query_opt(&st.lock_stream, &stream),
        tx.query(&st.find_event_ids, &ids),
        tx.query_one(&st.stream_head, &stream),
    )?;
    Ok((locked.map(|row| row.get(0)), found, stored.get(0)))
}

/// The outcome of the original append when `found` (the stored rows of some of the request's
/// ids) shows that this request is a retry of it; an error otherwise.
fn previous_outcome(request: &AppendRequest, found: &[Row]) -> Result<AppendOutcome, StoreError> {
    let stored = |id: Uuid| found.iter().find(|row| row.get::<_, Uuid>(0) == id);
    let first = stored(request.events[0].event_id);
    let first_version = first.filter(|row| row.get::<_, &str>(1) == request.stream_id).map(|row| row.get::<_, i64>(2));
    let mut positions = Vec::with_capacity(request.events.len());
    for (i, event) in request.events.iter().enumerate() {
        let row = stored(event.event_id);
        let in_place = row.is_some_and(|row| {
            row.get::<_, &str>(1) == request.stream_id
                && Some(row.get::<_, i64>(2)) == first_version.map(|v| v + i as i64)
        });
        match row {
            Some(row) if in_place => positions.push(row.get::<_, i64>(3)),
            _ => {
                // Name an id that is stored, and where.
                let row = row.unwrap_or(&found[0]);
                return Err(StoreError::EventIdTaken {
                    event_id: row.get(0),
                    stream_id: request.stream_id.clone(),
                    stored_in: row.get(1),
                    version: row.get(2),
                });
            }
        }
    }
    let first_version = first_version.unwrap_or_default();
    Ok(AppendOutcome {
        stream_id: request.stream_id.clone(),
        first_version,
        last_version: first_version + request.events.len() as i64 - 1,
        positions,
        already_appended: true,
    })
}
