//! Committing a batch: the read-model writes and the checkpoint in one transaction.

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::cursor::Cursor;
use crate::readmodel::{self, Statement, quote_ident};

/// Why a batch was not committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The checkpoint is not where this engine left it: another engine wrote the projection.
    /// The batch was rolled back.
    #[error("the checkpoint of {name} moved away from {expected}; batch rolled back")]
    CheckpointMoved {
        /// The projection.
        name: String,
        /// Where this engine expected it.
        expected: Cursor,
    },
    /// PostgreSQL refused or failed the transaction.
    #[error("{}", crate::db::describe(.0))]
    Db(#[from] tokio_postgres::Error),
}

impl CommitError {
    /// Whether trying again later may succeed (a lost connection, a serialization failure, a
    /// deadlock, a server shutting down) rather than the batch itself being at fault.
    pub fn is_transient(&self) -> bool {
        match self {
            CommitError::CheckpointMoved { .. } => true,
            CommitError::Db(e) => is_transient(e),
        }
    }
}

/// Whether a database error is worth retrying (see [`CommitError::is_transient`]).
pub fn is_transient(error: &tokio_postgres::Error) -> bool {
    let Some(code) = error.code() else {
        // No SQLSTATE: a closed connection or an I/O error is transient; an error the client
        // found in the statement itself (wrong parameter count, a value it cannot encode) is not.
        let io = std::error::Error::source(error).is_some_and(|e| e.is::<std::io::Error>());
        return error.is_closed() || io;
    };
    let class = &code.code()[..2];
    matches!(class, "08" | "40" | "53" | "57" | "58")
        || *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
}

/// Applies `statements` and moves the checkpoint of the projection version whose schema is
/// `name` (also its checkpoint key) from `from` to `to`, atomically, each statement within
/// `statement_timeout`.
///
/// `client` may be logged in as the version's own role: the checkpoint moves through
/// `refract_advance`, which lets a role move its own checkpoint only. It is moved twice: first
/// in place (which locks the row and checks that it stands at `from`, so that a fenced-off
/// version stops before it writes), then to `to` after the statements, which fails if they
/// touched it.
pub async fn commit_batch(
    client: &mut Client,
    store_schema: &str,
    name: &str,
    (from, to): (Cursor, Cursor),
    statements: &[Statement],
    statement_timeout: Duration,
) -> Result<(), CommitError> {
    let tx = client.transaction().await?;
    // Raw SQL operations of the guest name the projection's tables unqualified. A batch's
    // statements are planned fresh and run once: compiling them (JIT) costs more than it saves.
    tx.batch_execute(&format!(
        "SET LOCAL search_path TO {}; SET LOCAL statement_timeout = {}; SET LOCAL jit = off",
        quote_ident(name),
        statement_timeout.as_millis().max(1)
    ))
    .await?;
    let advance = format!("SELECT {}.refract_advance($1, $2, $3, $4, $5)", quote_ident(store_schema));
    let step = async |a: Cursor, b: Cursor| -> Result<(), CommitError> {
        let moved: bool = tx
            .query_one(&advance, &[&name, &a.transaction_id, &a.position, &b.transaction_id, &b.position])
            .await?
            .get(0);
        if moved { Ok(()) } else { Err(CommitError::CheckpointMoved { name: name.to_owned(), expected: from }) }
    };
    step(from, from).await?;
    readmodel::execute(&tx, statements).await?;
    step(from, to).await?;
    tx.commit().await?;
    Ok(())
}

/// The committed checkpoint under `key` (a version's schema), read back from the database;
/// `None` when the version has none (it was replaced or dropped).
pub async fn read_checkpoint(
    client: &Client,
    store_schema: &str,
    key: &str,
) -> Result<Option<Cursor>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "SELECT transaction_id::text::bigint, position FROM {}.checkpoints WHERE projection_name = $1",
                quote_ident(store_schema)
            ),
            &[&key],
        )
        .await?;
    Ok(row.map(|r| Cursor { transaction_id: r.get(0), position: r.get(1) }))
}
