//! The yardsticks: how fast PostgreSQL delivers the log, and how fast it takes an upsert, with
//! nothing of the engine in between.

use std::time::Instant;

use bytes::Bytes;
use futures_util::SinkExt as _;
use serde::Serialize;
use tokio_postgres::Client;

use super::BenchError;
use super::procstat::cpu_seconds;
use crate::readmodel::quote_ident;
use crate::runner::Cursor;
use crate::runner::reader::LogReader;

/// The raw read limit: the whole log read in the engine's order by its read query alone.
#[derive(Debug, Clone, Serialize)]
pub struct RawRead {
    /// Events read.
    pub events: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// `events / seconds`.
    pub events_per_second: f64,
    /// CPU seconds of this process (reading and decoding rows).
    pub client_cpu_seconds: Option<f64>,
    /// CPU seconds of the PostgreSQL backend serving the read.
    pub postgres_cpu_seconds: Option<f64>,
}

/// The raw write limit: one set-based upsert of `rows` rows shaped like `order_summary`'s.
#[derive(Debug, Clone, Serialize)]
pub struct RawWrite {
    /// Rows written.
    pub rows: u64,
    /// Wall-clock seconds, from the start of the COPY to the COMMIT.
    pub seconds: f64,
    /// `rows / seconds`.
    pub rows_per_second: f64,
    /// CPU seconds of the PostgreSQL backend that wrote them.
    pub postgres_cpu_seconds: Option<f64>,
}

/// The process id of the backend serving `client`.
pub async fn backend_pid(client: &Client) -> Result<u32, BenchError> {
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
    Ok(pid.unsigned_abs())
}

/// Reads the whole log of `schema` with the engine's own read query and nothing else
/// ([`LogReader::scan`]: its connection settings, query and row decoding, unfiltered and
/// without the batch extension the engine adds), `batch_size` events per read, on a connection
/// of its own, and does nothing with the events.
pub async fn raw_read(url: &str, schema: &str, batch_size: usize) -> Result<RawRead, BenchError> {
    let client = crate::db::connect(url).await?;
    let backend = backend_pid(&client).await?;
    let reader = LogReader::new(client, schema).await?;
    let (horizon, _) = reader.head().await?;
    let (backend_before, client_before) = (cpu_seconds(backend), cpu_seconds(std::process::id()));
    let started = Instant::now();
    let (mut from, mut events) = (Cursor::START, 0u64);
    loop {
        let batch = reader.scan(from, horizon, batch_size).await?;
        events += batch.len() as u64;
        match batch.last() {
            Some((cursor, _)) if batch.len() >= batch_size => from = *cursor,
            _ => break,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(RawRead {
        events,
        seconds,
        events_per_second: events as f64 / seconds,
        client_cpu_seconds: delta(client_before, cpu_seconds(std::process::id())),
        postgres_cpu_seconds: delta(backend_before, cpu_seconds(backend)),
    })
}

/// The cursor of the last event of the log of `schema` that the engine can read now.
pub async fn log_head(url: &str, schema: &str) -> Result<Cursor, BenchError> {
    let reader = LogReader::new(crate::db::connect(url).await?, schema).await?;
    Ok(reader.head().await?.1.unwrap_or(Cursor::START))
}

/// The number of rows `order_summary` ends with on the log of `schema`: one per order stream
/// with an `OrderCreated`.
pub async fn order_count(client: &Client, schema: &str) -> Result<u64, BenchError> {
    let sql = format!(
        "SELECT count(DISTINCT stream_id) FROM {}.events WHERE event_type = 'OrderCreated'",
        quote_ident(schema)
    );
    Ok(client.query_one(&sql, &[]).await?.get::<_, i64>(0).unsigned_abs())
}

/// The columns of `order_summary` (`ORDER_DOMAIN.md`).
const ORDER_SUMMARY_COLUMNS: &str = "order_id uuid PRIMARY KEY, customer_id uuid NOT NULL, status text NOT NULL,
     total numeric(12,2) NOT NULL, item_count integer NOT NULL, version bigint NOT NULL,
     updated_at timestamptz NOT NULL";

/// Writes `rows` rows shaped like `order_summary`'s into an empty table the fastest set-based
/// way: COPY into a temporary staging table, then one `INSERT … ON CONFLICT DO UPDATE`, in one
/// transaction. The table lives in schema `refract_bench` and is dropped afterwards.
pub async fn raw_write(client: &mut Client, rows: u64) -> Result<RawWrite, BenchError> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS refract_bench;
             DROP TABLE IF EXISTS refract_bench.raw_write;
             CREATE TABLE refract_bench.raw_write ({ORDER_SUMMARY_COLUMNS})"
        ))
        .await?;
    let payload = Bytes::from(copy_text(rows));
    let backend = backend_pid(client).await?;
    let backend_before = cpu_seconds(backend);
    let started = Instant::now();
    let tx = client.transaction().await?;
    tx.batch_execute("CREATE TEMPORARY TABLE raw_write_staging (LIKE refract_bench.raw_write) ON COMMIT DROP").await?;
    let sink = tx.copy_in("COPY raw_write_staging FROM STDIN").await?;
    futures_util::pin_mut!(sink);
    sink.send(payload).await?;
    sink.finish().await?;
    tx.batch_execute(
        "INSERT INTO refract_bench.raw_write SELECT * FROM raw_write_staging
         ON CONFLICT (order_id) DO UPDATE SET customer_id = EXCLUDED.customer_id, status = EXCLUDED.status,
             total = EXCLUDED.total, item_count = EXCLUDED.item_count, version = EXCLUDED.version,
             updated_at = EXCLUDED.updated_at",
    )
    .await?;
    tx.commit().await?;
    let seconds = started.elapsed().as_secs_f64();
    let postgres_cpu_seconds = delta(backend_before, cpu_seconds(backend));
    client.batch_execute("DROP SCHEMA refract_bench CASCADE").await?;
    Ok(RawWrite { rows, seconds, rows_per_second: rows as f64 / seconds, postgres_cpu_seconds })
}

/// `rows` distinct rows of `order_summary`'s shape in COPY's text format.
fn copy_text(rows: u64) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(rows as usize * 120);
    for i in 0..rows {
        let order = uuid::Uuid::from_u128(u128::from(i) << 64 | 0x4000_8000_0000_0001);
        let customer = uuid::Uuid::from_u128(u128::from(i % 5_000) << 64 | 0x4000_8000_0000_0002);
        let status = ["draft", "confirmed", "cancelled", "shipped"][(i % 4) as usize];
        let (cents, items) = (1_000 + i * 37 % 100_000, 1 + i % 9);
        writeln!(
            out,
            "{order}\t{customer}\t{status}\t{}.{:02}\t{items}\t{}\t2024-03-0{} 12:34:56.789+00",
            cents / 100,
            cents % 100,
            3 + i % 9,
            1 + i % 7
        )
        .expect("writing to a Vec cannot fail");
    }
    out
}

fn delta(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    Some(after? - before?)
}

#[cfg(test)]
mod tests {
    use super::copy_text;

    #[test]
    fn copy_rows_are_distinct_and_have_seven_columns() {
        let text = String::from_utf8(copy_text(1_000)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1_000);
        assert!(lines.iter().all(|l| l.split('\t').count() == 7));
        let keys: std::collections::HashSet<&str> = lines.iter().map(|l| l.split('\t').next().unwrap()).collect();
        assert_eq!(keys.len(), 1_000);
    }
}
