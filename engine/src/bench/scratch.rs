//! The scratch database of a bench run: created empty, filled with the order domain's log.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::BenchError;
use super::writer::{self, Appender, Filled};
use crate::generate::orders::{GeneratedEvent, OrderConfig, OrderGenerator};
use crate::readmodel::quote_ident;

/// Orders sampled to learn how many events an order has on average, to size a log of N events.
const SAMPLE_ORDERS: u64 = 2_000;

/// Drops `database` (if it exists) and creates it empty, over a connection to `server_url`.
pub async fn recreate(server_url: &str, database: &str) -> Result<(), BenchError> {
    let admin = crate::db::connect(server_url).await?;
    // Two statements: DROP/CREATE DATABASE cannot run inside the implicit transaction of a
    // multi-statement string.
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(database))).await?;
    admin.batch_execute(&format!("CREATE DATABASE {}", quote_ident(database))).await?;
    Ok(())
}

/// Drops `database`, over a connection to `server_url`.
pub async fn drop(server_url: &str, database: &str) -> Result<(), BenchError> {
    let admin = crate::db::connect(server_url).await?;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(database))).await?;
    Ok(())
}

/// The first `events` events of a generated order log for `seed` (orders interleaved by time,
/// as a real log is; the last orders are cut off in progress), deterministic for a seed.
pub fn order_log(events: u64, seed: u64) -> impl Iterator<Item = GeneratedEvent> {
    order_log_from(OrderConfig { seed, ..OrderConfig::default() }, events)
}

/// The first `events` events of an order log for `seed` starting now: what a live writer
/// appends after the scratch log (new orders, interleaved by time as well).
pub fn live_log(seed: u64, events: u64) -> impl Iterator<Item = GeneratedEvent> {
    order_log_from(OrderConfig { seed, start: chrono::Utc::now(), ..OrderConfig::default() }, events)
}

/// The first `events` events of a log generated as `config` says (its `orders` are ignored:
/// there are enough of them for the log to be cut at `events`).
pub fn order_log_from(config: OrderConfig, events: u64) -> impl Iterator<Item = GeneratedEvent> {
    let per_order = events_per_order(OrderConfig { orders: SAMPLE_ORDERS, ..config.clone() });
    // A margin, so that the log is cut at `events` rather than running out before.
    let orders = (events as f64 / per_order * 1.1).ceil() as u64 + 1;
    OrderGenerator::new(OrderConfig { orders, ..config }).take(events as usize)
}

/// Average events per order of the orders `sample` generates.
pub fn events_per_order(sample: OrderConfig) -> f64 {
    let orders = sample.orders.max(1) as f64;
    OrderGenerator::new(sample).count() as f64 / orders
}

/// Migrates `schema` of the database at `url`, appends [`order_log`] to it in many
/// transactions ([`writer::runs`]: a few dozen events each, as producers append, not one
/// transaction for the whole log), and leaves the tables vacuumed and analysed (hint bits set
/// and statistics fresh, so that the first reader measured does not pay for them) and the
/// whole log below the visibility horizon (see [`wait_visible`]).
pub async fn fill(url: &str, schema: &str, events: u64, seed: u64) -> Result<Filled, BenchError> {
    let mut client = crate::db::connect(url).await?;
    crate::migrate::migrate(&mut client, schema).await?;
    // A scratch log needs no durability: without this every one of its thousands of commits
    // would wait for its WAL flush (~4 ms each on the development machine).
    client.batch_execute("SET synchronous_commit = off").await?;
    let appender = Appender::new(client, schema).await?;
    let filled = writer::fill(&appender, writer::runs(order_log(events, seed), seed)).await?;
    let client = crate::db::connect(url).await?;
    let schema = quote_ident(schema);
    client.batch_execute(&format!("VACUUM (ANALYZE) {schema}.events, {schema}.streams")).await?;
    wait_visible(&client, &schema).await?;
    Ok(filled)
}

/// How long [`wait_visible`] waits.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Waits until the last transaction of the log in `schema` (quoted) is below the visibility
/// horizon, so that the engine can read all of it. Transaction ids are the server's: a
/// transaction open in any database of the server, older than the log's last one, holds the
/// horizon back until it ends.
async fn wait_visible(client: &Client, schema: &str) -> Result<(), BenchError> {
    let sql = format!(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())
                > (SELECT transaction_id FROM {schema}.events ORDER BY transaction_id DESC LIMIT 1)"
    );
    let started = Instant::now();
    while client.query_one(&sql, &[]).await?.get::<_, Option<bool>>(0) == Some(false) {
        if started.elapsed() > VISIBLE_TIMEOUT {
            return Err(BenchError::NotVisible(VISIBLE_TIMEOUT));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::order_log;

    #[test]
    fn the_log_has_exactly_the_events_asked_for_and_depends_only_on_the_seed() {
        let first: Vec<_> = order_log(3_000, 7).collect();
        assert_eq!(first.len(), 3_000);
        assert_eq!(first, order_log(3_000, 7).collect::<Vec<_>>());
        assert_ne!(first, order_log(3_000, 8).collect::<Vec<_>>());
        // Interleaved: the first hundred events belong to more than one stream.
        let streams: std::collections::HashSet<_> = first[..100].iter().map(|e| &e.stream_id).collect();
        assert!(streams.len() > 1);
    }
}
