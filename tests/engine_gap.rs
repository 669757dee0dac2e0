//! The gap test: `refract run` tails the log while concurrent writers append order events in
//! transactions that commit out of position order, some of them rolled back. Afterwards both
//! example read models equal the independent reference model computed from the committed
//! events, every stream's version is right, and each projection was handed every committed
//! event it subscribes to exactly once.
//!
//! The writers are plain SQL clients using only the ADR-002 columns (see the harness's
//! `workload` module): the engine gets no help from them.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use chrono::{DateTime, Utc};
use refract_projection_artifacts::{ORDER_SUMMARY, REVENUE_BY_DAY};
use refract_test_harness::TestDb;
use refract_test_harness::engine::{EngineProcess, start_over, wait_caught_up};
use refract_test_harness::reference::{actual_from_db, assert_same, expected_from_db};
use refract_test_harness::workload::Workload;
use tokio_postgres::Client;

const BIN: &str = env!("CARGO_BIN_EXE_refract");
const PROJECTIONS: [&str; 2] = ["order_summary", "revenue_by_day"];
/// A bound on a hang, not a performance expectation.
const PATIENCE: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_committing_out_of_order_lose_and_duplicate_nothing() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let client = db.connect().await?;
    let (_dir, mut engine) = start_over(BIN, db.url(), &[ORDER_SUMMARY, REVENUE_BY_DAY], &[])?;
    wait_tailing(&client, &engine).await?;

    let report = Workload::default().run(db.url(), "public").await?;
    // The hazards this test is about did happen.
    assert!(report.late_commits > 0, "no commit landed late: {report:?}");
    assert!(report.rolled_back_transactions > 0, "nothing rolled back: {report:?}");
    assert!(engine.is_running(), "the engine stopped while the writers wrote:\n{}", engine.log());

    wait_caught_up(&client, &PROJECTIONS, PATIENCE, &engine).await?;

    let events: i64 = client.query_one("SELECT count(*) FROM events", &[]).await?.get(0);
    assert_eq!(u64::try_from(events)?, report.committed_events, "the log holds exactly the committed events");
    assert_stream_versions(&client, report.streams.len()).await?;

    let expected = expected_from_db(&client, "public").await?;
    assert!(
        expected.order_summary.len() > 100 && expected.revenue_by_day.len() > 3,
        "the workload wrote too little to test anything: {} orders, {} days",
        expected.order_summary.len(),
        expected.revenue_by_day.len()
    );
    assert_same(&expected, &actual_from_db(&client).await?);

    assert_each_event_handed_over_once(&client, &engine).await
}

/// Waits until the engine has installed both projections and their workers follow the log,
/// so that the writers start against a running engine.
async fn wait_tailing(client: &Client, engine: &EngineProcess) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let states: Vec<(String, String)> = client
            .query("SELECT name, state FROM refract_status WHERE name = ANY($1) ORDER BY name", &[&&PROJECTIONS[..]])
            .await
            .map(|rows| rows.iter().map(|row| (row.get(0), row.get(1))).collect())
            // The engine creates its tables when it starts: not there yet is not an error.
            .unwrap_or_default();
        if let Some((name, _)) = states.iter().find(|(_, state)| state == "failed") {
            bail!("projection {name} failed:\n{}", engine.log());
        }
        let tailing = states.iter().filter(|(_, state)| state == "catching-up" || state == "live").count();
        if tailing == PROJECTIONS.len() {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the projections are not running after {PATIENCE:?} ({states:?}); engine log:\n{}",
            engine.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every stream's `streams.version` is its highest event version, its versions run 1, 2, …
/// without holes, and every stream the writers committed to has its row.
async fn assert_stream_versions(client: &Client, streams: usize) -> anyhow::Result<()> {
    let wrong = client
        .query(
            "SELECT stream_id, s.version, e.lowest, e.highest, e.events
               FROM streams s
               FULL JOIN (SELECT stream_id, min(version) AS lowest, max(version) AS highest,
                                 count(*) AS events
                            FROM events GROUP BY stream_id) e USING (stream_id)
              WHERE s.version IS DISTINCT FROM e.highest
                 OR e.lowest IS DISTINCT FROM 1
                 OR e.events IS DISTINCT FROM e.highest
              LIMIT 10",
            &[],
        )
        .await?;
    let wrong: Vec<String> = wrong
        .iter()
        .map(|row| {
            format!(
                "{}: streams.version {:?}, events versions {:?}..={:?} ({:?} events)",
                row.get::<_, String>(0),
                row.get::<_, Option<i64>>(1),
                row.get::<_, Option<i64>>(2),
                row.get::<_, Option<i64>>(3),
                row.get::<_, Option<i64>>(4),
            )
        })
        .collect();
    assert!(wrong.is_empty(), "stream versions are wrong:\n{}", wrong.join("\n"));
    let rows: i64 = client.query_one("SELECT count(*) FROM streams", &[]).await?.get(0);
    assert_eq!(usize::try_from(rows)?, streams, "streams rows");
    Ok(())
}

/// Compares the events each projection was handed (the engine's `events_applied`, counted
/// when a batch commits) with a count, in SQL, of the committed events its subscription
/// selects. One engine ran from an empty log, so an event applied twice shows as a count
/// above that, at any time; an event skipped, as a count that stays below it. Equality must
/// hold in two successive status publications, so that nothing is applied after it.
async fn assert_each_event_handed_over_once(client: &Client, engine: &EngineProcess) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    let mut settled_at: Option<Vec<DateTime<Utc>>> = None;
    loop {
        let rows = client
            .query(
                "SELECT p.name, s.events_applied, s.updated_at,
                        (SELECT count(*) FROM events e
                          WHERE (jsonb_array_length(p.description->'event_types') = 0
                                 OR e.event_type IN (SELECT jsonb_array_elements_text(
                                                            p.description->'event_types')))
                            AND (jsonb_array_length(p.description->'categories') = 0
                                 OR split_part(e.stream_id, '-', 1) IN
                                    (SELECT jsonb_array_elements_text(
                                                p.description->'categories'))))
                   FROM refract_projections p JOIN refract_status s USING (name)
                  WHERE p.name = ANY($1)
                  ORDER BY p.name",
                &[&&PROJECTIONS[..]],
            )
            .await?;
        let mut equal = rows.len() == PROJECTIONS.len();
        for row in &rows {
            let (name, applied, subscribed): (String, i64, i64) = (row.get(0), row.get(1), row.get(3));
            assert!(
                applied <= subscribed,
                "{name} was handed {applied} events; only {subscribed} committed events match \
                 its subscription"
            );
            equal &= applied == subscribed;
        }
        let published: Vec<DateTime<Utc>> = rows.iter().map(|row| row.get(2)).collect();
        match &settled_at {
            Some(first) if published.iter().zip(first).all(|(now, then)| now > then) => {
                ensure!(equal, "a projection was handed more events after catching up");
                return Ok(());
            }
            Some(_) => {}
            None if equal => settled_at = Some(published),
            None => {}
        }
        ensure!(
            Instant::now() < deadline,
            "the events handed over never matched the subscribed events ({:?}); engine log:\n{}",
            rows.iter()
                .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1), row.get::<_, i64>(3)))
                .collect::<Vec<_>>(),
            engine.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
