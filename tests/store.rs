//! The event store's append and read API against a real PostgreSQL.

use std::collections::{BTreeSet, HashSet};

use chrono::{TimeZone as _, Utc};
use futures_util::StreamExt as _;
use refract::store::{
    AppendRequest, EventStore, ExpectedVersion, InvalidInput, Metadata, NOTIFY_CHANNEL, NewEvent, StoreError,
};
use refract_test_harness::TestDb;
use serde_json::json;
use tokio_postgres::{AsyncMessage, NoTls};
use uuid::Uuid;

async fn store(db: &TestDb) -> anyhow::Result<EventStore> {
    Ok(EventStore::new(db.connect().await?, "public").await?)
}

fn event(n: i64) -> NewEvent {
    NewEvent::new("ItemAdded", json!({ "product_id": format!("p{n}"), "quantity": n, "price": 1.5 }))
}

/// A request to append `event(n)` to `stream_id`.
fn request(stream_id: &str, expected: ExpectedVersion, n: i64) -> AppendRequest {
    AppendRequest { stream_id: stream_id.into(), expected, events: vec![event(n)] }
}

/// (events rows, streams rows) of the database.
async fn counts(db: &TestDb) -> anyhow::Result<(i64, i64)> {
    let client = db.connect().await?;
    let row = client.query_one("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM streams)", &[]).await?;
    Ok((row.get(0), row.get(1)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_appenders_on_one_stream_take_each_version_once() -> anyhow::Result<()> {
    const WRITERS: usize = 16;
    const EACH: usize = 8;
    let db = TestDb::migrated().await?;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let mut store = store(&db).await?;
        tasks.push(tokio::spawn(async move {
            // Each writer appends EACH single events, always expecting the version it last saw;
            // a conflict tells it the actual version, and it tries again.
            let (mut known, mut won, mut conflicts) = (0i64, Vec::new(), 0);
            while won.len() < EACH {
                let e = NewEvent::new("Tick", json!({ "writer": writer, "n": won.len() }));
                match store.append("counter-1", ExpectedVersion::Exact(known), std::slice::from_ref(&e)).await {
                    Ok(outcome) => {
                        assert_eq!((outcome.first_version, outcome.last_version), (known + 1, known + 1));
                        won.push((outcome.first_version, e.event_id));
                        known += 1;
                    }
                    Err(StoreError::Conflict { actual, expected, .. }) => {
                        assert_eq!(expected, ExpectedVersion::Exact(known));
                        assert!(actual > known, "a conflict reports a newer version ({actual} > {known})");
                        known = actual;
                        conflicts += 1;
                    }
                    Err(other) => panic!("unexpected error: {other}"),
                }
            }
            (won, conflicts)
        }));
    }
    let mut claimed = BTreeSet::new();
    let mut ids = HashSet::new();
    for task in tasks {
        let (won, _conflicts) = task.await?;
        for (version, id) in won {
            assert!(claimed.insert(version), "version {version} was won twice");
            ids.insert(id);
        }
    }
    let total = (WRITERS * EACH) as i64;
    assert_eq!(claimed, (1..=total).collect::<BTreeSet<_>>(), "every version won exactly once, no holes");

    let client = db.connect().await?;
    let rows = client
        .query("SELECT version, event_id FROM events WHERE stream_id = 'counter-1' ORDER BY version", &[])
        .await?;
    let stored: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(stored, (1..=total).collect::<Vec<_>>());
    assert_eq!(rows.iter().map(|r| r.get::<_, Uuid>(1)).collect::<HashSet<_>>(), ids, "exactly the winners' events");
    let version: i64 = client.query_one("SELECT version FROM streams WHERE stream_id = 'counter-1'", &[]).await?.get(0);
    assert_eq!(version, total);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_sixteen_creators_of_a_new_stream_wins() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let mut store = store(&db).await?;
        tasks.push(tokio::spawn(async move {
            store.append("order-new", ExpectedVersion::NoStream, &[event(1), event(2)]).await
        }));
    }
    let (mut wins, mut conflicts) = (0, 0);
    for task in tasks {
        match task.await? {
            Ok(outcome) => {
                assert_eq!((outcome.first_version, outcome.last_version), (1, 2));
                wins += 1;
            }
            Err(StoreError::Conflict { expected: ExpectedVersion::NoStream, actual: 2, .. }) => conflicts += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!((wins, conflicts), (1, 15));
    assert_eq!(counts(&db).await?, (2, 1));
    Ok(())
}

#[tokio::test]
async fn a_retried_append_returns_the_original_outcome_and_writes_nothing() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut store = store(&db).await?;
    let events = [event(1), event(2), event(3)];
    let first = store.append("order-1", ExpectedVersion::NoStream, &events).await?;
    assert!(!first.already_appended);
    assert_eq!((first.first_version, first.last_version), (1, 3));

    // The same request again, as after a lost reply: same outcome, nothing new.
    let retry = store.append("order-1", ExpectedVersion::NoStream, &events).await?;
    assert!(retry.already_appended);
    assert_eq!((retry.first_version, retry.last_version, &retry.positions), (1, 3, &first.positions));
    assert_eq!(counts(&db).await?, (3, 1));

    // A later append moves the stream on; a retry of the first one still succeeds unchanged.
    store.append("order-1", ExpectedVersion::Exact(3), &[event(4)]).await?;
    let late = store.append("order-1", ExpectedVersion::NoStream, &events).await?;
    assert!(late.already_appended);
    assert_eq!(late.positions, first.positions);
    assert_eq!(counts(&db).await?, (4, 1));
    Ok(())
}

#[tokio::test]
async fn a_stored_event_id_in_a_different_append_is_refused() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut store = store(&db).await?;
    let events = [event(1), event(2)];
    store.append("order-1", ExpectedVersion::Any, &events).await?;

    // The id of a stored event, in another stream.
    let err = store.append("order-2", ExpectedVersion::Any, &[events[0].clone()]).await.unwrap_err();
    match err {
        StoreError::EventIdTaken { event_id, stream_id, stored_in, version } => {
            assert_eq!(
                (event_id, stream_id.as_str(), stored_in.as_str(), version),
                (events[0].event_id, "order-2", "order-1", 1)
            );
        }
        other => panic!("unexpected error: {other}"),
    }
    // Part of a stored append together with a new event.
    let err = store.append("order-1", ExpectedVersion::Any, &[events[1].clone(), event(3)]).await.unwrap_err();
    assert!(matches!(err, StoreError::EventIdTaken { version: 2, .. }), "{err}");
    assert_eq!(counts(&db).await?, (2, 1));
    Ok(())
}

#[tokio::test]
async fn conflicts_carry_the_expected_and_the_actual_version() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut store = store(&db).await?;
    store.append("order-1", ExpectedVersion::NoStream, &[event(1), event(2)]).await?;

    let cases = [
        ("order-1", ExpectedVersion::NoStream, 2),
        ("order-1", ExpectedVersion::Exact(1), 2),
        ("order-1", ExpectedVersion::Exact(3), 2),
        ("order-9", ExpectedVersion::Exact(4), 0),
    ];
    for (stream, expected, actual) in cases {
        match store.append(stream, expected, &[event(9)]).await {
            Err(StoreError::Conflict { stream_id, expected: e, actual: a }) => {
                assert_eq!((stream_id.as_str(), e, a), (stream, expected, actual));
            }
            other => panic!("{stream} expecting {expected}: {other:?}"),
        }
    }
    let message = store.append("order-1", ExpectedVersion::Exact(1), &[event(9)]).await.unwrap_err().to_string();
    assert_eq!(
        message,
        "concurrency conflict on stream \"order-1\": expected version 1, but the stream is at version 2"
    );
    // The failed append to a new stream left no `streams` row behind.
    assert_eq!(counts(&db).await?, (2, 1));

    // The expectations that hold do append.
    store.append("order-1", ExpectedVersion::Exact(2), &[event(3)]).await?;
    store.append("order-1", ExpectedVersion::Any, &[event(4)]).await?;
    store.append("order-9", ExpectedVersion::Exact(0), &[event(1)]).await?;
    assert_eq!(counts(&db).await?, (5, 2));
    Ok(())
}

