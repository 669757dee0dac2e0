//! Hot reload, blue/green rebuilds and point-in-time read models (issue 6), end to end
//! against a real PostgreSQL and the `refract` binary.
//!
//! Read models are compared with the independent reference model of the harness over the
//! same prefix of the log, never with the engine's own output.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use refract_projection_artifacts::{ORDER_SUMMARY, ORDER_SUMMARY_V2, REVENUE_BY_DAY};
use refract_test_harness::TestDb;
use refract_test_harness::engine::{EngineProcess, cli, generate_orders, start_over, wait_caught_up};
use refract_test_harness::reference::{
    Expected, RefEvent, actual_from_db, assert_same, compute, expected_from_db, order_summary_from,
};
use tokio_postgres::Client;

const BIN: &str = env!("CARGO_BIN_EXE_refract");
/// A bound on a hang, not a performance expectation.
const PATIENCE: Duration = Duration::from_secs(180);

fn refract(args: &[&str]) -> anyhow::Result<String> {
    cli(BIN, args)
}

fn generate(url: &str, orders: u32, seed: u32) -> anyhow::Result<()> {
    generate_orders(BIN, url, orders, seed)
}

/// A database with `orders` sample orders, and an engine running `components` over it, caught
/// up; with a connection to the database.
async fn serving(
    components: &[&str],
    orders: u32,
    seed: u32,
) -> anyhow::Result<(TestDb, tempfile::TempDir, EngineProcess, Client)> {
    let db = TestDb::migrated().await?;
    generate(db.url(), orders, seed)?;
    let (dir, engine) = start_over(BIN, db.url(), components, &[])?;
    let client = db.connect().await?;
    let names: Vec<&str> = components
        .iter()
        .map(|c| std::path::Path::new(c).file_stem().and_then(|s| s.to_str()).unwrap_or_default())
        .collect();
    wait_caught_up(&client, &names, PATIENCE, &engine).await?;
    Ok((db, dir, engine, client))
}

/// `refract rebuild order_summary` with the components in `projections`, and `extra` arguments.
fn rebuild(url: &str, projections: &str, extra: &[&str]) -> anyhow::Result<String> {
    let mut args = rebuild_args(url, projections).to_vec();
    args.extend_from_slice(extra);
    refract(&args)
}

/// The arguments of `refract rebuild order_summary` over `url` with the components in `projections`.
fn rebuild_args<'a>(url: &'a str, projections: &'a str) -> [&'a str; 6] {
    ["rebuild", "order_summary", "--database-url", url, "--projections", projections]
}

/// One committed event with where it stands in the log.
struct Logged {
    /// `(transaction_id, global_position)`: the engine's order and its checkpoints.
    cursor: (i64, i64),
    event: RefEvent,
}

async fn read_log(client: &Client) -> anyhow::Result<Vec<Logged>> {
    let rows = client
        .query(
            "SELECT transaction_id::text::bigint, global_position, stream_id, version, event_type, data::text, timestamp
               FROM events",
            &[],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Logged {
            cursor: (r.get(0), r.get(1)),
            event: RefEvent {
                stream_id: r.get(2),
                version: r.get(3),
                event_type: r.get(4),
                data: r.get(5),
                timestamp: r.get(6),
            },
        })
        .collect())
}

/// The reference read models of the events `keep` admits.
fn expected_of(log: &[Logged], keep: impl Fn(&Logged) -> bool) -> anyhow::Result<Expected> {
    Ok(compute(log.iter().filter(|l| keep(l)).map(|l| l.event.clone()))?)
}

async fn module_version(client: &Client) -> anyhow::Result<Option<String>> {
    let row =
        client.query_opt("SELECT module_version FROM refract_projections WHERE name = 'order_summary'", &[]).await?;
    Ok(row.map(|r| r.get(0)))
}

