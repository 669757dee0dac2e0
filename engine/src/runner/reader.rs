//! Reading the log in cursor order, below the visibility horizon.

use std::collections::HashMap;

use tokio_postgres::Client;

use super::cursor::Cursor;
use super::subscription::Subscription;
use crate::readmodel::quote_ident;
use crate::wasm::types::Event;

/// One read of the log: its events and the cursor the reader stands at after them.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The cursor the batch starts after.
    pub from: Cursor,
    /// The cursor after the batch: its last event's, or further when the read reached the
    /// horizon and later events were filtered out (a skipped stretch still advances).
    pub to: Cursor,
    /// The events, in cursor order.
    pub events: Vec<Event>,
    /// Whether the read reached the last event below the horizon.
    pub at_head: bool,
}

/// Reads the event log of one store schema. Owns its connection.
pub struct LogReader {
    client: Client,
    read: String,
    late: String,
    head: String,
    /// How many batches this reader has read (to show that one scan feeds many projections).
    pub reads: u64,
}

impl LogReader {
    /// Events after `from` up to `until`, below `horizon`, that `filter` receives, at most
    /// `limit` of them, each with its cursor.
    async fn read_range(
        &self,
        from: Cursor,
        until: Cursor,
        horizon: i64,
        filter: &Subscription,
        limit: usize,
    ) -> Result<Vec<(Cursor, Event)>, tokio_postgres::Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client
            .query(
                &self.read,
                &[
                    &from.transaction_id,
                    &from.position,
                    &horizon,
                    &filter.event_types,
                    &filter.categories,
                    &until.transaction_id,
                    &until.position,
                    &limit,
                ],
            )
            .await?;
        Ok(rows.into_iter().map(|row| decode(&row)).collect())
    }

    /// Up to `limit` events after `from` and below `horizon`, in cursor order, each with its
    /// cursor: the read query alone, unfiltered, without batch extension (the raw read that
    /// `refract bench` measures the engine against).
    pub async fn scan(
        &self,
        from: Cursor,
        horizon: i64,
        limit: usize,
    ) -> Result<Vec<(Cursor, Event)>, tokio_postgres::Error> {
        let unbounded = Cursor { transaction_id: horizon, position: 0 };
        self.read_range(from, unbounded, horizon, &Subscription::default(), limit).await
    }

    /// The cursor of an event after `after` (below `horizon`) whose stream has a higher
    /// version among `events`, if any.
    async fn late(
        &self,
        events: &[(Cursor, Event)],
        after: Cursor,
        horizon: i64,
    ) -> Result<Option<Cursor>, tokio_postgres::Error> {
        let mut highest: HashMap<&str, i64> = HashMap::new();
        for (_, event) in events {
            let version = highest.entry(&event.stream_id).or_insert(event.stream_version);
            *version = (*version).max(event.stream_version);
        }
        let (streams, versions): (Vec<&str>, Vec<i64>) = highest.into_iter().unzip();
        let row = self
            .client
            .query_opt(&self.late, &[&streams, &versions, &after.transaction_id, &after.position, &horizon])
            .await?;
        Ok(row.map(|r| Cursor { transaction_id: r.get(0), position: r.get(1) }))
    }

    /// A reader over `schema`'s `events`, on its own connection.
    pub async fn new(client: Client, schema: &str) -> Result<Self, tokio_postgres::Error> {
        // The log is walked in cursor order on the (transaction_id, global_position) index.
        // The planner misjudges how many rows a cursor range holds (row comparisons on xid8)
        // and would rather collect the whole rest of the log in a bitmap and sort it, for
        // every batch; this connection only reads the log, so those plans are switched off.
        // JIT compilation is off as well: the late-version lookup's estimated cost crosses
        // `jit_above_cost`, and compiling it took ~290 ms of a ~385 ms execution per batch on a
        // 1M-event log (EXPLAIN ANALYZE), the bulk of the reader's database CPU.
        client.batch_execute("SET enable_bitmapscan = off; SET enable_sort = off; SET jit = off").await?;
        let events = format!("{}.events", quote_ident(schema));
        // Filters are applied to rows walked in cursor order on (transaction_id,
        // global_position). `event_type || ''` keeps the planner off the event type index:
        // combining it with the cursor range makes a bitmap over every event of those types.
        let read = format!(
            "SELECT e.transaction_id::text::bigint, e.global_position, e.stream_id::text, e.version, e.event_id,
                    e.event_type::text, e.data::text, e.metadata::text, e.timestamp
               FROM {events} e
              WHERE (e.transaction_id, e.global_position) > ($1::bigint::text::xid8, $2)
                AND e.transaction_id < $3::bigint::text::xid8
                AND ($4::text[] IS NULL OR (e.event_type || '') = ANY($4))
                AND ($5::text[] IS NULL OR split_part(e.stream_id, '-', 1) = ANY($5))
                AND (e.transaction_id, e.global_position) <= ($6::bigint::text::xid8, $7)
              ORDER BY e.transaction_id, e.global_position
              LIMIT $8"
        );
        // An event after a cursor with a lower version than a given one in its stream (the
        // latest of them by cursor, over each stream's highest such version; the caller asks
        // again until there is none): one lookup per stream on the (stream_id, version) index.
        // The ORDER BY version … LIMIT inside keeps the planner on that index, instead of a
        // hash join or a scan of every event after the cursor. Not filtered by subscription:
        // extending a batch over an event the projection does not receive is harmless.
        let late = format!(
            "SELECT later.transaction_id, later.global_position
               FROM unnest($1::text[], $2::bigint[]) AS b(stream_id, version)
              CROSS JOIN LATERAL (
                    SELECT e.transaction_id::text::bigint AS transaction_id, e.global_position
                      FROM {events} e
                     WHERE e.stream_id = b.stream_id AND e.version < b.version
                       AND (e.transaction_id, e.global_position) > ($3::bigint::text::xid8, $4)
                       AND e.transaction_id < $5::bigint::text::xid8
                     ORDER BY e.version DESC
                     LIMIT 1
                   ) AS later
              ORDER BY later.transaction_id DESC, later.global_position DESC
              LIMIT 1"
        );
        let head = format!(
            "SELECT e.transaction_id::text::bigint, e.global_position FROM {events} e
              WHERE e.transaction_id < $1::bigint::text::xid8
              ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1"
        );
        Ok(LogReader { client, read, late, head, reads: 0 })
    }

    /// The visibility horizon: every transaction whose id is below it has finished, so the
    /// events below it are final.
    pub async fn horizon(&self) -> Result<i64, tokio_postgres::Error> {
        let row = self.client.query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint", &[]).await?;
        Ok(row.get(0))
    }

    /// The cursor of the last event below `horizon`, if any.
    pub async fn head(&self, horizon: i64) -> Result<Option<Cursor>, tokio_postgres::Error> {
        let row = self.client.query_opt(&self.head, &[&horizon]).await?;
        Ok(row.map(|r| Cursor { transaction_id: r.get(0), position: r.get(1) }))
    }

    /// Up to `limit` events after `from` and below `horizon` that `filter` receives. When
    /// fewer come back the read reached the horizon, and the batch ends at `head` (the last
    /// event below the horizon, filtered or not) so that skipped stretches advance too.
    pub async fn read(
        &mut self,
        from: Cursor,
        horizon: i64,
        head: Option<Cursor>,
        filter: &Subscription,
        limit: usize,
    ) -> Result<Batch, tokio_postgres::Error> {
        self.reads += 1;
        // Below the horizon every cursor is below (horizon, 0): no upper bound.
        let unbounded = Cursor { transaction_id: horizon, position: 0 };
        let mut events = self.read_range(from, unbounded, horizon, filter, limit).await?;
        let full = events.len() >= limit;
        let mut to = events.last().map_or(from, |(cursor, _)| *cursor);
        if full {
            // A stream's lower version can lie beyond the cut when its transaction took its
            // id after the one that wrote the higher version: extend the batch up to it, so
            // that every stream in the batch can be put in version order.
            while let Some(late) = self.late(&events, to, horizon).await? {
                events.extend(self.read_range(to, late, horizon, filter, usize::MAX).await?);
                to = late;
            }
        } else if let Some(head) = head {
            to = to.max(head);
        }
        let mut events: Vec<Event> = events.into_iter().map(|(_, event)| event).collect();
        put_streams_in_version_order(&mut events);
        Ok(Batch { from, to, events, at_head: !full })
    }
}

