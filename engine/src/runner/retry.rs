//! `refract retry NAME`: resuming a failed projection in a running engine.
//!
//! A failed worker keeps its connection (and with it the projection's lock) and LISTENs on
//! [`CHANNEL`] on a connection of its own. `refract retry` checks in `refract_status` that the
//! projection is failed and sends `NOTIFY refract_retry, 'NAME'`; the worker then drops its lock
//! and starts a new session from its checkpoint, with a fresh instance, as after a restart.

use tokio::sync::watch;
use tokio_postgres::Client;

use crate::readmodel::quote_ident;

/// The channel of retry requests; the payload is the projection's name.
pub const CHANNEL: &str = "refract_retry";
/// Waits until a retry of one of `names` is requested (`true`) or `shutdown` becomes `true`
/// (`false`).
pub(super) async fn requested(database_url: &str, names: &[&str], shutdown: &mut watch::Receiver<bool>) -> bool {
    crate::db::listen(database_url, CHANNEL, shutdown, || {}, |payload| names.contains(&payload)).await
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
