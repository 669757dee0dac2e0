//! Reading a stream, and the whole log.

use tokio_postgres::Row;

use super::EventStore;
use super::error::StoreError;
use super::event::RecordedEvent;

impl EventStore {
    /// The events of `stream_id` with version `from_version` or later, in version order
    /// (`from_version` 1: the whole stream). Empty when the stream does not exist.
    pub async fn read_stream(&self, stream_id: &str, from_version: i64) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = self.client.query(&self.statements.read_stream, &[&stream_id, &from_version]).await?;
        Ok(rows.iter().map(recorded).collect())
    }

    /// Up to `limit` events with a `global_position` above `after_position`, in position order.
    ///
    /// Positions are taken at insert time, not at commit: with concurrent writers an event may
    /// become visible after events with higher positions. For tailing, read in
    /// `(transaction_id, global_position)` order below the visibility horizon instead.
    pub async fn read_all(&self, after_position: i64, limit: i64) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = self.client.query(&self.statements.read_all, &[&after_position, &limit]).await?;
        Ok(rows.iter().map(recorded).collect())
    }
}

fn recorded(row: &Row) -> RecordedEvent {
    RecordedEvent {
        global_position: row.get(0),
        transaction_id: row.get(1),
        stream_id: row.get(2),
        version: row.get(3),
        event_id: row.get(4),
        event_type: row.get(5),
        data: row.get(6),
        metadata: row.get(7),
        timestamp: row.get(8),
    }
}