/// An event row of the read query, with its cursor.
fn decode(row: &tokio_postgres::Row) -> (Cursor, Event) {
    let cursor = Cursor { transaction_id: row.get(0), position: row.get(1) };
    let event_id: uuid::Uuid = row.get(4);
    let metadata: Option<String> = row.get(7);
    let timestamp: chrono::DateTime<chrono::Utc> = row.get(8);
    let event = Event {
        global_position: cursor.position,
        stream_id: row.get(2),
        stream_version: row.get(3),
        event_id: event_id.hyphenated().to_string(),
        event_type: row.get(5),
        data: row.get::<_, String>(6).into_bytes(),
        metadata: metadata.map(String::into_bytes).unwrap_or_default(),
        timestamp: timestamp.timestamp_micros(),
    };
    (cursor, event)
}

/// Puts the events of each stream in version order, each stream keeping the slots its events
/// occupy in the batch.
///
/// Log order is commit order, by transaction id; a transaction that took its id early (by
/// writing elsewhere first) and appended to a stream after a later-numbered one did, comes
/// first, with the higher version. Inside a batch the engine restores version order; the batch
/// is applied and committed as a whole, so the checkpoint is unaffected.
fn put_streams_in_version_order(events: &mut [Event]) {
    let mut last: HashMap<&str, i64> = HashMap::with_capacity(events.len());
    let mut disordered = false;
    for event in events.iter() {
        let previous = last.insert(&event.stream_id, event.stream_version);
        disordered |= previous.is_some_and(|v| v > event.stream_version);
    }
    if !disordered {
        return;
    }
    let mut slots: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, event) in events.iter().enumerate() {
        slots.entry(event.stream_id.clone()).or_default().push(i);
    }
    for indices in slots.into_values().filter(|i| i.len() > 1) {
        let mut stream: Vec<Event> = indices.iter().map(|&i| events[i].clone()).collect();
        stream.sort_by_key(|e| e.stream_version);
        for (slot, event) in indices.into_iter().zip(stream) {
            events[slot] = event;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: i64, stream: &str, version: i64) -> Event {
        Event {
            global_position: position,
            stream_id: stream.into(),
            stream_version: version,
            event_id: String::new(),
            event_type: String::new(),
            data: Vec::new(),
            metadata: Vec::new(),
            timestamp: 0,
        }
    }

    fn order(events: &[Event]) -> Vec<(&str, i64)> {
        events.iter().map(|e| (e.stream_id.as_str(), e.stream_version)).collect()
    }

    #[test]
    fn a_stream_committed_out_of_version_order_is_put_back_in_order() {
        let mut events = vec![event(9, "b", 2), event(3, "a", 1), event(5, "b", 1), event(7, "a", 2), event(8, "b", 3)];
        put_streams_in_version_order(&mut events);
        assert_eq!(order(&events), [("b", 1), ("a", 1), ("b", 2), ("a", 2), ("b", 3)]);
    }

    #[test]
    fn ordered_batches_are_left_alone() {
        let mut events = vec![event(1, "a", 1), event(2, "b", 1), event(3, "a", 2)];
        put_streams_in_version_order(&mut events);
        assert_eq!(order(&events), [("a", 1), ("b", 1), ("a", 2)]);
    }
}