#[tokio::test]
async fn invalid_input_is_refused_and_writes_nothing() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut store = store(&db).await?;
    let long = "x".repeat(501);
    let long_category = format!("{}-1", "c".repeat(251));
    let twice = event(1);
    let cases: Vec<(&str, Vec<NewEvent>, InvalidInput)> = vec![
        ("", vec![event(1)], InvalidInput::EmptyStreamId),
        (&long, vec![event(1)], InvalidInput::StreamIdTooLong { chars: 501 }),
        ("order-1", vec![], InvalidInput::NoEvents { stream_id: "order-1".into() }),
        ("order-1", vec![twice.clone(), twice.clone()], InvalidInput::DuplicateEventId(twice.event_id)),
        ("bad\0id", vec![event(1)], InvalidInput::NulCharacter { what: "stream id".into() }),
    ];
    for (stream, events, expected) in cases {
        match store.append(stream, ExpectedVersion::Any, &events).await {
            Err(StoreError::Invalid(found)) => assert_eq!(found, expected),
            other => panic!("{stream:?}: {other:?}"),
        }
    }
    let err = store.append(&long_category, ExpectedVersion::Any, &[event(1)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(InvalidInput::CategoryTooLong { chars: 251, .. })), "{err}");

    // Data must be an object; the good event in the same append is not written either.
    for data in [json!([1, 2]), json!("text"), json!(3), json!(null)] {
        let bad = NewEvent::new("OrderCreated", data);
        let err = store.append("order-1", ExpectedVersion::Any, &[event(1), bad.clone()]).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid(InvalidInput::DataNotObject { event_id, .. }) if *event_id == bad.event_id),
            "{err}"
        );
    }
    let err = store.append("order-1", ExpectedVersion::Any, &[NewEvent::new("", json!({}))]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(InvalidInput::EmptyEventType { .. })), "{err}");
    let nul = NewEvent::new("Note", json!({ "text": "a\u{0}b" }));
    let err = store.append("order-1", ExpectedVersion::Any, &[nul]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(InvalidInput::NulCharacter { .. })), "{err}");
    assert_eq!(counts(&db).await?, (0, 0));

    // At the limits: 500 characters (not bytes) of stream id are fine.
    let at_limit = format!("order-{}", "é".repeat(494));
    store.append(&at_limit, ExpectedVersion::Any, &[event(1)]).await?;
    assert_eq!(counts(&db).await?, (1, 1));
    Ok(())
}

