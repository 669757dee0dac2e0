//! `refract run` end to end against a real PostgreSQL: exact read models, crashes, takeover,
//! polling without NOTIFY, one scan for many projections, status.
//!
//! Read models are compared with the independent reference model of the harness, computed
//! from the committed events, never with the engine's own output.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use refract_projection_artifacts::{ORDER_SUMMARY, REVENUE_BY_DAY};
use refract_test_harness::TestDb;
use refract_test_harness::engine::{
    EngineProcess, cli, generate_orders, projections_dir, remaining, start_over, wait_caught_up,
};
use refract_test_harness::reference::{actual_from_db, assert_same, expected_from_db};

const BIN: &str = env!("CARGO_BIN_EXE_refract");
const BOTH: [&str; 2] = ["order_summary", "revenue_by_day"];
/// A bound on a hang, not a performance expectation.
const PATIENCE: Duration = Duration::from_secs(180);

fn refract(args: &[&str]) -> anyhow::Result<String> {
    cli(BIN, args)
}

fn generate(db: &TestDb, orders: u32, seed: u32) -> anyhow::Result<()> {
    generate_orders(BIN, db.url(), orders, seed)
}

async fn assert_read_models_exact(db: &TestDb) -> anyhow::Result<()> {
    let client = db.connect().await?;
    let expected = expected_from_db(&client, "public").await?;
    assert!(!expected.order_summary.is_empty(), "the test wrote no orders");
    assert_same(&expected, &actual_from_db(&client).await?);
    Ok(())
}

/// The versions of `stream` in the order the engine reads the log.
async fn versions_in_log_order(client: &tokio_postgres::Client, stream: &str) -> anyhow::Result<Vec<i64>> {
    let sql = "SELECT version FROM events WHERE stream_id = $1 ORDER BY transaction_id, global_position";
    Ok(client.query(sql, &[&stream]).await?.iter().map(|r| r.get(0)).collect())
}

/// The `version` and `item_count` of the order of stream `order` in `order_summary`.
async fn version_and_items(client: &tokio_postgres::Client, order: &str) -> anyhow::Result<(i64, i32)> {
    let sql = "SELECT version, item_count FROM order_summary.order_summary WHERE order_id = $1::text::uuid";
    let row = client.query_one(sql, &[&&order[6..]]).await?;
    Ok((row.get(0), row.get(1)))
}

#[tokio::test(flavor = "multi_thread")]
async fn projects_the_order_domain_exactly_then_follows_new_events() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    generate(&db, 800, 1)?;
    let (_dir, engine) = start_over(BIN, db.url(), &[ORDER_SUMMARY, REVENUE_BY_DAY], &[])?;
    let client = db.connect().await?;
    wait_caught_up(&client, &BOTH, PATIENCE, &engine).await?;
    assert_read_models_exact(&db).await?;

    // Events appended while the engine runs are projected too.
    generate(&db, 200, 2)?;
    wait_caught_up(&client, &BOTH, PATIENCE, &engine).await?;
    assert_read_models_exact(&db).await?;

    // Stable names for any reader.
    let n: i64 = client.query_one("SELECT count(*) FROM order_summary.order_summary", &[]).await?.get(0);
    assert!(n >= 1000, "{n} orders projected");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_any_instant_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    // ~255k events: long enough a catch-up to be killed in the middle of many times (110k were
    // too few once the guests took their batches packed: caught up after two kills).
    generate(&db, 30_000, 7)?;
    let dir = projections_dir(&[ORDER_SUMMARY, REVENUE_BY_DAY])?;
    std::fs::write(dir.path().join("order_summary.toml"), "batch_size = 700\n")?;
    std::fs::write(dir.path().join("revenue_by_day.toml"), "batch_size = 1300\n")?;
    let log = dir.path().join("engine.log");
    let client = db.connect().await?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut kills = 0;
    while kills < 8 {
        let mut engine = EngineProcess::start(BIN, db.url(), dir.path(), &log, &[])?;
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1000))).await;
        if remaining(&client, BOTH[0]).await? == 0 && remaining(&client, BOTH[1]).await? == 0 {
            break;
        }
        engine.kill();
        kills += 1;
    }
    assert!(kills >= 3, "the engine was killed only {kills} times before it caught up");
    let engine = EngineProcess::start(BIN, db.url(), dir.path(), &log, &[])?;
    wait_caught_up(&client, &BOTH, PATIENCE, &engine).await?;
    assert_read_models_exact(&db).await
}

