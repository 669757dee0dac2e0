//! Committing a batch against a real PostgreSQL: its writes and its checkpoint commit together
//! or not at all, also now that the check, the writes, the move and COMMIT go out in one round
//! trip (a failed check must abort the transaction, not merely report false).

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

fn raw(sql: &str) -> Statement {
    Statement { sql: sql.to_owned(), params: Vec::new() }
}

async fn checkpoint(client: &Client) -> anyhow::Result<i64> {
    Ok(client.query_one("SELECT position FROM checkpoints WHERE projection_name = 'p'", &[]).await?.get(0))
}

async fn keys(client: &Client) -> anyhow::Result<Vec<i32>> {
    let rows = client.query("SELECT k FROM p.t ORDER BY k", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[tokio::test]
async fn a_batch_commits_with_its_checkpoint_or_not_at_all() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let admin = db.connect().await?;
    admin
        .batch_execute(
            "CREATE SCHEMA p; CREATE TABLE p.t (k int PRIMARY KEY);
             INSERT INTO checkpoints (projection_name, transaction_id, position) VALUES ('p', '0', 0)",
        )
        .await?;
    let mut committer = Committer::new(db.connect().await?);

    // Statements name the projection's tables unqualified: its schema is on the search path.
    committer.commit("public", "p", (at(0), at(10)), &[raw("INSERT INTO t VALUES (1)")], TIMEOUT).await?;
    assert_eq!((checkpoint(&admin).await?, keys(&admin).await?), (10, vec![1]));

    // A batch from where the checkpoint no longer stands (another engine moved it).
    let stale = committer.commit("public", "p", (at(0), at(20)), &[raw("INSERT INTO t VALUES (2)")], TIMEOUT).await;
    assert!(matches!(stale, Err(CommitError::CheckpointMoved { expected, .. }) if expected == at(0)), "{stale:?}");
    assert_eq!((checkpoint(&admin).await?, keys(&admin).await?), (10, vec![1]), "the stale batch wrote");

    // Writes that move the checkpoint themselves: the final move finds it gone.
    let touched = committer
        .commit(
            "public",
            "p",
            (at(10), at(30)),
            &[
                raw("INSERT INTO t VALUES (3)"),
                raw("UPDATE public.checkpoints SET position = 99 WHERE projection_name = 'p'"),
            ],
            TIMEOUT,
        )
        .await;
    assert!(matches!(touched, Err(CommitError::CheckpointMoved { .. })), "{touched:?}");
    assert_eq!((checkpoint(&admin).await?, keys(&admin).await?), (10, vec![1]), "the batch that moved it wrote");

    // A statement that fails rolls the batch back, with PostgreSQL's own error.
    let failed = committer
        .commit(
            "public",
            "p",
            (at(10), at(40)),
            &[raw("INSERT INTO t VALUES (4)"), raw("INSERT INTO t VALUES (1)")],
            TIMEOUT,
        )
        .await;
    assert!(
        matches!(&failed, Err(CommitError::Db(e)) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)),
        "{failed:?}"
    );
    assert_eq!((checkpoint(&admin).await?, keys(&admin).await?), (10, vec![1]), "the failed batch wrote");

    // The same connection goes on: no transaction was left open behind the failures.
    committer.commit("public", "p", (at(10), at(50)), &[raw("INSERT INTO t VALUES (5)")], TIMEOUT).await?;
    assert_eq!((checkpoint(&admin).await?, keys(&admin).await?), (50, vec![1, 5]));
    Ok(())
}
