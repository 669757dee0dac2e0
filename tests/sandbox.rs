//! Sandbox and failure isolation (issue 10): each hostile fixture component runs beside the
//! healthy example projections over generated orders. The healthy ones must end exactly as the
//! independent reference model says, the hostile one must end failed with a precise message
//! (or, for I/O attempts, get nothing), and the event log must keep every event.
//!
//! Tests marked `#[ignore]` state behaviour the issue asks for that the host does not have yet.
//! Each test has a database of its own, so even an escape that succeeds harms nothing else.

use std::path::Path;
use std::time::{Duration, Instant};

use refract_projection_artifacts as artifacts;
use refract_projection_artifacts::{ORDER_SUMMARY, REVENUE_BY_DAY};
use refract_test_harness::TestDb;
use refract_test_harness::engine::{EngineProcess, cli, generate_orders, projections_dir, wait_caught_up};
use refract_test_harness::reference::{actual_from_db, assert_same, expected_from_db};
use tokio_postgres::Client;

const BIN: &str = env!("CARGO_BIN_EXE_refract");
const HEALTHY: [&str; 2] = ["order_summary", "revenue_by_day"];
/// A bound on a hang, not a performance expectation.
const PATIENCE: Duration = Duration::from_secs(180);
/// Orders generated per test: about 1,700 events, more than `trap1000` needs.
const ORDERS: u32 = 200;

fn refract(args: &[&str]) -> anyhow::Result<String> {
    cli(BIN, args)
}

fn generate(db: &TestDb, seed: u32) -> anyhow::Result<()> {
    generate_orders(BIN, db.url(), ORDERS, seed)
}

/// The projection a component describes: its file name without `.wasm`.
fn name_of(component: &str) -> &str {
    Path::new(component).file_stem().and_then(|s| s.to_str()).expect("a component file name")
}

async fn event_count(client: &Client) -> anyhow::Result<i64> {
    Ok(client.query_one("SELECT count(*) FROM public.events", &[]).await?.get(0))
}

/// The engine running `hostile` (with `sidecar` as its settings) beside the healthy projections.
struct Scenario {
    db: TestDb,
    client: Client,
    engine: EngineProcess,
    name: String,
    events: i64,
    _dir: tempfile::TempDir,
}

impl Scenario {
    /// Generates orders in a fresh database, starts the engine and waits until the healthy
    /// projections have caught up; asserts they are exact and that no event was lost.
    async fn run(hostile: &str, sidecar: Option<&str>, seed: u32) -> anyhow::Result<Scenario> {
        let db = TestDb::migrated().await?;
        generate(&db, seed)?;
        let client = db.connect().await?;
        let events = event_count(&client).await?;
        let dir = projections_dir(&[hostile, ORDER_SUMMARY, REVENUE_BY_DAY])?;
        let name = name_of(hostile).to_owned();
        if let Some(settings) = sidecar {
            std::fs::write(dir.path().join(format!("{name}.toml")), settings)?;
        }
        let engine = EngineProcess::start(BIN, db.url(), dir.path(), &dir.path().join("engine.log"), &[])?;
        wait_caught_up(&client, &HEALTHY, PATIENCE, &engine).await?;
        let scenario = Scenario { db, client, engine, name, events, _dir: dir };
        scenario.assert_healthy_exact().await?;
        Ok(scenario)
    }

    /// The healthy read models equal the reference model, and the log holds every event.
    async fn assert_healthy_exact(&self) -> anyhow::Result<()> {
        let expected = expected_from_db(&self.client, "public").await?;
        assert!(!expected.order_summary.is_empty(), "the test wrote no orders");
        assert_same(&expected, &actual_from_db(&self.client).await?);
        assert_eq!(event_count(&self.client).await?, self.events, "events lost from public.events");
        Ok(())
    }

    /// The hostile projection's entry of `refract status --json`.
    fn status(&self) -> anyhow::Result<serde_json::Value> {
        let status: serde_json::Value =
            serde_json::from_str(&refract(&["status", "--json", "--database-url", self.db.url()])?)?;
        let found = status["projections"].as_array().and_then(|ps| ps.iter().find(|p| p["name"] == *self.name));
        Ok(found.cloned().unwrap_or(serde_json::Value::Null))
    }

