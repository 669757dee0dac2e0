//! `refract migrate`, `append` and `generate` as an operator runs them.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use refract::generate::orders::{OrderConfig, OrderGenerator};
use refract_test_harness::TestDb;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_refract");

fn refract(args: &[&str], stdin: impl AsRef<[u8]>) -> anyhow::Result<Output> {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().expect("piped").write_all(stdin.as_ref())?;
    Ok(child.wait_with_output()?)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `refract <command...> --database-url <db> <extra...>`, with `stdin`.
fn on_db(command: &[&str], db: &TestDb, extra: &[&str], stdin: impl AsRef<[u8]>) -> anyhow::Result<Output> {
    let mut args = command.to_vec();
    args.extend_from_slice(&["--database-url", db.url()]);
    args.extend_from_slice(extra);
    refract(&args, stdin)
}

fn migrate(db: &TestDb, extra: &[&str]) -> anyhow::Result<Output> {
    on_db(&["migrate"], db, extra, "")
}

fn append(db: &TestDb, input: impl AsRef<[u8]>, extra: &[&str]) -> anyhow::Result<Output> {
    on_db(&["append"], db, extra, input)
}

fn generate_orders(db: &TestDb, extra: &[&str]) -> anyhow::Result<Output> {
    on_db(&["generate", "orders"], db, extra, "")
}

/// Asserts that the command failed and that its error output says `text`.
fn assert_refused(out: &Output, text: &str) {
    assert!(!out.status.success(), "{}", stdout(out));
    assert!(stderr(out).contains(text), "{}", stderr(out));
}

async fn event_count(db: &TestDb) -> anyhow::Result<i64> {
    Ok(db.connect().await?.query_one("SELECT count(*) FROM events", &[]).await?.get(0))
}

#[tokio::test]
async fn migrate_prints_what_it_applied() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let first = migrate(&db, &[])?;
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("applied 0001_event_store to schema \"public\""), "{}", stdout(&first));
    let again = migrate(&db, &[])?;
    assert!(again.status.success());
    assert!(stdout(&again).contains("is up to date"), "{}", stdout(&again));
    Ok(())
}

#[tokio::test]
async fn an_unreachable_server_is_named_with_what_to_do() -> anyhow::Result<()> {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let out = refract(&["migrate", "--database-url", &url], "")?;
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(message.contains(&format!("cannot connect to PostgreSQL at 127.0.0.1:{port}")), "{message}");
    assert!(message.contains("DATABASE_URL"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    Ok(())
}

#[tokio::test]
async fn append_reads_json_lines_from_stdin_and_files() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let id = Uuid::new_v4();
    let input = format!(
        r#"{{"stream_id": "order-1", "type": "OrderCreated", "data": {{"order_id": "1"}}, "event_id": "{id}", "metadata": {{"correlation_id": "c-1", "occurred_at": "2024-01-02T03:04:05Z"}}}}

{{"stream_id": "order-1", "type": "ItemAdded", "data": {{"product_id": "p", "quantity": 2, "price": 9.99}}}}
{{"stream_id": "cart-7", "event_type": "Opened", "data": {{}}, "expected_version": "no_stream"}}
{{"stream_id": "order-1", "type": "OrderConfirmed", "data": {{}}, "expected_version": 2}}
"#
    );
    let out = append(&db, &input, &[])?;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "appended 4 events to 2 streams");

    let client = db.connect().await?;
    let rows = client
        .query("SELECT stream_id::text, version, event_type::text, metadata FROM events ORDER BY global_position", &[])
        .await?;
    let got: Vec<(String, i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(
        got,
        [
            ("order-1".into(), 1, "OrderCreated".into()),
            ("order-1".into(), 2, "ItemAdded".into()),
            ("cart-7".into(), 1, "Opened".into()),
            ("order-1".into(), 3, "OrderConfirmed".into()),
        ]
    );
    let metadata: serde_json::Value = rows[0].get(3);
    assert_eq!(metadata["correlation_id"], "c-1");
    assert_eq!(metadata["occurred_at"], "2024-01-02T03:04:05Z");

    // The same file again: the line with an event_id is recognised, the others are new events.
    let path = std::env::temp_dir().join(format!("{}.jsonl", db.name()));
    std::fs::write(
        &path,
        format!(
            r#"{{"stream_id": "order-1", "type": "OrderCreated", "data": {{"order_id": "1"}}, "event_id": "{id}"}}"#
        ),
    )?;
    let out = append(&db, "", &[path.to_str().expect("utf-8 path")])?;
    std::fs::remove_file(&path)?;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "appended 0 events to 0 streams; 1 events were already stored");
    assert_eq!(event_count(&db).await?, 4);
    Ok(())
}

