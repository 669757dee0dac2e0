//! `refract retry NAME`: resuming a failed projection in a running engine.
//!
//! A failed worker keeps its connection (and with it the projection's lock) and LISTENs on
//! [`CHANNEL`] on a connection of its own. `refract retry` checks in `refract_status` that the
//! projection is failed and sends `NOTIFY refract_retry, 'NAME'`; the worker then drops its lock
//! and starts a new session from its checkpoint, with a fresh instance, as after a restart.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::readmodel::quote_ident;

/// The channel of retry requests; the payload is the projection's name.
pub const CHANNEL: &str = "refract_retry";
/// Pause before listening again after the listening connection was lost.
const LISTEN_RETRY: Duration = Duration::from_secs(2);

/// Waits until a retry of one of `names` is requested (`true`) or `shutdown` becomes `true`
/// (`false`). A lost listening connection is reopened.
pub(super) async fn requested(database_url: &str, names: &[&str], shutdown: &mut watch::Receiver<bool>) -> bool {
    loop {
        tokio::select! {
            result = listen(database_url, names) => match result {
                Ok(()) => return true,
                Err(error) => tracing::warn!(%error, "listening for retry requests failed; listening again"),
            },
            _ = shutdown.wait_for(|stop| *stop) => return false,
        }
        tokio::select! {
            _ = tokio::time::sleep(LISTEN_RETRY) => {}
            _ = shutdown.wait_for(|stop| *stop) => return false,
        }
    }
}

/// Listens on [`CHANNEL`] until a notification names one of `names`.
async fn listen(database_url: &str, names: &[&str]) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = tokio_postgres::connect(database_url, NoTls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let sql = format!("LISTEN {}", quote_ident(CHANNEL));
    let listen = client.batch_execute(&sql);
    tokio::pin!(listen);
    // The connection must be polled for the LISTEN to complete, and afterwards to receive.
    let mut listening = false;
    loop {
        tokio::select! {
            result = &mut listen, if !listening => {
                result?;
                listening = true;
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(n))) if names.contains(&n.payload()) => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            },
        }
    }
}

/// Why a retry could not be requested.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// No engine has published a status for the projection.
    #[error("no projection named {0:?} has a status: is it loaded by a running engine?")]
    Unknown(String),
    /// The projection is not failed.
    #[error("projection {name:?} is {state}, not failed: there is nothing to retry")]
    NotFailed {
        /// The projection.
        name: String,
        /// Its state.
        state: String,
    },
    /// The database refused.
    #[error("database: {}", crate::db::describe(.0))]
    Db(#[from] tokio_postgres::Error),
}

/// The published state of projection `name` and its last error (empty when none).
pub async fn state(client: &Client, store_schema: &str, name: &str) -> Result<(String, String), RetryError> {
    let sql = format!(
        "SELECT state, coalesce(last_error, '') FROM {}.refract_status WHERE name = $1",
        quote_ident(store_schema)
    );
    let row = client.query_opt(sql.as_str(), &[&name]).await?.ok_or_else(|| RetryError::Unknown(name.to_owned()))?;
    Ok((row.get(0), row.get(1)))
}

/// Asks the engine that owns the failed projection `name` to resume it; returns the error it
/// failed with.
pub async fn request(client: &Client, store_schema: &str, name: &str) -> Result<String, RetryError> {
    let (state, error) = state(client, store_schema, name).await?;
    if state != super::State::Failed.as_str() {
        return Err(RetryError::NotFailed { name: name.to_owned(), state });
    }
    client.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &name]).await?;
    Ok(error)
}
