//! `refract::migrate` against a real PostgreSQL: idempotence, concurrency, checksums, and
//! taking over a database that go-mink has been writing to.

use refract::migrate::{MIGRATIONS, MigrateError, migrate};
use refract::store::{EventStore, ExpectedVersion, NewEvent};
use refract_test_harness::TestDb;
use serde_json::json;

/// go-mink's PostgreSQL adapter DDL (adapters/postgres/postgres.go, `Migrate`), verbatim but
/// for the schema, with the rows its `Append` writes.
const GO_MINK: &str = r#"
CREATE TABLE streams (
    id              BIGSERIAL PRIMARY KEY,
    stream_id       VARCHAR(500) NOT NULL UNIQUE,
    category        VARCHAR(250) NOT NULL,
    version         BIGINT NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE TABLE events (
    global_position BIGSERIAL PRIMARY KEY,
    stream_id       VARCHAR(500) NOT NULL,
    version         BIGINT NOT NULL,
    event_id        UUID NOT NULL DEFAULT gen_random_uuid(),
    event_type      VARCHAR(500) NOT NULL,
    data            JSONB NOT NULL,
    metadata        JSONB,
    timestamp       TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    UNIQUE(stream_id, version)
);
CREATE INDEX IF NOT EXISTS idx_streams_category ON streams(category);
CREATE INDEX IF NOT EXISTS idx_events_stream ON events(stream_id, version);
CREATE INDEX IF NOT EXISTS idx_events_type ON events(event_type);
CREATE INDEX IF NOT EXISTS idx_events_timestamp ON events(timestamp);
CREATE TABLE snapshots (
    stream_id       VARCHAR(500) PRIMARY KEY,
    version         BIGINT NOT NULL,
    data            BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE TABLE checkpoints (
    projection_name VARCHAR(500) PRIMARY KEY,
    position        BIGINT NOT NULL DEFAULT 0,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

INSERT INTO streams (stream_id, category, version) VALUES ('order-a', 'order', 0);
INSERT INTO events (stream_id, version, event_type, data, metadata) VALUES
    ('order-a', 1, 'OrderCreated', '{"order_id": "a"}', '{"correlation_id": "c1"}'),
    ('order-a', 2, 'ItemAdded', '{"product_id": "p", "quantity": 1, "price": 2.5}', '{}');
UPDATE streams SET version = 2, updated_at = NOW() WHERE stream_id = 'order-a';
INSERT INTO streams (stream_id, category, version) VALUES ('order-b', 'order', 1);
INSERT INTO events (stream_id, version, event_type, data, metadata) VALUES
    ('order-b', 1, 'OrderCreated', '{"order_id": "b"}', 'null');
INSERT INTO snapshots (stream_id, version, data) VALUES ('order-a', 2, '\x00');
INSERT INTO checkpoints (projection_name, position) VALUES ('legacy', 3);
"#;

async fn applied_versions(client: &tokio_postgres::Client, schema: &str) -> anyhow::Result<Vec<i32>> {
    let rows =
        client.query(&format!("SELECT version FROM \"{schema}\".refract_migrations ORDER BY version"), &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn all_versions() -> Vec<i32> {
    MIGRATIONS.iter().map(|m| m.version).collect()
}

#[tokio::test]
async fn migrating_twice_applies_everything_once() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut client = db.connect().await?;
    let first = migrate(&mut client, "public").await?;
    assert_eq!(first.iter().map(|a| a.version).collect::<Vec<_>>(), all_versions());
    assert!(migrate(&mut client, "public").await?.is_empty(), "nothing left to apply");
    assert_eq!(applied_versions(&client, "public").await?, all_versions());

    let tables: Vec<String> = client
        .query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for table in ["checkpoints", "dead_letters", "events", "refract_migrations", "snapshots", "streams"] {
        assert!(tables.iter().any(|t| t == table), "{table} missing from {tables:?}");
    }
    Ok(())
}

#[tokio::test]
async fn the_schema_is_configurable() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut client = db.connect().await?;
    migrate(&mut client, "Event Store").await?;
    assert_eq!(applied_versions(&client, "Event Store").await?, all_versions());
    let public: i64 = client
        .query_one("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'", &[])
        .await?
        .get(0);
    assert_eq!(public, 0, "nothing was created outside the chosen schema");

    let mut store = EventStore::new(client, "Event Store").await?;
    store.append("order-1", ExpectedVersion::NoStream, &[NewEvent::new("OrderCreated", json!({}))]).await?;
    assert_eq!(store.read_all(0, 10).await?.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrators_apply_each_migration_once() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let mut client = db.connect().await?;
        tasks.push(tokio::spawn(async move { migrate(&mut client, "public").await }));
    }
    let mut applied = Vec::new();
    for task in tasks {
        applied.extend(task.await??.into_iter().map(|a| a.version));
    }
    applied.sort();
    assert_eq!(applied, all_versions(), "each migration applied by exactly one migrator");
    assert_eq!(applied_versions(&db.connect().await?, "public").await?, all_versions());
    Ok(())
}

#[tokio::test]
async fn an_edited_migration_is_refused() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut client = db.connect().await?;
    client.batch_execute("UPDATE refract_migrations SET checksum = 'abc' WHERE version = 2").await?;
    let err = migrate(&mut client, "public").await.unwrap_err();
    match &err {
        MigrateError::ChecksumMismatch { version, recorded, embedded, .. } => {
            assert_eq!((*version, recorded.as_str()), (2, "abc"));
            assert_eq!(embedded, &MIGRATIONS[1].checksum());
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(err.to_string().contains("0002_gap_safe_tailing"), "{err}");

    client
        .execute("UPDATE refract_migrations SET checksum = $1 WHERE version = 2", &[&MIGRATIONS[1].checksum()])
        .await?;
    client
        .batch_execute("INSERT INTO refract_migrations (version, name, checksum) VALUES (9999, 'future', 'x')")
        .await?;
    let err = migrate(&mut client, "public").await.unwrap_err();
    assert!(matches!(err, MigrateError::Unknown { version: 9999, .. }), "{err}");
    Ok(())
}

#[tokio::test]
async fn migrating_over_go_mink_tables_keeps_their_rows_and_makes_them_tailable() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut client = db.connect().await?;
    client.batch_execute(GO_MINK).await?;

    let applied = migrate(&mut client, "public").await?;
    assert_eq!(applied.len(), MIGRATIONS.len());

    // The old events are all there, ordered before anything new by their transaction id 0.
    let old: Vec<(String, i64, i64)> = client
        .query(
            "SELECT stream_id::text, version, transaction_id::text::bigint FROM events ORDER BY global_position",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(old, [("order-a".into(), 1, 0), ("order-a".into(), 2, 0), ("order-b".into(), 1, 0)]);
    let checkpoint = client
        .query_one(
            "SELECT position, transaction_id::text::bigint FROM checkpoints WHERE projection_name = 'legacy'",
            &[],
        )
        .await?;
    assert_eq!((checkpoint.get::<_, i64>(0), checkpoint.get::<_, i64>(1)), (3, 0));

    // The store continues the old streams.
    let mut store = EventStore::new(client, "public").await?;
    let outcome =
        store.append("order-a", ExpectedVersion::Exact(2), &[NewEvent::new("OrderConfirmed", json!({}))]).await?;
    assert_eq!((outcome.first_version, outcome.last_version), (3, 3));
    let stream = store.read_stream("order-a", 1).await?;
    assert_eq!(
        stream.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>(),
        ["OrderCreated", "ItemAdded", "OrderConfirmed"]
    );
    assert_eq!(stream[0].metadata, Some(json!({ "correlation_id": "c1" })));
    assert_eq!(stream.iter().map(|e| e.transaction_id > 0).collect::<Vec<_>>(), [false, false, true]);

    // A go-mink writer that knows nothing of the new columns keeps working, and its events
    // get the writing transaction's id.
    let client = store.client();
    client
        .batch_execute(
            "BEGIN;
             SELECT version FROM streams WHERE stream_id = 'order-b' FOR UPDATE;
             INSERT INTO events (stream_id, version, event_type, data, metadata) VALUES ('order-b', 2, 'OrderCancelled', '{}', NULL);
             UPDATE streams SET version = 2, updated_at = NOW() WHERE stream_id = 'order-b';
             COMMIT;",
        )
        .await?;
    let tailed: Vec<(String, i64)> = client
        .query(
            "SELECT stream_id::text, version FROM events
              WHERE (transaction_id, global_position) > ('0'::xid8, 0)
              ORDER BY transaction_id, global_position",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        tailed,
        [
            ("order-a".into(), 1),
            ("order-a".into(), 2),
            ("order-b".into(), 1),
            ("order-a".into(), 3),
            ("order-b".into(), 2)
        ]
    );
    let new_tx: i64 = client
        .query_one("SELECT transaction_id::text::bigint FROM events WHERE stream_id = 'order-b' AND version = 2", &[])
        .await?
        .get(0);
    assert!(new_tx > 0);
    Ok(())
}
