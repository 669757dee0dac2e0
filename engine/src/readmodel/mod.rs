//! Writing read models: a batch's operations become set-based SQL in the projection's schema.

mod plan;
mod tables;
mod value;

pub use plan::{Param, PlanError, Statement, canonical, plan, plan_with_new_rows};
pub use tables::{Tables, quote_ident};
pub use value::{ValueError, to_text};

use std::future::Future;
use std::task::Poll;

use futures_util::future::maybe_done;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

/// Runs each prepared statement of `statements` with its parameters on `client` (inside the
/// caller's transaction), pipelined: every request is sent before the first reply is awaited,
/// and the server runs them in order. Returns the rows each affected (or returned), or the
/// first error.
pub async fn execute(
    client: &Client,
    statements: &[(&tokio_postgres::Statement, &[&(dyn ToSql + Sync)])],
) -> Result<Vec<u64>, tokio_postgres::Error> {
    let mut replies: Vec<_> =
        statements.iter().map(|(statement, params)| Box::pin(maybe_done(client.execute(*statement, params)))).collect();
    // A request is sent when its future is first polled: all of them, in order. One that fails
    // before it is sent (a parameter it cannot encode, a wrong number of them) stops the ones
    // after it: they would run without it, a COMMIT among them.
    std::future::poll_fn(|cx| {
        for reply in &mut replies {
            if reply.as_mut().poll(cx).is_ready() && matches!(reply.as_mut().output_mut(), Some(Err(_))) {
                break;
            }
        }
        Poll::Ready(())
    })
    .await;
    let mut affected = Vec::with_capacity(replies.len());
    for mut reply in replies {
        (&mut reply).await;
        affected.push(reply.as_mut().take_output().expect("a reply awaited to its end is there")?);
    }
    Ok(affected)
}