#[tokio::test]
async fn each_bad_line_is_reported_by_number_and_nothing_is_appended() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let good = r#"{"stream_id": "order-1", "type": "OrderCreated", "data": {}}"#;
    let long = "x".repeat(501);
    let cases: Vec<(String, &str)> = vec![
        ("{\"stream_id\": \"order-1\", \"type\": \"A\"".into(), "not a valid event"),
        (r#"{"stream_id": "order-1", "type": "A", "data": [1]}"#.into(), "must be a JSON object, not an array"),
        (r#"{"stream_id": "order-1", "type": "A", "data": "x"}"#.into(), "must be a JSON object, not a string"),
        (r#"{"stream_id": "", "type": "A", "data": {}}"#.into(), "stream id is empty"),
        (format!(r#"{{"stream_id": "{long}", "type": "A", "data": {{}}}}"#), "stream id is 501 characters long"),
        (r#"{"stream_id": "order-1", "data": {}}"#.into(), "missing field `type`"),
        (r#"{"stream_id": "order-1", "type": "A", "data": {}, "stream": 1}"#.into(), "unknown field `stream`"),
        (
            r#"{"stream_id": "order-1", "type": "A", "data": {}, "expected_version": -1}"#.into(),
            "expected_version must be",
        ),
        (r#"{"stream_id": "order-1", "type": "A", "data": {}, "event_id": "nope"}"#.into(), "not a valid event"),
        ("[1, 2]".into(), "not a valid event"),
    ];
    for (bad, reason) in cases {
        let input = format!("{good}\n{good}\n{bad}\n{good}\n");
        let out = append(&db, &input, &[])?;
        let message = stderr(&out);
        assert!(!out.status.success(), "accepted: {bad}");
        assert!(message.contains("line 3: "), "{bad}: {message}");
        assert!(message.contains(reason), "{bad}: expected {reason:?} in {message}");
        assert!(message.contains("nothing was appended"), "{message}");
        assert_eq!(event_count(&db).await?, 0, "{bad}");
    }

    // Invalid UTF-8 is a bad line too.
    let mut bytes = format!("{good}\n").into_bytes();
    bytes.extend_from_slice(b"\xff\xfe\n");
    let out = append(&db, &bytes, &[])?;
    assert_refused(&out, "line 2: ");
    assert_eq!(event_count(&db).await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_conflict_in_the_input_appends_nothing_and_names_the_lines() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let input = r#"{"stream_id": "order-1", "type": "OrderCreated", "data": {}}
{"stream_id": "order-2", "type": "OrderCreated", "data": {}}
{"stream_id": "order-2", "type": "ItemAdded", "data": {}, "expected_version": 5}
"#;
    let out = append(&db, input, &[])?;
    assert_refused(&out, "nothing was appended; the failing stream is on line 2, line 3");
    assert_refused(&out, "expected version 5, but the stream is at version 1");
    assert_eq!(event_count(&db).await?, 0);
    Ok(())
}

#[tokio::test]
async fn continue_on_error_skips_and_reports_each_bad_line() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let input = r#"{"stream_id": "order-1", "type": "OrderCreated", "data": {}}
not json
{"stream_id": "order-2", "type": "OrderCreated", "data": 7}
{"stream_id": "order-3", "type": "OrderCreated", "data": {}}
{"stream_id": "order-3", "type": "ItemAdded", "data": {}, "expected_version": "no_stream"}
"#;
    let out = append(&db, input, &["--continue-on-error"])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(message.contains("line 2: not a valid event"), "{message}");
    assert!(message.contains("line 3: data of event"), "{message}");
    assert!(message.contains("line 5: skipped: concurrency conflict"), "{message}");
    assert_eq!(stdout(&out).trim(), "appended 2 events to 2 streams; skipped 3 lines");
    assert_eq!(event_count(&db).await?, 2);
    Ok(())
}

#[tokio::test]
async fn generate_writes_the_generators_events_and_consistent_streams() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let out = generate_orders(&db, &["--orders", "300", "--seed", "5"])?;
    assert!(out.status.success(), "{}", stderr(&out));

    let expected: Vec<_> =
        OrderGenerator::new(OrderConfig { orders: 300, seed: 5, ..OrderConfig::default() }).collect();
    assert!(
        stdout(&out).starts_with(&format!("generated {} events in 300 order streams", expected.len())),
        "{}",
        stdout(&out)
    );
    let client = db.connect().await?;
    let rows = client
        .query("SELECT event_id, stream_id::text, version, event_type::text, data, timestamp FROM events ORDER BY global_position", &[])
        .await?;
    assert_eq!(rows.len(), expected.len());
    for (row, event) in rows.iter().zip(&expected) {
        assert_eq!(row.get::<_, Uuid>(0), event.event_id);
        assert_eq!(row.get::<_, String>(1), event.stream_id);
        assert_eq!(row.get::<_, i64>(2), event.version);
        assert_eq!(row.get::<_, String>(3), event.event_type);
        assert_eq!(row.get::<_, serde_json::Value>(4), event.data);
        assert_eq!(row.get::<_, chrono::DateTime<chrono::Utc>>(5), event.timestamp);
    }

    // streams: one row per stream, at the stream's last version, category `order`.
    let mut last: HashMap<&str, i64> = HashMap::new();
    for event in &expected {
        last.insert(&event.stream_id, event.version);
    }
    let streams = client.query("SELECT stream_id::text, category::text, version FROM streams", &[]).await?;
    assert_eq!(streams.len(), last.len());
    for row in &streams {
        let stream: String = row.get(0);
        assert_eq!(
            (row.get::<_, String>(1).as_str(), row.get::<_, i64>(2)),
            ("order", last[stream.as_str()]),
            "{stream}"
        );
    }

    // The same seed again would duplicate the streams: refused, nothing added.
    let again = generate_orders(&db, &["--orders", "300", "--seed", "5"])?;
    assert_refused(&again, "already holds some of these streams");
    assert_eq!(event_count(&db).await?, expected.len() as i64);

    // Another seed adds to the store.
    let other = generate_orders(&db, &["--orders", "10", "--seed", "6"])?;
    assert!(other.status.success(), "{}", stderr(&other));
    Ok(())
}

#[tokio::test]
async fn generate_and_append_into_an_unmigrated_database_say_to_migrate() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let out = generate_orders(&db, &["--orders", "5"])?;
    assert_refused(&out, "run `refract migrate` first");
    let out = append(&db, r#"{"stream_id": "a-1", "type": "A", "data": {}}"#, &[])?;
    assert_refused(&out, "run `refract migrate` first");
    Ok(())
}

#[tokio::test]
async fn an_event_id_used_twice_in_the_input_is_a_bad_line() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let id = Uuid::new_v4();
    let input = format!(
        "{{\"stream_id\": \"a-1\", \"type\": \"A\", \"data\": {{}}, \"event_id\": \"{id}\"}}\n\
         {{\"stream_id\": \"a-2\", \"type\": \"A\", \"data\": {{}}, \"event_id\": \"{id}\"}}\n"
    );
    let out = append(&db, &input, &[])?;
    assert_refused(&out, &format!("line 2: event_id {id} is already used on line 1"));
    assert_eq!(event_count(&db).await?, 0);
    Ok(())
}

#[tokio::test]
async fn the_commands_work_in_another_schema() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let migrated = migrate(&db, &["--schema", "es"])?;
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let input = r#"{"stream_id": "a-1", "type": "A", "data": {}}"#;
    let appended = append(&db, input, &["--schema", "es"])?;
    assert!(appended.status.success(), "{}", stderr(&appended));
    let generated = generate_orders(&db, &["--schema", "es", "--orders", "20"])?;
    assert!(generated.status.success(), "{}", stderr(&generated));
    let client = db.connect().await?;
    let streams: i64 = client.query_one("SELECT count(*) FROM es.streams", &[]).await?.get(0);
    assert_eq!(streams, 21);
    Ok(())
}
