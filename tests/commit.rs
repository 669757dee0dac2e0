//! Committing a batch against a real PostgreSQL: its writes and its checkpoint commit together
//! or not at all, also now that the check, the writes, the move and COMMIT go out in one round
//! trip (a failed check must abort the transaction, not merely report false, and a statement
//! that cannot be sent must keep the rest from being sent).

use std::time::Duration;

use refract::readmodel::Statement;
use refract::runner::Cursor;
use refract::runner::commit::{CommitError, Committer};
use refract_test_harness::TestDb;
use tokio_postgres::Client;

const TIMEOUT: Duration = Duration::from_secs(30);

fn at(position: i64) -> Cursor {
    Cursor { transaction_id: 0, position }
}

/// Commits the raw statements `sql` as projection `p`'s batch from position `from` to `to`.
async fn commit(committer: &mut Committer, (from, to): (i64, i64), sql: &[&str]) -> Result<(), CommitError> {
    let statements: Vec<Statement> =
        sql.iter().map(|sql| Statement { sql: (*sql).to_owned(), params: Vec::new() }).collect();
    committer.commit("public", "p", (at(from), at(to)), &statements, TIMEOUT).await
}

/// The checkpoint of `p`, the keys of its table and the sum of their counters, read over `client`.
async fn committed(client: &Client) -> anyhow::Result<(i64, Vec<i32>, i64)> {
    let position = client.query_one("SELECT position FROM checkpoints WHERE projection_name = 'p'", &[]).await?.get(0);
    let rows = client.query("SELECT k, n FROM p.t ORDER BY k", &[]).await?;
    let counted = rows.iter().map(|r| i64::from(r.get::<_, i32>(1))).sum();
    Ok((position, rows.iter().map(|r| r.get(0)).collect(), counted))
}

/// Counts one more on every row: prepared by the first batch, so that later batches send it in
/// the same round trip as the checkpoint check.
const COUNT: &str = "UPDATE t SET n = n + 1";

#[tokio::test]
async fn a_batch_commits_with_its_checkpoint_or_not_at_all() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let admin = db.connect().await?;
    admin
        .batch_execute(
            "CREATE SCHEMA p; CREATE TABLE p.t (k int PRIMARY KEY, n int NOT NULL DEFAULT 0);
             INSERT INTO checkpoints (projection_name, transaction_id, position) VALUES ('p', '0', 0)",
        )
        .await?;
    let mut committer = Committer::new(db.connect().await?);

    // Statements name the projection's tables unqualified: its schema is on the search path.
    commit(&mut committer, (0, 10), &["INSERT INTO t VALUES (1)", COUNT]).await?;
    assert_eq!(committed(&admin).await?, (10, vec![1], 1));

    // A batch from where the checkpoint no longer stands (another engine moved it): its writes
    // and COMMIT go out with the check, which must abort the transaction.
    let stale = commit(&mut committer, (0, 20), &[COUNT]).await;
    assert!(matches!(stale, Err(CommitError::CheckpointMoved { expected, .. }) if expected == at(0)), "{stale:?}");
    assert_eq!(committed(&admin).await?, (10, vec![1], 1), "the stale batch wrote");

    // Writes that move the checkpoint themselves: the final move finds it gone.
    let touched = commit(
        &mut committer,
        (10, 30),
        &["INSERT INTO t VALUES (3)", "UPDATE public.checkpoints SET position = 99 WHERE projection_name = 'p'"],
    )
    .await;
    assert!(matches!(touched, Err(CommitError::CheckpointMoved { .. })), "{touched:?}");
    assert_eq!(committed(&admin).await?, (10, vec![1], 1), "the batch that moved it wrote");

    // A statement that fails rolls the batch back, with PostgreSQL's own error.
    let failed = commit(&mut committer, (10, 40), &["INSERT INTO t VALUES (4)", "INSERT INTO t VALUES (1)"]).await;
    assert!(
        matches!(&failed, Err(CommitError::Db(e)) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)),
        "{failed:?}"
    );
    assert_eq!(committed(&admin).await?, (10, vec![1], 1), "the failed batch wrote");

    // A statement the client cannot send (a parameter missing): nothing after it is sent
    // either, the checkpoint's move and COMMIT included.
    let unsent = commit(&mut committer, (10, 45), &[COUNT, "INSERT INTO t VALUES ($1)"]).await;
    assert!(matches!(&unsent, Err(CommitError::Db(e)) if e.code().is_none()), "{unsent:?}");
    assert_eq!(committed(&admin).await?, (10, vec![1], 1), "the batch with a statement unsent wrote");

    // The same connection goes on: no transaction was left open behind the failures.
    commit(&mut committer, (10, 50), &["INSERT INTO t VALUES (5)"]).await?;
    assert_eq!(committed(&admin).await?, (50, vec![1, 5], 1));
    Ok(())
}
