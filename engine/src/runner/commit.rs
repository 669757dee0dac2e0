//! Committing a batch: the read-model writes and the checkpoint in one transaction.

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

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

/// Most statements a [`Committer`] keeps prepared (a projection's raw SQL may differ each time).
const PREPARED: usize = 256;

/// The connection that commits a projection's batches, with the statements it prepared.
///
/// A batch takes one round trip: BEGIN, the checkpoint's check, the writes, the checkpoint's move
/// and COMMIT are all sent before the first reply is awaited (pipelined), and each statement is
/// prepared once per connection (a statement not prepared yet waits for those before it: a
/// raw one may create what the next names).
pub struct Committer {
    client: Client,
    /// Prepared statements by SQL text.
    prepared: HashMap<String, tokio_postgres::Statement>,
}

impl Committer {
    /// Commits over `client`.
    pub fn new(client: Client) -> Self {
        Committer { client, prepared: HashMap::new() }
    }

    /// Applies `statements` and moves the checkpoint of the projection version whose schema is
    /// `name` (also its checkpoint key) from `from` to `to`, atomically, each statement within
    /// `statement_timeout`.
    ///
    /// The connection may be logged in as the version's own role: the checkpoint moves through
    /// `refract_advance_or_raise`, which lets a role move its own checkpoint only and aborts the
    /// transaction when the checkpoint is not where expected. It is moved twice: first
    /// in place (which locks the row and checks that it stands at `from`: a fenced-off
    /// version's writes, sent with it, then fail on the aborted transaction and its COMMIT
    /// rolls back), then to `to` after the statements, which fails if they touched it.
    pub async fn commit(
        &mut self,
        store_schema: &str,
        name: &str,
        range: (Cursor, Cursor),
        statements: &[Statement],
        statement_timeout: Duration,
    ) -> Result<(), CommitError> {
        let result = self.transact(store_schema, name, range, statements, statement_timeout).await;
        if result.is_err() && !self.client.is_closed() {
            // No transaction stays open behind a batch that did not commit.
            let _ = self.client.batch_execute("ROLLBACK").await;
        }
        result
    }

    async fn transact(
        &mut self,
        store_schema: &str,
        name: &str,
        (from, to): (Cursor, Cursor),
        statements: &[Statement],
        statement_timeout: Duration,
    ) -> Result<(), CommitError> {
        let begin = self.prepare("BEGIN").await?;
        // Raw SQL operations of the guest name the projection's tables unqualified. A batch's
        // statements are planned for its own values, as they were when prepared for each
        // batch: a generic plan would assume arrays of unknown size. Compiling them (JIT)
        // costs more than it saves.
        let settings = self
            .prepare(
                "SELECT set_config('search_path', $1, true), set_config('statement_timeout', $2, true), \
                 set_config('jit', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true)",
            )
            .await?;
        // Raises CHECKPOINT_MOVED unless the checkpoint moved: nothing after it in the
        // transaction runs, and its COMMIT rolls back.
        let advance = self
            .prepare(&format!("SELECT {}.refract_advance_or_raise($1, $2, $3, $4, $5)", quote_ident(store_schema)))
            .await?;
        let commit = self.prepare("COMMIT").await?;
        let (search_path, timeout) = (quote_ident(name), statement_timeout.as_millis().max(1).to_string());
        let mut pipeline: Vec<(tokio_postgres::Statement, Vec<&(dyn ToSql + Sync)>)> = vec![
            (begin, vec![]),
            (settings, vec![&search_path, &timeout]),
            (advance.clone(), vec![&name, &from.transaction_id, &from.position, &from.transaction_id, &from.position]),
        ];
        for statement in statements {
            let prepared = match self.prepared.get(&statement.sql) {
                Some(prepared) => prepared.clone(),
                None => {
                    // Prepared once the statements before it ran: a raw one may create what it names.
                    run(&self.client, &pipeline).await.map_err(|e| moved_or(e, name, from))?;
                    pipeline.clear();
                    self.prepare(&statement.sql).await?
                }
            };
            pipeline.push((prepared, statement.params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()));
        }
        pipeline.push((advance, vec![&name, &from.transaction_id, &from.position, &to.transaction_id, &to.position]));
        pipeline.push((commit, vec![]));
        run(&self.client, &pipeline).await.map_err(|e| moved_or(e, name, from))?;
        Ok(())
    }

    /// The statement prepared from `sql`, prepared now if it was not.
    async fn prepare(&mut self, sql: &str) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        if let Some(prepared) = self.prepared.get(sql) {
            return Ok(prepared.clone());
        }
        let prepared = self.client.prepare(sql).await?;
        if self.prepared.len() >= PREPARED
            && let Some(evicted) = self.prepared.keys().next().cloned()
        {
            self.prepared.remove(&evicted);
        }
        self.prepared.insert(sql.to_owned(), prepared.clone());
        Ok(prepared)
    }
}

/// The SQLSTATE `refract_advance_or_raise` raises when the checkpoint is not where it was expected.
const CHECKPOINT_MOVED: &str = "RF001";

/// `error`, or [`CommitError::CheckpointMoved`] when it says the checkpoint of `name` was not at `from`.
fn moved_or(error: tokio_postgres::Error, name: &str, from: Cursor) -> CommitError {
    match error.code() {
        Some(code) if code.code() == CHECKPOINT_MOVED => {
            CommitError::CheckpointMoved { name: name.to_owned(), expected: from }
        }
        _ => CommitError::Db(error),
    }
}

/// Runs `statements` with their parameters, pipelined (see [`readmodel::execute`]).
async fn run(
    client: &Client,
    statements: &[(tokio_postgres::Statement, Vec<&(dyn ToSql + Sync)>)],
) -> Result<Vec<u64>, tokio_postgres::Error> {
    let statements: Vec<_> = statements.iter().map(|(statement, params)| (statement, params.as_slice())).collect();
    readmodel::execute(client, &statements).await
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
