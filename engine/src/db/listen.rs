//! Waiting for PostgreSQL notifications (`LISTEN`) on a connection of its own.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::readmodel::quote_ident;

/// Pause before listening again after the listening connection was lost.
const LISTEN_RETRY: Duration = Duration::from_secs(2);

/// Listens on `channel` of the database at `url` until `on_message` accepts a payload
/// (`true`) or `shutdown` becomes `true` (`false`). A lost connection is reopened after a
/// pause; `on_listening` runs each time `LISTEN` has taken effect (notifications sent before
/// that were missed).
pub async fn listen(
    url: &str,
    channel: &str,
    shutdown: &mut watch::Receiver<bool>,
    mut on_listening: impl FnMut(),
    mut on_message: impl FnMut(&str) -> bool,
) -> bool {
    loop {
        tokio::select! {
            result = listen_once(url, channel, &mut on_listening, &mut on_message) => match result {
                Ok(true) => return true,
                Ok(false) => tracing::warn!(channel, "the listening connection closed; listening again"),
                Err(error) => tracing::warn!(channel, %error, "listening failed; listening again"),
            },
            _ = shutdown.wait_for(|stop| *stop) => return false,
        }
        tokio::select! {
            _ = tokio::time::sleep(LISTEN_RETRY) => {}
            _ = shutdown.wait_for(|stop| *stop) => return false,
        }
    }
}

/// One connection's worth of [`listen`]: `Ok(false)` when the connection closed.
async fn listen_once(
    url: &str,
    channel: &str,
    on_listening: &mut impl FnMut(),
    on_message: &mut impl FnMut(&str) -> bool,
) -> Result<bool, tokio_postgres::Error> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let sql = format!("LISTEN {}", quote_ident(channel));
    let listen = client.batch_execute(&sql);
    tokio::pin!(listen);
    // The connection must be polled for the LISTEN to complete, and afterwards to receive.
    let mut listening = false;
    loop {
        tokio::select! {
            result = &mut listen, if !listening => {
                result?;
                listening = true;
                on_listening();
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(n))) => if on_message(n.payload()) { return Ok(true) },
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(false),
            },
        }
    }
}