#[tokio::test]
async fn append_all_is_atomic_across_streams() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut store = store(&db).await?;
    let requests = [request("order-1", ExpectedVersion::NoStream, 1), request("order-2", ExpectedVersion::Exact(7), 2)];
    let err = store.append_all(&requests).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { actual: 0, .. }), "{err}");
    assert_eq!(counts(&db).await?, (0, 0));

    let requests = [
        request("order-1", ExpectedVersion::NoStream, 1),
        request("order-1", ExpectedVersion::Exact(1), 2),
        request("cart-2", ExpectedVersion::Any, 3),
    ];
    let outcomes = store.append_all(&requests).await?;
    let versions: Vec<(i64, i64)> = outcomes.iter().map(|o| (o.first_version, o.last_version)).collect();
    assert_eq!(versions, [(1, 1), (2, 2), (1, 1)]);
    assert_eq!(counts(&db).await?, (3, 2));
    Ok(())
}

#[tokio::test]
async fn reads_return_what_was_appended_with_metadata_and_category() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut store = store(&db).await?;
    let occurred = Utc.with_ymd_and_hms(2020, 5, 17, 8, 30, 0).unwrap();
    let mut extra = serde_json::Map::new();
    extra.insert("schema_version".into(), json!(2));
    let metadata = Metadata {
        correlation_id: Some("req-42".into()),
        causation_id: Some("cmd-7".into()),
        actor_id: Some("user-3".into()),
        occurred_at: Some(occurred),
        extra,
    };
    let created = NewEvent::new("OrderCreated", json!({ "order_id": "o1" })).with_metadata(metadata);
    let a = store.append("order-123", ExpectedVersion::NoStream, &[created.clone(), event(1), event(2)]).await?;
    let b = store.append("customer-9", ExpectedVersion::NoStream, &[event(3)]).await?;
    store.append("order-123", ExpectedVersion::Exact(3), &[event(4)]).await?;

    let stream = store.read_stream("order-123", 1).await?;
    assert_eq!(stream.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let first = &stream[0];
    assert_eq!(
        (first.event_id, first.event_type.as_str(), &first.data),
        (created.event_id, "OrderCreated", &created.data)
    );
    let meta = first.metadata.as_ref().expect("metadata stored");
    assert_eq!(meta["correlation_id"], "req-42");
    assert_eq!(meta["causation_id"], "cmd-7");
    assert_eq!(meta["actor_id"], "user-3");
    assert_eq!(meta["schema_version"], 2);
    assert_eq!(meta["occurred_at"].as_str().map(|s| s.parse::<chrono::DateTime<Utc>>()), Some(Ok(occurred)));
    assert!(first.timestamp > occurred, "timestamp is the recorded time, not the occurred time");
    assert!(stream[1].metadata.is_none(), "no metadata is stored as NULL");
    assert!(stream.iter().all(|e| e.transaction_id > 0));
    assert_eq!(store.read_stream("order-123", 3).await?.iter().map(|e| e.version).collect::<Vec<_>>(), [3, 4]);
    assert!(store.read_stream("order-404", 1).await?.is_empty());

    let all = store.read_all(0, 100).await?;
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].global_position < w[1].global_position));
    let page = store.read_all(a.positions[2], 1).await?;
    assert_eq!((page.len(), page[0].global_position), (1, b.positions[0]));

    let client = db.connect().await?;
    let categories: Vec<(String, String, i64)> = client
        .query("SELECT stream_id::text, category::text, version FROM streams ORDER BY stream_id", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(categories, [("customer-9".into(), "customer".into(), 1), ("order-123".into(), "order".into(), 4)]);
    Ok(())
}