    /// Waits until the hostile projection's published state is `failed`; returns its last error.
    async fn failure(&self) -> anyhow::Result<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = self.status()?;
            if status["state"] == "failed" {
                let error = status["last_error"].as_str().unwrap_or_default().to_owned();
                assert!(!error.is_empty(), "failed without an error: {status}");
                // The healthy projections went on beside the failed one.
                self.assert_healthy_exact().await?;
                return Ok(error);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} is not failed after {PATIENCE:?}: {status}; engine log:\n{}",
                self.name,
                self.engine.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Rows of the hostile projection's `table`.
    async fn rows(&self, table: &str) -> anyhow::Result<i64> {
        let sql = format!("SELECT count(*) FROM {}.{table}", self.name);
        Ok(self.client.query_one(sql.as_str(), &[]).await?.get(0))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projection_that_loops_forever_is_interrupted_at_its_deadline() -> anyhow::Result<()> {
    refused_operation(artifacts::HOSTILE_LOOP, Some("deadline_ms = 2000\n"), 11, &["deadline of 2s"]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_bomb_traps_at_its_memory_limit() -> anyhow::Result<()> {
    refused_operation(artifacts::HOSTILE_MEMORY, Some("max_memory_mib = 64\n"), 12, &["trapped"]).await
}

/// The event `trap1000` traps on: the 1000th of the log, at global position 1000.
const POISON: i64 = 1000;

/// The id of the event at `position`.
async fn event_id(client: &Client, position: i64) -> anyhow::Result<uuid::Uuid> {
    Ok(client.query_one("SELECT event_id FROM events WHERE global_position = $1", &[&position]).await?.get(0))
}

/// Positions of the log that `hostile_trap1000.hits` has no row for.
async fn positions_missing_from_hits(client: &Client) -> anyhow::Result<Vec<i64>> {
    let sql = "SELECT global_position FROM events e
                WHERE NOT EXISTS (SELECT 1 FROM hostile_trap1000.hits h WHERE h.position = e.global_position)
                ORDER BY 1";
    Ok(client.query(sql, &[]).await?.iter().map(|r| r.get(0)).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_at_the_1000th_event_fails_its_batch_and_names_it() -> anyhow::Result<()> {
    let run = Scenario::run(artifacts::HOSTILE_TRAP1000, None, 13).await?;
    let error = run.failure().await?;
    assert!(error.contains("trapped") && error.contains("poison"), "{error}");
    // A trap ends the whole batch; the engine replays it event by event to name the event.
    let status = run.status()?;
    assert_eq!(status["last_error_position"], POISON, "{status}");
    assert_eq!(status["last_error_event_id"], event_id(&run.client, POISON).await?.to_string(), "{status}");
    // The batch rolled back: nothing at or after the poison event was written.
    let sql = "SELECT count(*) FROM hostile_trap1000.hits WHERE position >= $1";
    assert_eq!(run.client.query_one(sql, &[&POISON]).await?.get::<_, i64>(0), 0);
    // Under the default policy nothing is dead-lettered.
    let dead: i64 = run.client.query_one("SELECT count(*) FROM dead_letters", &[]).await?.get(0);
    assert_eq!(dead, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn under_skip_a_poison_event_is_dead_lettered_and_the_projection_goes_on() -> anyhow::Result<()> {
    let run = Scenario::run(artifacts::HOSTILE_TRAP1000, Some("on_error = \"skip\"\n"), 25).await?;
    wait_caught_up(&run.client, &[run.name.as_str()], PATIENCE, &run.engine).await?;
    let rows = run
        .client
        .query("SELECT projection_name, position, event_id, event_type, stream_id, error FROM dead_letters", &[])
        .await?;
    assert_eq!(rows.len(), 1, "exactly the poison event is dead-lettered");
    let (name, position, id): (String, i64, uuid::Uuid) = (rows[0].get(0), rows[0].get(1), rows[0].get(2));
    assert_eq!((name.as_str(), position, id), ("hostile_trap1000", POISON, event_id(&run.client, POISON).await?));
    let error: String = rows[0].get(5);
    assert!(error.contains("trapped") && error.contains("poison: the 1000th event"), "{error}");
    let (kind, stream): (String, String) = (rows[0].get(3), rows[0].get(4));
    let event =
        run.client.query_one("SELECT event_type, stream_id FROM events WHERE global_position = $1", &[&POISON]).await?;
    assert_eq!((kind, stream), (event.get(0), event.get(1)));
    // Every other event has its row; the projection is not failed.
    assert_eq!(positions_missing_from_hits(&run.client).await?, [POISON]);
    assert_ne!(run.status()?["state"], "failed");
    run.assert_healthy_exact().await
}

#[tokio::test(flavor = "multi_thread")]
async fn refract_retry_resumes_a_failed_projection_once_its_cause_is_fixed() -> anyhow::Result<()> {
    let run = Scenario::run(artifacts::HOSTILE_TRAP1000, None, 26).await?;
    let error = run.failure().await?;
    assert!(error.contains("poison"), "{error}");
    // Retried before the fix, it fails again at the same event.
    let url = run.db.url();
    let again = std::process::Command::new(BIN)
        .args(["retry", "hostile_trap1000", "--wait", "1", "--database-url", url])
        .output()?;
    assert!(String::from_utf8_lossy(&again.stdout).contains("asked the engine to resume"), "{again:?}");
    let deadline = Instant::now() + PATIENCE;
    while !run.engine.log().contains("retry requested: resuming from the checkpoint") {
        anyhow::ensure!(Instant::now() < deadline, "the retry was not taken up:\n{}", run.engine.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run.failure().await?;
    assert_eq!(run.status()?["last_error_position"], POISON);
    // The fix: `trap1000` spares its poison event once its table has a row at position 0.
    let pardon = "INSERT INTO hostile_trap1000.hits (position, count, note) VALUES (0, 0, 'fixed')";
    run.client.execute(pardon, &[]).await?;
    let out = refract(&["retry", "hostile_trap1000", "--database-url", url])?;
    assert!(out.contains("resumed"), "{out}");
    wait_caught_up(&run.client, &[run.name.as_str()], PATIENCE, &run.engine).await?;
    assert_eq!(positions_missing_from_hits(&run.client).await?, Vec::<i64>::new());
    assert_eq!(run.rows("hits").await?, run.events + 1, "one row per event, and the fix's row");
    assert_ne!(run.status()?["state"], "failed");
    run.assert_healthy_exact().await
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_refuses_a_projection_that_is_not_failed() -> anyhow::Result<()> {
    let run = Scenario::run(artifacts::HOSTILE_ENTROPY, None, 27).await?;
    let deadline = Instant::now() + PATIENCE;
    // Until its engine has published a status for it (`engine` is the publisher).
    while !run.status()?["engine"].is_string() {
        anyhow::ensure!(Instant::now() < deadline, "no status published:\n{}", run.engine.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (name, refusal) in [("hostile_entropy", "not failed"), ("nothing_here", "no projection named \"nothing_here\"")]
    {
        let out = std::process::Command::new(BIN).args(["retry", name, "--database-url", run.db.url()]).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(refusal), "{stderr}");
    }
    Ok(())
}

/// Runs a fixture (with `sidecar` as its settings) that misbehaves in a batch: it fails with an
/// error containing each of `expected`, and writes nothing to its table.
async fn refused_operation(component: &str, sidecar: Option<&str>, seed: u32, expected: &[&str]) -> anyhow::Result<()> {
    let run = Scenario::run(component, sidecar, seed).await?;
    let error = run.failure().await?;
    assert!(expected.iter().all(|e| error.contains(e)), "{error}");
    assert_eq!(run.rows("hits").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_of_the_wrong_type_fails_the_projection() -> anyhow::Result<()> {
    let expected = "operation 0: column \"count\" of table \"hits\" is bigint, but the value is text \"x\"";
    refused_operation(artifacts::HOSTILE_BAD_VALUE, None, 15, &[expected]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_to_an_unknown_table_fails_the_projection() -> anyhow::Result<()> {
    refused_operation(artifacts::HOSTILE_UNKNOWN_TABLE, None, 16, &["\"elsewhere\" is not a table of this projection"])
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_without_a_key_fails_the_projection() -> anyhow::Result<()> {
    refused_operation(artifacts::HOSTILE_NO_KEY, None, 17, &["key", "empty"]).await
}

/// Runs an escape fixture and returns its failure, which must refuse the statement.
async fn refused_escape(component: &str, seed: u32) -> anyhow::Result<Scenario> {
    let run = Scenario::run(component, None, seed).await?;
    let error = run.failure().await?;
    assert!(error.contains("permission denied") || error.contains("not allowed"), "{error}");
    Ok(run)
}

#[tokio::test(flavor = "multi_thread")]
async fn set_role_is_refused() -> anyhow::Result<()> {
    refused_escape(artifacts::HOSTILE_ESCAPE_SET_ROLE, 18).await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_role_is_refused() -> anyhow::Result<()> {
    refused_escape(artifacts::HOSTILE_ESCAPE_RESET_ROLE, 19).await.map(drop)
}

/// Raw SQL is refused unless the operator trusts the projection with the engine's rights.
async fn refused_escape_by_default(component: &str, seed: u32) -> anyhow::Result<Scenario> {
    let run = Scenario::run(component, None, seed).await?;
    let error = run.failure().await?;
    assert!(error.contains("raw SQL operations are not allowed"), "{error}");
    Ok(run)
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_event_log_is_refused() -> anyhow::Result<()> {
    // `failure` checks that public.events still holds every event.
    refused_escape_by_default(artifacts::HOSTILE_ESCAPE_DROP, 20).await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn writing_outside_its_schema_is_refused() -> anyhow::Result<()> {
    let run = refused_escape_by_default(artifacts::HOSTILE_ESCAPE_INSERT, 21).await?;
    let sql = "SELECT count(*) FROM public.streams WHERE stream_id = 'escaped-1'";
    assert_eq!(run.client.query_one(sql, &[]).await?.get::<_, i64>(0), 0, "the escaped row was written");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_projection_still_cannot_drop_the_event_log() -> anyhow::Result<()> {
    // Its SQL runs as its own role: PostgreSQL refuses; `failure` checks the log is whole.
    let run = Scenario::run(artifacts::HOSTILE_ESCAPE_DROP, Some("allow_sql = true\n"), 23).await?;
    let error = run.failure().await?;
    assert!(error.contains("permission denied") || error.contains("must be owner"), "{error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projections_own_ddl_cannot_leave_its_role() -> anyhow::Result<()> {
    // Its `describe` DDL resets the role and drops the log: the install fails, the log stays
    // whole (`failure` checks), and status explains it.
    let run = Scenario::run(artifacts::HOSTILE_ESCAPE_DDL, None, 25).await?;
    let error = run.failure().await?;
    assert!(error.contains("creating the tables of hostile_escape_ddl"), "{error}");
    assert!(error.contains("security-definer"), "{error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_projection_still_cannot_write_outside_its_schema() -> anyhow::Result<()> {
    let run = Scenario::run(artifacts::HOSTILE_ESCAPE_INSERT, Some("allow_sql = true\n"), 24).await?;
    let error = run.failure().await?;
    assert!(error.contains("permission denied"), "{error}");
    let sql = "SELECT count(*) FROM public.streams WHERE stream_id = 'escaped-1'";
    assert_eq!(run.client.query_one(sql, &[]).await?.get::<_, i64>(0), 0, "the escaped row was written");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn files_directories_environment_and_sockets_are_denied() -> anyhow::Result<()> {
    let run = Scenario::run(artifacts::HOSTILE_WASI_IO, None, 22).await?;
    wait_caught_up(&run.client, &[run.name.as_str()], PATIENCE, &run.engine).await?;
    let rows = run.client.query("SELECT attempt, outcome FROM hostile_wasi_io.attempts ORDER BY attempt", &[]).await?;
    let attempts: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let names: Vec<&str> = attempts.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(names, ["connect 127.0.0.1:5432", "environment", "list /", "read /etc/passwd"]);
    for (attempt, outcome) in &attempts {
        assert!(outcome.starts_with("denied"), "{attempt}: {outcome}");
    }
    // What it printed is in the engine's log, line by line, with the projection's name.
    let log = run.engine.log();
    let logged = |text: &str| {
        log.lines().any(|l| l.contains(text) && l.contains("hostile_wasi_io") && !text.contains("hostile_wasi_io"))
    };
    for line in ["a guest says hello on stdout", "a guest complains on stderr", "line 0", "line 97"] {
        assert!(logged(line), "{line:?} is not in the engine log:\n{log}");
    }
    // Bounded: the megabyte line is cut, and lines past the allowance of a batch are counted.
    assert!(logged("more bytes not logged"), "{log}");
    // 1,002 lines on stdout per batch: the first 100 logged (hello, the cut line, lines 0 to 97).
    assert!(logged("902 more lines of the projection's stdout were not logged"), "{log}");
    assert!(!logged("line 98"), "more than 100 lines were logged");
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 4096, "a log line of {longest} bytes");
    Ok(())
}

/// Runs a component the engine must refuse at load: the healthy projections beside it run
/// exactly right, and the engine's log explains the refusal with each of `expected`.
async fn refused_at_load(component: &str, seed: u32, expected: &[&str]) -> anyhow::Result<()> {
    let run = Scenario::run(component, None, seed).await?;
    let log = run.engine.log();
    let file = Path::new(component).file_name().and_then(|f| f.to_str()).expect("a file name");
    let refusal = log.lines().find(|l| l.contains("component refused") && l.contains(file));
    let refusal = refusal.unwrap_or_else(|| panic!("no refusal of {file} in the engine log:\n{log}"));
    assert!(expected.iter().all(|e| refusal.contains(e)), "{refusal}");
    assert!(run.status()?.is_null(), "a refused component has no status");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_importing_an_interface_the_host_lacks_is_refused_at_load() -> anyhow::Result<()> {
    let expected = ["the component imports `hostile:oracle/oracle`, which this engine does not provide"];
    refused_at_load(artifacts::HOSTILE_UNKNOWN_IMPORT, 28, &expected).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_built_against_a_newer_contract_is_refused_at_load() -> anyhow::Result<()> {
    let expected = [
        "the component was built against refract:projection@0.9.0 (it uses `refract:projection/projection@0.9.0`)",
        "it speaks refract:projection@0.1.0 and @0.2.0",
    ];
    refused_at_load(artifacts::HOSTILE_CONTRACT_0_9, 29, &expected).await
}

/// Copies every event of `from` into the empty log of `to`, identically (ids, positions, times).
async fn copy_events(from: &Client, to: &Client) -> anyhow::Result<()> {
    let rows = from
        .query(
            "SELECT global_position, stream_id, version, event_id, event_type, data::text, metadata::text, timestamp
               FROM events ORDER BY global_position",
            &[],
        )
        .await?;
    let insert =
        "INSERT INTO events (global_position, stream_id, version, event_id, event_type, data, metadata, timestamp)
                  VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb, $8)";
    for row in rows {
        let position: i64 = row.get(0);
        let (stream, version, id, kind): (String, i64, uuid::Uuid, String) =
            (row.get(1), row.get(2), row.get(3), row.get(4));
        let (data, metadata): (String, Option<String>) = (row.get(5), row.get(6));
        let timestamp: chrono::DateTime<chrono::Utc> = row.get(7);
        to.execute(insert, &[&position, &stream, &version, &id, &kind, &data, &metadata, &timestamp]).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn clocks_and_random_numbers_are_the_same_on_every_rebuild() -> anyhow::Result<()> {
    let first = Scenario::run(artifacts::HOSTILE_ENTROPY, None, 23).await?;
    wait_caught_up(&first.client, &["hostile_entropy"], PATIENCE, &first.engine).await?;
    // Two rebuilds from scratch, each in a database of its own with the very same events.
    let one = entropy_rebuild(&first.client).await?;
    let two = entropy_rebuild(&first.client).await?;
    assert_eq!(one.len() as i64, first.events);
    assert_eq!(one, two, "two rebuilds over the same events differ");
    Ok(())
}

/// Projects the events of `source` with the entropy fixture in a new database; its readings.
///
/// Clocks are derived from the batch, so the batches must be the same on every rebuild: the
/// engine starts once the visibility horizon has passed every event (an open transaction of
/// another test can hold it back and end a batch early), and batches are then cut by size
/// alone.
async fn entropy_rebuild(source: &Client) -> anyhow::Result<Vec<(i64, i64, i64, String)>> {
    let db = TestDb::migrated().await?;
    let client = db.connect().await?;
    copy_events(source, &client).await?;
    let deadline = Instant::now() + PATIENCE;
    let past = "SELECT pg_snapshot_xmin(pg_current_snapshot()) > (SELECT max(transaction_id) FROM events)";
    while !client.query_one(past, &[]).await?.get::<_, bool>(0) {
        anyhow::ensure!(Instant::now() < deadline, "the visibility horizon never passed the events");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = projections_dir(&[artifacts::HOSTILE_ENTROPY])?;
    let engine = EngineProcess::start(BIN, db.url(), dir.path(), &dir.path().join("engine.log"), &[])?;
    wait_caught_up(&client, &["hostile_entropy"], PATIENCE, &engine).await?;
    let readings = "SELECT position, wall_us, monotonic_ns, random FROM hostile_entropy.readings ORDER BY position";
    let rows = client.query(readings, &[]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_million_operations_for_one_event_fail_the_projection_at_its_result_limit() -> anyhow::Result<()> {
    // Refused while the result is copied out of the guest, before any of it reaches the
    // database; the message names the limit and the setting.
    let expected = ["more than 16 MiB", "setting max_result_mib"];
    refused_operation(artifacts::HOSTILE_FLOOD, Some("max_result_mib = 16\n"), 24, &expected).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_packed_result_fails_the_projection_and_writes_nothing() -> anyhow::Result<()> {
    // Nothing is written, not even the valid upsert before the malformed operation.
    let expected = "the projection returned a malformed operations buffer: at byte 61: 9 is not a valid operation kind";
    refused_operation(artifacts::HOSTILE_MALFORMED_PACKED, None, 30, &[expected]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn packed_operations_over_the_result_limit_in_host_memory_fail_the_projection() -> anyhow::Result<()> {
    // 4 MiB packed, within the limit as bytes; 4M parameters are far more once read back.
    let expected = ["more than 16 MiB", "setting max_result_mib"];
    refused_operation(artifacts::HOSTILE_FLOOD_PACKED, Some("max_result_mib = 16\n"), 31, &expected).await
}

/// A guest that goes on after a read of its rows failed: when the failure was the engine's
/// (its connection for reading rows was cut), the batch is not committed but applied again
/// from the checkpoint over a new connection, so no row rests on a read that never happened.
#[tokio::test(flavor = "multi_thread")]
async fn writes_made_after_a_lost_read_are_not_committed() -> anyhow::Result<()> {
    let mut run = Scenario::run(artifacts::HOSTILE_IGNORE_READ_ERRORS, Some("batch_size = 100\n"), 28).await?;
    let name = run.name.clone();
    let name = name.as_str();
    wait_caught_up(&run.client, &[name], PATIENCE, &run.engine).await?;
    let notes = format!(
        "SELECT count(*) FILTER (WHERE note = 'found'), count(*) FILTER (WHERE note = 'read failed') FROM {name}.hits"
    );
    let (found, failed): (i64, i64) = run.client.query_one(notes.as_str(), &[]).await.map(|r| (r.get(0), r.get(1)))?;
    assert!(found > 0 && failed == 0, "{found} reads found their row, {failed} failed before any cut");

    // Only the connection that reads its rows, idle between batches, is cut.
    let cut = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                  AND query LIKE 'SELECT % FROM %.\"hits\" WHERE %'";
    let cut: i64 = run.client.query_one(cut, &[]).await?.get(0);
    assert_eq!(cut, 1, "the connection reading rows was not found");
    generate(&run.db, 29)?;
    run.events = event_count(&run.client).await?;
    wait_caught_up(&run.client, &[name, HEALTHY[0], HEALTHY[1]], PATIENCE, &run.engine).await?;

    let (_, failed): (i64, i64) = run.client.query_one(notes.as_str(), &[]).await.map(|r| (r.get(0), r.get(1)))?;
    assert_eq!(failed, 0, "rows written after a lost read were committed; engine log:\n{}", run.engine.log());
    assert_eq!(run.rows("hits").await?, run.events, "every event has its row");
    assert!(run.engine.log().contains("connection for reading rows was lost"), "{}", run.engine.log());
    run.assert_healthy_exact().await
}
