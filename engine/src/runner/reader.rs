//! Reading the log in cursor order, below the visibility horizon.

use tokio_postgres::{Client, Statement};

use super::cursor::Cursor;
use super::ordering::{Lookup, Scanned, Settled, Spans, put_streams_in_version_order};
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
    read: Statement,
    late: Statement,
    head: Statement,
    /// Streams known to have no lower version after a cursor.
    settled: Settled,
    /// How many batches this reader has read (to show that one scan feeds many projections).
    pub reads: u64,
}

impl LogReader {
    /// Events after `from` up to `until`, below `horizon`, of the categories `filter`
    /// receives, at most `limit` of them, each with its cursor; events of types it does not
    /// receive come without their payload.
    async fn read_range(
        &self,
        from: Cursor,
        until: Cursor,
        horizon: i64,
        filter: &Subscription,
        limit: usize,
    ) -> Result<Vec<Scanned>, tokio_postgres::Error> {
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
        Ok(rows.into_iter().map(|row| decode(&row, filter)).collect())
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
        let rows = self.read_range(from, unbounded, horizon, &Subscription::default(), limit).await?;
        Ok(rows.into_iter().map(|row| (row.cursor, row.event)).collect())
    }

    /// For each of `lookups` that has one, the cursor of an event after `after` in its stream
    /// with a lower version than asked (committed, at or above the horizon too).
    async fn late(&self, lookups: &[Lookup], after: Cursor) -> Result<Vec<(String, Cursor)>, tokio_postgres::Error> {
        let streams: Vec<&str> = lookups.iter().map(|l| l.stream.as_str()).collect();
        let versions: Vec<i64> = lookups.iter().map(|l| l.below).collect();
        let rows =
            self.client.query(&self.late, &[&streams, &versions, &after.transaction_id, &after.position]).await?;
        Ok(rows.iter().map(|r| (r.get(0), Cursor { transaction_id: r.get(1), position: r.get(2) })).collect())
    }

