//! Background tasks of a running engine: waking on NOTIFY, publishing status.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, NoTls};

use super::RunConfig;
use super::status::{State, StatusBoard};
use crate::readmodel::quote_ident;

/// How often the status table is refreshed.
const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);
/// Pause before listening again after the listening connection was lost.
const LISTEN_RETRY: Duration = Duration::from_secs(2);

/// LISTENs for the event store's notifications and signals `notified` on each, until
/// shutdown. A lost connection is reopened; meanwhile the coordinator polls.
pub async fn listen(config: RunConfig, notified: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            result = listen_once(&config, &notified) => {
                if let Err(error) = result {
                    tracing::warn!(%error, "listening for new events failed; polling until it is back");
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(LISTEN_RETRY) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

async fn listen_once(config: &RunConfig, notified: &Notify) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = tokio_postgres::connect(&config.database_url, NoTls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let sql = format!("LISTEN {}", quote_ident(crate::store::NOTIFY_CHANNEL));
    let listen = client.batch_execute(&sql);
    tokio::pin!(listen);
    // The connection must be polled for the LISTEN to complete, and afterwards to receive.
    let mut listening = false;
    loop {
        tokio::select! {
            result = &mut listen, if !listening => {
                result?;
                listening = true;
                // Events may have arrived before LISTEN took effect.
                notified.notify_one();
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => notified.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            },
        }
    }
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