#[tokio::test(flavor = "multi_thread")]
async fn polling_alone_converges_without_notify() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (_dir, engine) = start_over(BIN, db.url(), &[ORDER_SUMMARY, REVENUE_BY_DAY], &["--no-notify"])?;
    generate(&db, 300, 3)?;
    let client = db.connect().await?;
    wait_caught_up(&client, &BOTH, PATIENCE, &engine).await?;
    assert_read_models_exact(&db).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_engine_takes_over_when_the_owner_dies() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    generate(&db, 300, 4)?;
    let dir = projections_dir(&[ORDER_SUMMARY, REVENUE_BY_DAY])?;
    let mut owner = EngineProcess::start(BIN, db.url(), dir.path(), &dir.path().join("owner.log"), &[])?;
    let client = db.connect().await?;
    wait_caught_up(&client, &BOTH, PATIENCE, &owner).await?;
    let standby = EngineProcess::start(BIN, db.url(), dir.path(), &dir.path().join("standby.log"), &[])?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    owner.kill();
    generate(&db, 300, 5)?;
    // Only the standby runs now: catching up proves it took the projections over.
    wait_caught_up(&client, &BOTH, PATIENCE, &standby).await?;
    assert_read_models_exact(&db).await
}

#[tokio::test(flavor = "multi_thread")]
async fn projections_at_the_head_share_one_scan_and_status_shows_them() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    generate(&db, 500, 6)?;
    let client = db.connect().await?;
    let dir = projections_dir(&[ORDER_SUMMARY, REVENUE_BY_DAY])?;
    let mut engine = EngineProcess::start(BIN, db.url(), dir.path(), &dir.path().join("first.log"), &[])?;
    wait_caught_up(&client, &BOTH, PATIENCE, &engine).await?;

    tokio::time::sleep(Duration::from_millis(1500)).await; // one status publication
    let status: serde_json::Value = serde_json::from_str(&refract(&["status", "--json", "--database-url", db.url()])?)?;
    let projections = status["projections"].as_array().expect("a list of projections");
    let names: Vec<&str> = projections.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, BOTH);
    for p in projections {
        assert_eq!(p["state"], "live", "{p}");
        assert_eq!(p["lag"], 0, "{p}");
        assert_eq!(p["checkpoint"], p["head"], "{p}");
    }
    assert!(engine.stop()?.success(), "{}", engine.log());

    // Restarted with both projections at the head, every append is read once for both.
    let log = dir.path().join("second.log");
    let mut engine = EngineProcess::start(BIN, db.url(), dir.path(), &log, &[])?;
    wait_caught_up(&client, &BOTH, PATIENCE, &engine).await?;
    const APPENDS: u64 = 12;
    for seed in 0..APPENDS {
        generate(&db, 3, 100 + seed as u32)?;
        wait_caught_up(&client, &BOTH, PATIENCE, &engine).await?;
    }
    assert!(engine.stop()?.success(), "{}", engine.log());
    assert_read_models_exact(&db).await?;
    let log = engine.log();
    let reads: u64 = log
        .lines()
        .find_map(|l| l.split("reads=").nth(1))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no read count in the log:\n{log}"));
    // One read per append for both projections; separate scans would need two per append.
    assert!(reads <= APPENDS + 3, "{reads} reads for {APPENDS} appends");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn status_names_the_transaction_that_holds_the_horizon_back() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (_dir, engine) = start_over(BIN, db.url(), &[ORDER_SUMMARY, REVENUE_BY_DAY], &[])?;
    let client = db.connect().await?;
    generate(&db, 20, 8)?;
    wait_caught_up(&client, &BOTH, PATIENCE, &engine).await?;

    // A transaction that has written something stays open: events committed after it began
    // are below no horizon until it ends.
    let mut holder = db.connect().await?;
    let tx = holder.transaction().await?;
    let pid: i32 = tx.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
    tx.query_one("SELECT pg_current_xact_id()", &[]).await?;
    generate(&db, 20, 9)?;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let status: serde_json::Value = serde_json::from_str(&refract(&["status", "--json", "--database-url", db.url()])?)?;
    assert_eq!(status["horizon_held_by"]["pid"], pid, "{status:#}");
    assert!(remaining(&client, BOTH[0]).await? > 0, "events behind an open transaction were projected");
    let table = refract(&["status", "--database-url", db.url()])?;
    assert!(table.contains(&format!("backend {pid}")), "{table}");

    tx.rollback().await?;
    wait_caught_up(&client, &BOTH, PATIENCE, &engine).await?;
    assert_read_models_exact(&db).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_committed_out_of_version_order_is_applied_in_version_order_across_batches() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let order = "order-5f0c1a9e-0000-4000-8000-000000000001";
    let other = "order-5f0c1a9e-0000-4000-8000-000000000002";
    let insert = "INSERT INTO events (stream_id, version, event_type, data) VALUES ($1, $2, $3, $4::text::jsonb)";
    let created = r#"{"order_id": "5f0c1a9e-0000-4000-8000-000000000001", "customer_id": "5f0c1a9e-0000-4000-8000-0000000000c1"}"#;
    let item = |product: &str| format!(r#"{{"product_id": "{product}", "quantity": 1, "price": 2.50}}"#);
    let client = db.connect().await?;
    client.execute(insert, &[&order, &1i64, &"OrderCreated", &created]).await?;

    // The late writer takes its transaction id first (by writing another stream), then the
    // early writer appends version 2 and commits, then the late writer appends version 3:
    // in transaction order, version 3 comes before version 2.
    let mut late = db.connect().await?;
    let late_tx = late.transaction().await?;
    late_tx.execute(insert, &[&other, &1i64, &"OrderCreated", &created.replace("01\"", "02\"")]).await?;
    let early = db.connect().await?;
    early.execute(insert, &[&order, &2i64, &"ItemAdded", &item("a")]).await?;
    late_tx.execute(insert, &[&order, &3i64, &"ItemAdded", &item("b")]).await?;
    late_tx.commit().await?;
    let order_of_log = versions_in_log_order(&client, order).await?;
    assert_eq!(order_of_log, [1, 3, 2], "the scenario did not happen");

    // Batches of three cut the log right after version 3.
    let dir = projections_dir(&[ORDER_SUMMARY, REVENUE_BY_DAY])?;
    for name in BOTH {
        std::fs::write(dir.path().join(format!("{name}.toml")), "batch_size = 3\n")?;
    }
    let engine = EngineProcess::start(BIN, db.url(), dir.path(), &dir.path().join("engine.log"), &[])?;
    wait_caught_up(&client, &BOTH, PATIENCE, &engine).await?;
    assert_read_models_exact(&db).await?;
    assert_eq!(version_and_items(&client, order).await?, (3, 2));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lower_version_above_the_horizon_holds_its_stream_back_until_it_can_be_read() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (_dir, engine) = start_over(BIN, db.url(), &[ORDER_SUMMARY, REVENUE_BY_DAY], &[])?;
    let client = db.connect().await?;
    let order = "order-5f0c1a9e-0000-4000-8000-000000000011";
    let other = "order-5f0c1a9e-0000-4000-8000-000000000012";
    let insert = "INSERT INTO events (stream_id, version, event_type, data) VALUES ($1, $2, $3, $4::text::jsonb)
                  RETURNING transaction_id::text::bigint, global_position";
    let created =
        |id: &str| format!(r#"{{"order_id": "{}", "customer_id": "5f0c1a9e-0000-4000-8000-0000000000c1"}}"#, &id[6..]);
    let item = r#"{"product_id": "p", "quantity": 1, "price": 2.50}"#;

    // The early writer takes the lowest transaction id (by writing another stream); an open
    // transaction takes the next; then version 1 of the order commits with a later id, and
    // the early writer appends version 2 and commits. Version 2 is below the horizon (the
    // open transaction's id), version 1 is not.
    let mut early = db.connect().await?;
    let early_tx = early.transaction().await?;
    let first = early_tx.query_one(insert, &[&other, &1i64, &"OrderCreated", &created(other)]).await?;
    let mut holder = db.connect().await?;
    let holder_tx = holder.transaction().await?;
    holder_tx.query_one("SELECT pg_current_xact_id()", &[]).await?;
    client.query_one(insert, &[&order, &1i64, &"OrderCreated", &created(order)]).await?;
    early_tx.query_one(insert, &[&order, &2i64, &"ItemAdded", &item]).await?;
    early_tx.commit().await?;
    let order_of_log = versions_in_log_order(&client, order).await?;
    assert_eq!(order_of_log, [2, 1], "the scenario did not happen");

    // The engine passes the early writer's first event (below the horizon, another stream)…
    let (tx, position): (i64, i64) = (first.get(0), first.get(1));
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let passed: bool = client
            .query_one(
                "SELECT count(*) = 2 FROM checkpoints c JOIN refract_projections p ON c.projection_name = p.active_schema
                  WHERE (c.transaction_id::text::bigint, c.position) >= ($1, $2)",
                &[&tx, &position],
            )
            .await?
            .get(0);
        if passed {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the engine did not pass the first event:\n{}", engine.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // …and once the horizon passes version 1, applies both versions in order.
    holder_tx.rollback().await?;
    wait_caught_up(&client, &BOTH, PATIENCE, &engine).await?;
    assert_read_models_exact(&db).await?;
    assert_eq!(version_and_items(&client, order).await?, (2, 1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_connections_are_reopened_and_tailing_resumes_from_the_checkpoints() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    generate(&db, 200, 10)?;
    let (_dir, engine) = start_over(BIN, db.url(), &[ORDER_SUMMARY, REVENUE_BY_DAY], &[])?;
    let client = db.connect().await?;
    wait_caught_up(&client, &BOTH, PATIENCE, &engine).await?;

    // Every connection of the engine is cut by the server, as a restart or failover would.
    let cut: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await?
        .get(0);
    assert!(cut >= 4, "only {cut} engine connections were cut");
    generate(&db, 200, 11)?;
    wait_caught_up(&client, &BOTH, PATIENCE, &engine).await?;
    assert_read_models_exact(&db).await?;
    assert!(engine.log().contains("restarting from its checkpoint"), "{}", engine.log());
    Ok(())
}

/// Roles belong to the whole cluster, databases do not: a database dropped with its
/// projections' roles left behind (as `DROP DATABASE` leaves them) and created again under the
/// same name runs the same projections again.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_dropped_and_created_again_runs_its_projections_again() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    generate(&db, 50, 1)?;
    let (_dir, mut engine) = start_over(BIN, db.url(), &[ORDER_SUMMARY, REVENUE_BY_DAY], &[])?;
    wait_caught_up(&db.connect().await?, &BOTH, PATIENCE, &engine).await?;
    engine.stop()?;

    db.drop_and_create_again().await?;
    refract::migrate::migrate(&mut db.connect().await?, "public").await?;
    generate(&db, 50, 2)?;
    let (_dir, engine) = start_over(BIN, db.url(), &[ORDER_SUMMARY, REVENUE_BY_DAY], &[])?;
    wait_caught_up(&db.connect().await?, &BOTH, PATIENCE, &engine).await?;
    assert_read_models_exact(&db).await?;
    assert!(!engine.log().contains("ERROR"), "{}", engine.log());
    Ok(())
}

/// A role left behind under the name a projection's role would take, but given rights Refract
/// never gives its roles, is not taken over: the projection fails with a message naming it, and
/// the role keeps its rights.
#[tokio::test(flavor = "multi_thread")]
async fn a_privileged_role_in_the_way_is_refused_not_taken_over() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    generate(&db, 10, 1)?;
    let (_dir, mut engine) = start_over(BIN, db.url(), &[ORDER_SUMMARY], &[])?;
    wait_caught_up(&db.connect().await?, &["order_summary"], PATIENCE, &engine).await?;
    engine.stop()?;
    let role: String = db.connect().await?.query_one("SELECT role_name FROM refract_roles", &[]).await?.get(0);

    db.drop_and_create_again().await?;
    let client = db.connect().await?;
    client.batch_execute(&format!("ALTER ROLE {role} SUPERUSER")).await?;
    refract::migrate::migrate(&mut db.connect().await?, "public").await?;
    let (_dir, mut engine) = start_over(BIN, db.url(), &[ORDER_SUMMARY], &[])?;
    let deadline = std::time::Instant::now() + PATIENCE;
    while !engine.log().contains("will not take it over") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    engine.stop()?;
    let still_superuser: bool =
        client.query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&role]).await?.get(0);
    // Not recorded in the new database, so the test database's cleanup would not drop it.
    client.batch_execute(&format!("DROP ROLE {role}")).await?;
    let log = engine.log();
    assert!(log.contains(&format!("role \"{role}\" exists with superuser")), "{log}");
    assert!(still_superuser);
    Ok(())
}
