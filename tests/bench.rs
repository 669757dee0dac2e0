//! `refract bench` on a small log: it runs end to end against the test server, prints a JSON
//! report with every section, cleans up its scratch database, and the rebuilds it measured
//! wrote what the log implies. No figure is asserted beyond being measured. And the log it
//! measures on: appended in many transactions, consistent for the store, the generator's
//! events in the generator's order.

use refract::bench::scratch::{fill, order_log};
use refract::bench::writer::FILL_TRANSACTION_EVENTS;
use refract_test_harness::TestDb;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_refract");
const EVENTS: u64 = 20_000;

#[tokio::test(flavor = "multi_thread")]
async fn bench_prints_every_section_as_json() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let scratch = format!("{}_bench", db.name());
    let out = std::process::Command::new(BIN)
        .args(["bench", "--events", &EVENTS.to_string(), "--repeat", "1", "--json", "--database", &scratch])
        .args(["--tail", "--rate", "500,2000", "--tail-seconds", "2", "--memory"])
        .env("DATABASE_URL", db.url())
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "bench failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&stdout).map_err(|e| anyhow::anyhow!("not JSON ({e}):\n{stdout}"))?;

    assert_eq!(report["events"], EVENTS);
    let transactions = report["load_transactions"].as_u64().unwrap();
    let sizes = (*FILL_TRANSACTION_EVENTS.start() as u64, *FILL_TRANSACTION_EVENTS.end() as u64);
    assert!((EVENTS / sizes.1..=EVENTS.div_ceil(sizes.0)).contains(&transactions), "{transactions} transactions");
    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1);
    assert_eq!(report["runs"].as_array().unwrap().len(), 1);
    let median = &report["median"];
    assert_eq!(median["raw_read"]["events"], EVENTS, "the raw read reads the whole log");
    assert!(median["raw_read"]["events_per_second"].as_f64().unwrap() > 0.0);
    let orders = median["raw_write"]["rows"].as_u64().unwrap();
    assert!(orders > 0 && median["raw_write"]["rows_per_second"].as_f64().unwrap() > 0.0);

    let rebuilds = median["rebuilds"].as_array().unwrap();
    let cases: Vec<&str> = rebuilds.iter().map(|r| r["case"].as_str().unwrap()).collect();
    assert_eq!(cases, ["noop", "order_summary", "revenue_by_day", "all three in one scan", "upsert_per_event"]);
    for rebuild in rebuilds {
        let case = rebuild["case"].as_str().unwrap();
        assert!(rebuild["events_per_second"].as_f64().unwrap() > 0.0, "{case}");
        assert!(rebuild["ratio_to_raw_read"].as_f64().unwrap() > 0.0, "{case}");
        assert!(rebuild["batches"].as_u64().unwrap() > 0, "{case}: no committed batch was logged");
        assert!(rebuild["batch_ms_p99"].as_f64().unwrap() >= rebuild["batch_ms_p50"].as_f64().unwrap(), "{case}");
        assert!(rebuild["peak_rss_mib"].as_f64().unwrap() > 0.0, "{case}");
        assert!(rebuild["engine_cpu_seconds"].as_f64().is_some(), "{case}");
    }
    // What the rebuilds wrote: one order_summary row per order, one event_log row per event.
    assert_eq!(rebuilds[1]["rows"], orders);
    assert_eq!(rebuilds[3]["rows"], orders);
    assert_eq!(rebuilds[4]["rows"], EVENTS);
    assert!(rebuilds[4]["ratio_to_raw_write"].as_f64().unwrap() > 0.0);
    assert!(rebuilds[0]["ratio_to_raw_write"].is_null());

    let tails = report["tails"].as_array().unwrap();
    assert_eq!(tails.len(), 2, "one tail per rate");
    assert_eq!((tails[0]["target_rate"].as_u64(), tails[1]["target_rate"].as_u64()), (Some(500), Some(2_000)));
    for tail in tails {
        assert!(tail["appends"].as_u64().unwrap() > 0, "{tail}");
        assert!(tail["events"].as_u64().unwrap() >= tail["appends"].as_u64().unwrap(), "{tail}");
        assert!(tail["achieved_rate"].as_f64().unwrap() > 0.0, "{tail}");
        assert_eq!(tail["unfinished"], 0, "every append reached the read model: {tail}");
        assert_eq!(tail["timed"], tail["appends"], "{tail}");
        assert!(tail["latency_ms_p99"].as_f64().unwrap() >= tail["latency_ms_p50"].as_f64().unwrap());
    }

    let memory = &report["memory"];
    let live: Vec<&str> = memory["projections"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(live.len(), 10, "{memory}");
    assert_eq!(live.iter().collect::<std::collections::HashSet<_>>().len(), 10, "distinct projections: {memory}");
    assert!(memory["catch_up_seconds"].as_f64().unwrap() > 0.0, "{memory}");
    assert!(memory["catch_up_peak_rss_mib"].as_f64().unwrap() > 0.0, "{memory}");
    assert!(memory["live_events"].as_u64().unwrap() > 0, "{memory}");
    assert!(memory["live_peak_rss_mib"].as_f64().unwrap() > 0.0, "{memory}");

    let admin = refract::db::connect(db.url()).await?;
    let left = admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&scratch]).await?;
    assert!(left.is_none(), "the scratch database was not dropped");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scratch_log_is_the_generated_one_appended_in_many_consistent_transactions() -> anyhow::Result<()> {
    const LOG: u64 = 5_000;
    let db = TestDb::create().await?;
    let filled = fill(db.url(), "public", LOG, 9).await?;
    assert_eq!(filled.events, LOG);
    let client = db.connect().await?;
    let count = |sql: &'static str| {
        let client = &client;
        async move { anyhow::Ok(client.query_one(sql, &[]).await?.get::<_, i64>(0)) }
    };

    // The generator's events, in its order, in the engine's reading order.
    let ids: Vec<uuid::Uuid> = client
        .query("SELECT event_id FROM events ORDER BY transaction_id, global_position", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(ids, order_log(LOG, 9).map(|e| e.event_id).collect::<Vec<_>>());

    // Many transactions, each of the fill's size range but the last.
    assert_eq!(count("SELECT count(DISTINCT transaction_id) FROM events").await?, filled.transactions as i64);
    let sizes: Vec<i64> = client
        .query("SELECT count(*) FROM events GROUP BY transaction_id ORDER BY transaction_id", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let (min, max) = (*FILL_TRANSACTION_EVENTS.start() as i64, *FILL_TRANSACTION_EVENTS.end() as i64);
    assert!(sizes[..sizes.len() - 1].iter().all(|n| (min..=max).contains(n)), "{sizes:?}");
    assert!(sizes.len() > 1 && sizes.iter().any(|n| *n != sizes[0]), "{sizes:?}");

    // Each stream's versions run from 1 without a gap, in log order.
    let out_of_order = "SELECT count(*) FROM (
             SELECT version, lag(version, 1, 0::bigint) OVER (PARTITION BY stream_id ORDER BY transaction_id, global_position) AS previous
               FROM events) e
          WHERE version <> previous + 1";
    assert_eq!(count(out_of_order).await?, 0);
    // One `streams` row per stream, at its last version, created and updated when its first
    // and last events were.
    let inconsistent = "SELECT count(*) FROM streams s FULL JOIN (
             SELECT stream_id, max(version) AS version, min(timestamp) AS first, max(timestamp) AS last
               FROM events GROUP BY stream_id) e USING (stream_id)
          WHERE s.version IS DISTINCT FROM e.version OR s.created_at IS DISTINCT FROM e.first
             OR s.updated_at IS DISTINCT FROM e.last OR s.category <> 'order'";
    assert_eq!(count(inconsistent).await?, 0);
    assert!(count("SELECT count(*) FROM streams").await? > 1);
    Ok(())
}
