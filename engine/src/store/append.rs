//! Appending: optimistic concurrency through the `streams` row, idempotent on event ids.

use serde_json::Value;
use tokio_postgres::Transaction;
use tokio_postgres::types::ToSql;
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
        let request = AppendRequest {
            stream_id: stream_id.to_owned(),
            expected,
            events: events.to_vec(),
        };
        let mut outcomes = self.append_all(std::slice::from_ref(&request)).await?;
        Ok(outcomes.remove(0))
    }

    /// Appends to several streams atomically: every request succeeds, or nothing is written.
    /// Requests run in order, so two requests for one stream see each other.
    pub async fn append_all(
        &mut self,
        requests: &[AppendRequest],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
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

    // Lock first, then look for the ids: pipelined, but the lookup runs after the lock is
    // held, so it sees whatever a concurrent append of the same events committed.
    let (lock_params, find_params): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 1]) =
        ([&stream_id], [&ids]);
    let (locked, found) = tokio::try_join!(
        tx.query_opt(&st.lock_stream, &lock_params),
        tx.query(&st.find_event_ids, &find_params)
    )?;
    let (actual, found) = match locked {
        Some(row) => (row.get::<_, i64>(0), found),
        None => {
            let created = tx
                .query_opt(&st.create_stream, &[&stream_id, &category(stream_id)])
                .await?;
            match created {
                Some(row) => (row.get(0), found),
                // A concurrent append created the stream meanwhile: lock it now, and look
                // again, since that append may have carried these very events.
                None => {
                    let row = tx.query_one(&st.lock_stream, &[&stream_id]).await?;
                    (row.get(0), tx.query(&st.find_event_ids, &[&ids]).await?)
                }
            }
        }
    };

    if !found.is_empty() {
        return previous_outcome(request, &found);
    }
    if !request.expected.admits(actual) {
        return Err(StoreError::Conflict {
            stream_id: stream_id.to_owned(),
            expected: request.expected,
            actual,
        });
    }

    let types: Vec<&str> = request
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    let data: Vec<&Value> = request.events.iter().map(|e| &e.data).collect();
    let metadata: Vec<Option<Value>> = request
        .events
        .iter()
        .map(|e| e.metadata.to_json())
        .collect();
    let last_version = actual + request.events.len() as i64;
    let rows = tx
        .query(
            &st.insert_events,
            &[
                &stream_id,
                &actual,
                &ids,
                &types,
                &data,
                &metadata,
                &last_version,
            ],
        )
        .await?;
    Ok(AppendOutcome {
        stream_id: stream_id.to_owned(),
        first_version: actual + 1,
        last_version,
        positions: rows.iter().map(|row| row.get(1)).collect(),
        already_appended: false,
    })
}

/// The outcome of the original append when `found` (the stored rows of some of the request's
/// ids) shows that this request is a retry of it; an error otherwise.
fn previous_outcome(
    request: &AppendRequest,
    found: &[tokio_postgres::Row],
) -> Result<AppendOutcome, StoreError> {
    let stored = |id: Uuid| found.iter().find(|row| row.get::<_, Uuid>(0) == id);
    let first = stored(request.events[0].event_id);
    let first_version = first
        .filter(|row| row.get::<_, &str>(1) == request.stream_id)
        .map(|row| row.get::<_, i64>(2));
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
