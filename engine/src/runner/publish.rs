//! Background tasks of a running engine: waking on NOTIFY, publishing status.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_postgres::types::ToSql;

use super::RunConfig;
use super::status::{State, StatusBoard};
use crate::readmodel::quote_ident;

/// How often the status table is refreshed.
const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// LISTENs for the event store's notifications and signals `notified` on each, until
/// shutdown. A lost connection is reopened; meanwhile the coordinator polls.
pub async fn listen(config: RunConfig, notified: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    // Events may have arrived before LISTEN took effect: each time it does, read once.
    let wake = || notified.notify_one();
    let on_message = |_: &str| {
        notified.notify_one();
        false
    };
    crate::db::listen(&config.database_url, crate::store::NOTIFY_CHANNEL, &mut shutdown, wake, on_message).await;
}

/// Writes the status of the projections this engine owns to `refract_status` every
/// [`PUBLISH_INTERVAL`], until shutdown (and once more then).
pub async fn publish_status(config: RunConfig, status: StatusBoard, mut shutdown: watch::Receiver<bool>) {
    let engine = format!("{}:{}", hostname(), std::process::id());
    let sql = format!(
        "INSERT INTO {}.refract_status AS s (name, content_hash, module_version, state, events_per_second,
                events_applied, batches, last_error, last_error_position, last_error_event_id, engine, notice,
                updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now())
         ON CONFLICT (name) DO UPDATE SET content_hash = EXCLUDED.content_hash,
             module_version = EXCLUDED.module_version, state = EXCLUDED.state,
             events_per_second = EXCLUDED.events_per_second, events_applied = EXCLUDED.events_applied,
             batches = EXCLUDED.batches, last_error = EXCLUDED.last_error,
             last_error_position = EXCLUDED.last_error_position,
             last_error_event_id = EXCLUDED.last_error_event_id, engine = EXCLUDED.engine,
             notice = EXCLUDED.notice, updated_at = now()",
        quote_ident(&config.store_schema)
    );
    let mut client = None;
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(PUBLISH_INTERVAL) => false,
            _ = shutdown.wait_for(|stop| *stop) => true,
        };
        if client.is_none() {
            client = crate::db::connect(&config.database_url).await.ok();
        }
        if let Some(c) = &client {
            for (name, s) in status.snapshot() {
                if s.state == State::Standby {
                    continue; // the owning engine publishes this one
                }
                let error = s.last_error.as_ref();
                let (state, events, batches) = (s.state.as_str(), s.events as i64, s.batches as i64);
                let result = c
                    .execute(
                        &sql,
                        &[
                            &name as &(dyn ToSql + Sync),
                            &s.content_hash,
                            &s.module_version,
                            &state,
                            &s.rate(),
                            &events,
                            &batches,
                            &error.map(|e| e.message.as_str()),
                            &error.and_then(|e| e.position),
                            &error.and_then(|e| e.event_id.as_deref()),
                            &engine,
                            &s.notice,
                        ],
                    )
                    .await;
                if let Err(error) = result {
                    tracing::debug!(%error, "publishing status failed; reconnecting");
                    client = None;
                    break;
                }
            }
        }
        if stopping {
            return;
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "localhost".to_owned(), |h| h.trim().to_owned())
}