async fn wait_for(
    what: &str,
    engine: &EngineProcess,
    mut done: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    while !done().await? {
        if Instant::now() > deadline {
            bail!("{what}: not within {PATIENCE:?}; engine log:\n{}", engine.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// `order_summary.order_summary` equals the reference over the whole log.
async fn assert_order_summary_exact(client: &Client) -> anyhow::Result<()> {
    let expected = expected_from_db(client, "public").await?.order_summary;
    assert!(!expected.is_empty(), "the test wrote no orders");
    assert_eq!(order_summary_from(client, "order_summary").await?, expected);
    Ok(())
}

async fn schema_exists(client: &Client, schema: &str) -> anyhow::Result<bool> {
    Ok(client.query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema]).await?.is_some())
}

/// What a reader saw in one statement: the active version's checkpoint, the row count and
/// the total of `order_summary.order_summary`, and whether version 2's column was there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Observation {
    cursor: (i64, i64),
    rows: i64,
    total_cents: i64,
    version_2: bool,
}

const OBSERVE: &str = "SELECT c.transaction_id::text::bigint, c.position,
        (SELECT count(*) FROM order_summary.order_summary),
        (SELECT coalesce(sum(total) * 100, 0)::bigint FROM order_summary.order_summary),
        EXISTS (SELECT 1 FROM information_schema.columns
                 WHERE table_schema = 'order_summary' AND table_name = 'order_summary' AND column_name = 'generation')
   FROM checkpoints c JOIN refract_projections p ON c.projection_name = p.active_schema
  WHERE p.name = 'order_summary'";

#[tokio::test(flavor = "multi_thread")]
async fn copying_a_new_version_swaps_the_read_model_in_without_reader_visible_downtime() -> anyhow::Result<()> {
    let (db, dir, engine, client) = serving(&[ORDER_SUMMARY], 1500, 1).await?;

    // Appends go on throughout the swap.
    let stop = Arc::new(AtomicBool::new(false));
    let url = db.url().to_owned();
    let appending = {
        let stop = stop.clone();
        std::thread::spawn(move || -> anyhow::Result<u32> {
            let mut seed = 100;
            while !stop.load(Ordering::Relaxed) {
                generate(&url, 30, seed)?;
                seed += 1;
            }
            Ok(seed - 100)
        })
    };
    // A reader queries the stable names every few milliseconds; every error is kept.
    let reading = {
        let stop = stop.clone();
        let reader = db.connect().await?;
        tokio::spawn(async move {
            let (mut seen, mut errors) = (Vec::new(), Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match reader.query_one(OBSERVE, &[]).await {
                    Ok(r) => seen.push(Observation {
                        cursor: (r.get(0), r.get(1)),
                        rows: r.get(2),
                        total_cents: r.get(3),
                        version_2: r.get(4),
                    }),
                    Err(error) => errors.push(error.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            (seen, errors)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A plain copy over the live file, as an operator deploys.
    std::fs::copy(ORDER_SUMMARY_V2, dir.path().join("order_summary.wasm"))?;
    wait_for("version 2 swapped in", &engine, async || Ok(module_version(&client).await?.as_deref() == Some("2.0.0")))
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let batches = appending.join().expect("the appender panicked")?;
    let (seen, errors) = reading.await?;
    wait_caught_up(&client, &["order_summary"], PATIENCE, &engine).await?;

    assert!(errors.is_empty(), "the reader saw errors during the swap: {errors:?}");
    assert!(batches > 0, "nothing was appended during the swap");
    let before = seen.iter().filter(|o| !o.version_2).count();
    let after = seen.iter().filter(|o| o.version_2).count();
    assert!(before > 0 && after > 0, "the reader saw {before} reads of version 1 and {after} of version 2");
    // Every read shows the read model of a prefix of the log: the one its checkpoint says.
    let log = read_log(&client).await?;
    let mut checked = BTreeMap::new();
    for observation in &seen {
        let expected = match checked.get(&observation.cursor) {
            Some(expected) => *expected,
            None => {
                let model = expected_of(&log, |l| l.cursor <= observation.cursor)?;
                let summary =
                    (model.order_summary.len() as i64, model.order_summary.values().map(|r| r.total_cents).sum());
                checked.insert(observation.cursor, summary);
                summary
            }
        };
        assert_eq!(
            (observation.rows, observation.total_cents),
            expected,
            "a reader saw a state of no version at checkpoint {:?} (version 2: {})",
            observation.cursor,
            observation.version_2
        );
    }
    // Version 2 serves, exactly, with its own semantics; version 1's schema is gone.
    assert_order_summary_exact(&client).await?;
    let generations: Vec<i32> = client
        .query("SELECT DISTINCT generation FROM order_summary.order_summary", &[])
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(generations, [2]);
    assert!(!schema_exists(&client, "order_summary__1").await?, "the replaced version's schema was not dropped");
    assert!(schema_exists(&client, "order_summary__2").await?);
    let log = engine.log();
    assert_eq!(log.matches("reloading").count(), 1, "one copy, one reload; log:\n{log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_components_leave_the_serving_version_in_place() -> anyhow::Result<()> {
    let (db, dir, engine, client) = serving(&[ORDER_SUMMARY, REVENUE_BY_DAY], 300, 2).await?;
    let both = ["order_summary", "revenue_by_day"];
    let version_1 = module_version(&client).await?;
    let target = dir.path().join("order_summary.wasm");
    let v2 = std::fs::read(ORDER_SUMMARY_V2)?;

    // Half a file (a copy caught in the middle), bytes that are no component at all, and a
    // component of an unknown contract version.
    std::fs::write(&target, &v2[..v2.len() / 2])?;
    wait_for_refusals(&engine, 1).await?;
    std::fs::write(&target, b"not a component")?;
    wait_for_refusals(&engine, 2).await?;
    // A component built against a contract this engine does not know.
    std::fs::copy(refract_projection_artifacts::HOSTILE_CONTRACT_0_9, &target)?;
    wait_for_refusals(&engine, 3).await?;
    assert!(
        engine.log().contains("refract:projection@0.9.0"),
        "the refusal names the contract; log:\n{}",
        engine.log()
    );
    wait_for("the refusal shows in refract status", &engine, async || {
        Ok(refract(&["status", "--database-url", db.url()])?.contains("new component refused"))
    })
    .await?;

    // The old version still serves and follows new events, exactly.
    generate(db.url(), 100, 3)?;
    wait_caught_up(&client, &both, PATIENCE, &engine).await?;
    assert_same(&expected_from_db(&client, "public").await?, &actual_from_db(&client).await?);
    assert_eq!(module_version(&client).await?, version_1);

    // A burst of writes (a slow copy) gives one reload once the file is quiet.
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&target)?;
        for chunk in v2.chunks(v2.len() / 8 + 1) {
            file.write_all(chunk)?;
            file.flush()?;
            std::thread::sleep(Duration::from_millis(40));
        }
    }
    wait_for("version 2 swapped in", &engine, async || Ok(module_version(&client).await?.as_deref() == Some("2.0.0")))
        .await?;
    let log = engine.log();
    assert_eq!(log.matches("reloading").count(), 1, "one burst, one reload; log:\n{log}");
    wait_caught_up(&client, &both, PATIENCE, &engine).await?;
    assert_same(&expected_from_db(&client, "public").await?, &actual_from_db(&client).await?);

    // A removed component stops its projection; its read model stays until `refract drop`,
    // which refuses while an engine runs it.
    let refused =
        std::process::Command::new(BIN).args(["drop", "revenue_by_day", "--database-url", db.url()]).output()?;
    assert!(!refused.status.success(), "drop succeeded while the engine ran the projection");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("an engine is running"));
    std::fs::remove_file(dir.path().join("revenue_by_day.wasm"))?;
    wait_for("the removed projection stops", &engine, async || Ok(engine.log().contains("component removed"))).await?;
    assert!(schema_exists(&client, "revenue_by_day").await?, "a removed component's read model must stay");
    wait_for("drop succeeds once the projection stopped", &engine, async || {
        Ok(std::process::Command::new(BIN)
            .args(["drop", "revenue_by_day", "--database-url", db.url()])
            .output()?
            .status
            .success())
    })
    .await?;
    assert!(!schema_exists(&client, "revenue_by_day").await?);
    assert!(!schema_exists(&client, "revenue_by_day__1").await?);
    Ok(())
}

async fn wait_for_refusals(engine: &EngineProcess, count: usize) -> anyhow::Result<()> {
    wait_for("a refusal in the log", engine, async || Ok(engine.log().matches("component refused").count() >= count))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_with_an_unchanged_component_compiles_nothing() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let cache = tempfile::tempdir()?;
    let cache_dir = cache.path().to_str().context("cache path")?;
    let (dir, mut engine) = start_over(BIN, db.url(), &[ORDER_SUMMARY], &["--cache-dir", cache_dir])?;
    wait_for("loaded", &engine, async || Ok(engine.log().contains("compiled_so_far"))).await?;
    assert!(engine.log().contains("compiled_so_far=Some(1)"), "first start compiles; log:\n{}", engine.log());
    engine.stop()?;
    let log = dir.path().join("second.log");
    let engine = EngineProcess::start(BIN, db.url(), dir.path(), &log, &["--cache-dir", cache_dir])?;
    wait_for("loaded again", &engine, async || Ok(engine.log().contains("compiled_so_far"))).await?;
    assert!(engine.log().contains("compiled_so_far=Some(0)"), "a restart compiled again; log:\n{}", engine.log());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_swaps_a_fresh_version_in_under_a_running_engine() -> anyhow::Result<()> {
    let (db, dir, engine, client) = serving(&[ORDER_SUMMARY], 400, 4).await?;
    let projections = dir.path().to_str().context("path")?;
    rebuild(db.url(), projections, &[])?;
    let active: String = client
        .query_one("SELECT active_schema FROM refract_projections WHERE name = 'order_summary'", &[])
        .await?
        .get(0);
    assert_eq!(active, "order_summary__2");
    assert!(!schema_exists(&client, "order_summary__1").await?);
    // The running engine goes on with the rebuilt version.
    generate(db.url(), 100, 5)?;
    wait_caught_up(&client, &["order_summary"], PATIENCE, &engine).await?;
    assert_order_summary_exact(&client).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_until_builds_the_read_model_as_it_was_at_a_position_and_at_a_time() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    generate(db.url(), 600, 6)?;
    let client = db.connect().await?;
    let log = read_log(&client).await?;
    let dir = refract_test_harness::engine::projections_dir(&[ORDER_SUMMARY])?;
    let projections = dir.path().to_str().context("path")?;
    let mut positions: Vec<i64> = log.iter().map(|l| l.cursor.1).collect();
    positions.sort_unstable();
    let position = positions[positions.len() / 3];
    let mut times: Vec<_> = log.iter().map(|l| l.event.timestamp).collect();
    times.sort_unstable();
    let time = times[times.len() * 2 / 3];

    rebuild(db.url(), projections, &["--until", &position.to_string(), "--into", "at_position"])?;
    let expected = expected_of(&log, |l| l.cursor.1 <= position)?;
    assert!(!expected.order_summary.is_empty());
    assert_eq!(order_summary_from(&client, "at_position").await?, expected.order_summary);

    rebuild(db.url(), projections, &["--until", &time.to_rfc3339(), "--into", "at_time"])?;
    let expected = expected_of(&log, |l| l.event.timestamp <= time)?;
    assert_eq!(order_summary_from(&client, "at_time").await?, expected.order_summary);
    assert_ne!(order_summary_from(&client, "at_time").await?, order_summary_from(&client, "at_position").await?);

    // No live read model was made or touched, and no checkpoint stays behind.
    assert!(!schema_exists(&client, "order_summary").await?);
    let left: i64 = client.query_one("SELECT count(*) FROM checkpoints", &[]).await?.get(0);
    assert_eq!(left, 0);
    // An existing schema is never built into.
    let refused = std::process::Command::new(BIN)
        .args(rebuild_args(db.url(), projections))
        .args(["--until", "1", "--into", "at_time"])
        .output()?;
    assert!(!refused.status.success(), "rebuild --into an existing schema succeeded");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn undoing_a_change_while_its_version_is_built_keeps_the_serving_version() -> anyhow::Result<()> {
    let (db, dir, engine, client) = serving(&[ORDER_SUMMARY], 300, 7).await?;
    let (target, settings) = (dir.path().join("order_summary.wasm"), dir.path().join("order_summary.toml"));
    // Version 2 with batches of one event: its build takes a while.
    std::fs::write(&settings, "batch_size = 1\n")?;
    std::fs::copy(ORDER_SUMMARY_V2, &target)?;
    wait_for("version 2 being built", &engine, async || {
        Ok(client
            .query_opt("SELECT 1 FROM refract_versions WHERE schema_name = 'order_summary__2'", &[])
            .await?
            .is_some())
    })
    .await?;
    // The operator changes their mind: version 1, as it was, back in place.
    std::fs::remove_file(&settings)?;
    std::fs::copy(ORDER_SUMMARY, &target)?;
    wait_for("the undo is seen", &engine, async || Ok(engine.log().matches("reloading").count() >= 2)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    generate(db.url(), 50, 8)?;
    wait_caught_up(&client, &["order_summary"], PATIENCE, &engine).await?;
    assert_ne!(module_version(&client).await?.as_deref(), Some("2.0.0"), "the abandoned version was swapped in");
    assert!(!engine.log().contains("swapped in"), "log:\n{}", engine.log());
    assert_order_summary_exact(&client).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_until_waits_for_events_up_to_its_point_that_are_not_visible_yet() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    generate(db.url(), 100, 9)?;
    // An open transaction holds the visibility horizon below the events appended after it.
    let holder = db.connect().await?;
    holder.batch_execute("BEGIN; SELECT pg_current_xact_id()").await?;
    generate(db.url(), 100, 10)?;
    let client = db.connect().await?;
    let until: i64 = client.query_one("SELECT max(global_position) FROM events", &[]).await?.get(0);
    let dir = refract_test_harness::engine::projections_dir(&[ORDER_SUMMARY])?;
    let projections = dir.path().to_str().context("path")?;
    let mut rebuild = std::process::Command::new(BIN)
        .args(rebuild_args(db.url(), projections))
        .args(["--until", &until.to_string(), "--into", "all_of_it"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // It reaches the horizon, but events up to its point lie beyond: it does not finish.
    wait_for_schema(&client, "all_of_it").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(rebuild.try_wait()?.is_none(), "the point-in-time build finished with events up to its point unseen");
    holder.batch_execute("COMMIT").await?;
    let status = tokio::task::spawn_blocking(move || rebuild.wait_with_output()).await??;
    ensure!(status.status.success(), "rebuild failed: {}", String::from_utf8_lossy(&status.stderr));
    let log = read_log(&client).await?;
    let expected = expected_of(&log, |l| l.cursor.1 <= until)?;
    assert_eq!(order_summary_from(&client, "all_of_it").await?, expected.order_summary);
    Ok(())
}

async fn wait_for_schema(client: &Client, schema: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    while !schema_exists(client, schema).await? {
        ensure!(Instant::now() < deadline, "schema {schema} never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A log whose events fill the last batch exactly: that batch reaches the head and says so, and
/// the rebuild ends (it used to wait for events that never came).
#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_whose_last_batch_is_full_ends() -> anyhow::Result<()> {
    let (db, dir, engine, client) = serving(&[ORDER_SUMMARY], 150, 12).await?;
    drop(engine);
    let events: i64 = client
        .query_one("SELECT count(*) FROM events WHERE split_part(stream_id, '-', 1) = 'order'", &[])
        .await?
        .get(0);
    std::fs::write(dir.path().join("order_summary.toml"), format!("batch_size = {events}\n"))?;
    rebuild_in_time(db.url(), dir.path()).await?;
    assert!(schema_exists(&client, "order_summary__2").await?);
    assert_order_summary_exact(&client).await?;
    Ok(())
}

/// An empty log: the build stands at the head from the start, is told so, and ends.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_over_an_empty_log_ends() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let dir = refract_test_harness::engine::projections_dir(&[ORDER_SUMMARY])?;
    rebuild_in_time(db.url(), dir.path()).await?;
    let client = db.connect().await?;
    let rows: i64 = client.query_one("SELECT count(*) FROM order_summary.order_summary", &[]).await?.get(0);
    assert_eq!(rows, 0);
    Ok(())
}

/// `refract rebuild order_summary`, failing when it does not end within [`PATIENCE`].
async fn rebuild_in_time(url: &str, projections: &std::path::Path) -> anyhow::Result<()> {
    let projections = projections.to_str().context("path")?;
    let rebuilt = tokio::process::Command::new(BIN).args(rebuild_args(url, projections)).kill_on_drop(true).output();
    let out = tokio::time::timeout(PATIENCE, rebuilt).await.context("the rebuild did not end")??;
    ensure!(out.status.success(), "the rebuild failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_of_a_projection_never_installed_builds_its_first_version() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    generate(db.url(), 200, 11)?;
    let dir = refract_test_harness::engine::projections_dir(&[ORDER_SUMMARY])?;
    let projections = dir.path().to_str().context("path")?;
    rebuild(db.url(), projections, &[])?;
    let client = db.connect().await?;
    assert_order_summary_exact(&client).await?;
    Ok(())
}