    /// A reader over `schema`'s `events`, on its own connection.
    pub async fn new(client: Client, schema: &str) -> Result<Self, tokio_postgres::Error> {
        // The log is walked in cursor order on the (transaction_id, global_position) index.
        // The planner misjudges how many rows a cursor range holds (row comparisons on xid8)
        // and would rather collect the whole rest of the log in a bitmap and sort it, for
        // every batch; this connection only reads the log, so those plans are switched off.
        // JIT compilation is off as well: the late-version lookup's estimated cost crosses
        // `jit_above_cost`, and compiling it took ~290 ms of a ~385 ms execution per batch on a
        // 1M-event log (EXPLAIN ANALYZE), the bulk of the reader's database CPU. Statements
        // are prepared once; each execution is still planned for its parameters (a generic
        // plan cannot drop the unused filters).
        client
            .batch_execute(
                "SET enable_bitmapscan = off; SET enable_sort = off; SET jit = off;
                 SET plan_cache_mode = force_custom_plan",
            )
            .await?;
        let events = format!("{}.events", quote_ident(schema));
        // Walked in cursor order on (transaction_id, global_position), filtered by category;
        // events of other types are returned without payload (see `ordering`).
        // `event_type || ''` keeps the planner off the event type index.
        let read = format!(
            "SELECT e.transaction_id::text::bigint, e.global_position, e.stream_id::text, e.version, e.event_id,
                    e.event_type::text,
                    CASE WHEN $4::text[] IS NULL OR (e.event_type || '') = ANY($4) THEN e.data::text END,
                    CASE WHEN $4::text[] IS NULL OR (e.event_type || '') = ANY($4) THEN e.metadata::text END,
                    e.timestamp
               FROM {events} e
              WHERE (e.transaction_id, e.global_position) > ($1::bigint::text::xid8, $2)
                AND e.transaction_id < $3::bigint::text::xid8
                AND ($5::text[] IS NULL OR split_part(e.stream_id, '-', 1) = ANY($5))
                AND (e.transaction_id, e.global_position) <= ($6::bigint::text::xid8, $7)
              ORDER BY e.transaction_id, e.global_position
              LIMIT $8"
        );
        // Per stream, an event after a cursor with a version below a given one (the highest
        // such version; the caller asks again until there is none), whatever the horizon:
        // one lookup per stream on the (stream_id, version) index. The ORDER BY version …
        // LIMIT inside keeps the planner on that index, instead of a hash join or a scan of
        // every event after the cursor. Not filtered by subscription: extending a batch over
        // an event the projection does not receive is harmless.
        let late = format!(
            "SELECT b.stream_id, later.transaction_id, later.global_position
               FROM unnest($1::text[], $2::bigint[]) AS b(stream_id, version)
              CROSS JOIN LATERAL (
                    SELECT e.transaction_id::text::bigint AS transaction_id, e.global_position
                      FROM {events} e
                     WHERE e.stream_id = b.stream_id AND e.version < b.version
                       AND (e.transaction_id, e.global_position) > ($3::bigint::text::xid8, $4)
                     ORDER BY e.version DESC
                     LIMIT 1
                   ) AS later"
        );
        let head = format!(
            "SELECT h.horizon, last.transaction_id, last.global_position
               FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon) AS h
               LEFT JOIN LATERAL (
                    SELECT e.transaction_id::text::bigint AS transaction_id, e.global_position FROM {events} e
                     WHERE e.transaction_id < h.horizon::text::xid8
                     ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1
                   ) AS last ON true"
        );
        let (read, late, head) =
            futures_util::try_join!(client.prepare(&read), client.prepare(&late), client.prepare(&head))?;
        Ok(LogReader { client, read, late, head, settled: Settled::default(), reads: 0 })
    }

    /// The visibility horizon (every transaction whose id is below it has finished, so the
    /// events below it are final) and the cursor of the last event below it, if any, in one
    /// round trip.
    pub async fn head(&self) -> Result<(i64, Option<Cursor>), tokio_postgres::Error> {
        let row = self.client.query_one(&self.head, &[]).await?;
        let last = row.get::<_, Option<i64>>(1).map(|transaction_id| Cursor { transaction_id, position: row.get(2) });
        Ok((row.get(0), last))
    }

    /// Up to `limit` events after `from` and below `horizon` of the categories `filter`
    /// receives, with every stream in version order (see [`ordering`](super::ordering)):
    /// extended up to a lower version that lies after the cut, or cut back before a stream
    /// whose lower version lies at or above the horizon. When the read reached the horizon
    /// untouched, the batch ends at `head` (the last event below the horizon, filtered or not)
    /// so that skipped stretches advance too.
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
        let mut rows = self.read_range(from, unbounded, horizon, filter, limit).await?;
        let full = rows.len() >= limit;
        // Events at or after the barrier wait for the horizon to pass a lower version.
        let mut barrier: Option<Cursor> = None;
        let (to, disordered) = loop {
            let cut = rows.last().map_or(from, |row| row.cursor);
            let spans = Spans::of(&rows);
            let lookups = self.settled.lookups(&spans, from);
            let late = if lookups.is_empty() { Vec::new() } else { self.late(&lookups, cut).await? };
            let blocked: Vec<&str> = late
                .iter()
                .filter(|(_, at)| at.transaction_id >= horizon || barrier.is_some_and(|b| *at >= b))
                .map(|(stream, _)| stream.as_str())
                .collect();
            if let Some(first) =
                rows.iter().filter(|r| blocked.contains(&r.event.stream_id.as_str())).map(|r| r.cursor).min()
            {
                let end = barrier.map_or(first, |b| b.min(first));
                rows.retain(|row| row.cursor < end);
                barrier = Some(end);
            } else if let Some(end) = late.iter().map(|(_, at)| *at).max() {
                rows.extend(self.read_range(cut, end, horizon, filter, usize::MAX).await?);
            } else {
                self.settled.record(&spans, cut);
                break (cut, spans.disordered());
            }
        };
        // A full read may still have reached the head: its last event is the last one below
        // the horizon. Nothing more can come until new events do, so it says so now (a log
        // whose length is a multiple of the batch size would otherwise never report the head).
        let at_head = barrier.is_none() && (!full || head.is_some_and(|head| to >= head));
        let to = match head {
            Some(head) if at_head => to.max(head),
            _ => to,
        };
        let mut events: Vec<Event> = rows.into_iter().filter(|row| row.wanted).map(|row| row.event).collect();
        if disordered {
            put_streams_in_version_order(&mut events);
        }
        Ok(Batch { from, to, events, at_head })
    }
}

/// An event row of the read query, with its cursor, and whether `filter` receives its type.
fn decode(row: &tokio_postgres::Row, filter: &Subscription) -> Scanned {
    let cursor = Cursor { transaction_id: row.get(0), position: row.get(1) };
    let event_id: uuid::Uuid = row.get(4);
    let event_type: String = row.get(5);
    let data: Option<String> = row.get(6);
    let metadata: Option<String> = row.get(7);
    let timestamp: chrono::DateTime<chrono::Utc> = row.get(8);
    let wanted = filter.event_types.as_ref().is_none_or(|types| types.contains(&event_type));
    let event = Event {
        global_position: cursor.position,
        stream_id: row.get(2),
        stream_version: row.get(3),
        event_id: event_id.hyphenated().to_string(),
        event_type,
        data: data.map(String::into_bytes).unwrap_or_default(),
        metadata: metadata.map(String::into_bytes).unwrap_or_default(),
        timestamp: timestamp.timestamp_micros(),
    };
    Scanned { cursor, wanted, event }
}