#[tokio::test]
async fn an_unmigrated_schema_is_reported_as_such() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let err = EventStore::new(db.connect().await?, "public").await.err().expect("no tables");
    assert!(matches!(err, StoreError::NotMigrated { .. }), "{err}");
    assert!(err.to_string().contains("run `refract migrate` first"), "{err}");
    Ok(())
}

#[tokio::test]
async fn one_notification_per_inserting_statement() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (listener, mut connection) = tokio_postgres::connect(db.url(), NoTls).await?;
    let (tx, mut notifications) = tokio::sync::mpsc::unbounded_channel();
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    tokio::spawn(async move {
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    listener.batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}")).await?;

    let mut store = store(&db).await?;
    store.append("order-1", ExpectedVersion::Any, &[event(1), event(2), event(3)]).await?;
    // A writer that knows nothing of Refract: one multi-row INSERT of the ADR's columns.
    store
        .client()
        .batch_execute(
            "INSERT INTO events (stream_id, version, event_type, data)
             VALUES ('raw-1', 1, 'A', '{}'), ('raw-1', 2, 'B', '{}')",
        )
        .await?;
    store.client().batch_execute(&format!("NOTIFY {NOTIFY_CHANNEL}, 'marker'")).await?;

    let mut seen = Vec::new();
    while let Some((channel, payload)) = notifications.recv().await {
        assert_eq!(channel, NOTIFY_CHANNEL);
        if payload == "marker" {
            break;
        }
        seen.push(payload);
    }
    assert_eq!(seen, ["public", "public"], "one notification per appending statement");
    Ok(())
}

#[tokio::test]
async fn a_throwaway_cluster_serves_until_dropped() -> anyhow::Result<()> {
    use refract::db::{ThrowawayCluster, connect};
    let cluster = tokio::task::spawn_blocking(ThrowawayCluster::start).await??;
    let url = cluster.url();
    let client = connect(&url).await?;
    let version: i32 = client.query_one("SELECT current_setting('server_version_num')::int", &[]).await?.get(0);
    assert!(version >= 130_000);
    drop(client);
    tokio::task::spawn_blocking(move || drop(cluster)).await?;
    let err = connect(&url).await.unwrap_err();
    assert!(err.to_string().starts_with("cannot connect to PostgreSQL at 127.0.0.1:"), "{err}");
    Ok(())
}

#[tokio::test]
async fn appends_continue_streams_written_by_writers_that_skip_the_streams_table() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut store = store(&db).await?;
    // A script that inserts only events: no `streams` row, or one left behind.
    store
        .client()
        .batch_execute(
            "INSERT INTO events (stream_id, version, event_type, data) VALUES
                ('order-raw', 1, 'OrderCreated', '{}'), ('order-raw', 2, 'ItemAdded', '{}');
             INSERT INTO streams (stream_id, category, version) VALUES ('order-stale', 'order', 1);
             INSERT INTO events (stream_id, version, event_type, data) VALUES
                ('order-stale', 1, 'OrderCreated', '{}'), ('order-stale', 2, 'ItemAdded', '{}');",
        )
        .await?;
    for stream in ["order-raw", "order-stale"] {
        let err = store.append(stream, ExpectedVersion::NoStream, &[event(1)]).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { actual: 2, .. }), "{stream}: {err}");
        let outcome = store.append(stream, ExpectedVersion::Exact(2), &[event(3)]).await?;
        assert_eq!((outcome.first_version, outcome.last_version), (3, 3));
        let version: i64 =
            store.client().query_one("SELECT version FROM streams WHERE stream_id = $1", &[&stream]).await?.get(0);
        assert_eq!(version, 3, "{stream}: the streams row caught up");
    }
    Ok(())
}
