//! The pipelined worker against a real PostgreSQL: while batch N commits, the guest already
//! applies batch N+1, and a row it reads must be the one batch N wrote.
//!
//! The projection is `order_summary` with no rows cached between batches
//! ([`ORDER_SUMMARY_TINY_CACHE`]): each event reads its order's lines, and the first such read
//! of a batch always asks the engine. With batches of a few events, the next event of an order
//! often comes one batch after the last, while that batch may still be committing; a read
//! that did not wait for that commit would see the lines without the last item (or no order
//! at all) and the totals would drift from the reference model.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use refract_projection_artifacts::{ORDER_SUMMARY_TINY_CACHE, REVENUE_BY_DAY};
use refract_test_harness::TestDb;
use refract_test_harness::engine::{EngineProcess, generate_orders, projections_dir, wait_caught_up};
use refract_test_harness::reference::{actual_from_db, assert_same, expected_from_db};

const BIN: &str = env!("CARGO_BIN_EXE_refract");
/// A bound on a hang, not a performance expectation.
const PATIENCE: Duration = Duration::from_secs(180);
/// Events per batch of `order_summary`: small, so that many batches commit one after another
/// and an order's next event is often in the batch right after its last.
const BATCH_SIZE: i64 = 5;

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_reads_the_rows_that_the_batch_still_committing_wrote() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    generate_orders(BIN, db.url(), 400, 11)?;
    let client = db.connect().await?;

    // The workload does what the test is about: many events follow the previous event of
    // their order within one batch's length, so the batch that wrote the order's lines is
    // their own or the one before, which may still be committing when the guest reads
    // (1,707 such events with this seed).
    let close: i64 = client
        .query_one(
            "SELECT count(*) FROM (
                 SELECT global_position - lag(global_position) OVER (PARTITION BY stream_id ORDER BY version) AS gap
                   FROM events) e
              WHERE gap BETWEEN 1 AND $1",
            &[&BATCH_SIZE],
        )
        .await?
        .get(0);
    assert!(close >= 1_000, "only {close} events follow their order's previous event closely");

    let dir = projections_dir(&[ORDER_SUMMARY_TINY_CACHE, REVENUE_BY_DAY])?;
    let stem = Path::new(ORDER_SUMMARY_TINY_CACHE).file_stem().context("a component file name")?;
    let settings = dir.path().join(stem).with_extension("toml");
    std::fs::write(settings, format!("batch_size = {BATCH_SIZE}\n"))?;
    let engine = EngineProcess::start(BIN, db.url(), dir.path(), &dir.path().join("engine.log"), &[])?;
    wait_caught_up(&client, &["order_summary", "revenue_by_day"], PATIENCE, &engine).await?;

    let expected = expected_from_db(&client, "public").await?;
    assert!(!expected.order_summary.is_empty(), "the test wrote no orders");
    assert_same(&expected, &actual_from_db(&client).await?);
    Ok(())
}
