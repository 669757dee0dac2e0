//! `refract bench` on a small log: it runs end to end against the test server, prints a JSON
//! report with every section, cleans up its scratch database, and the rebuilds it measured
//! wrote what the log implies. No figure is asserted beyond being measured.

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
        .args(["--tail", "--rate", "500", "--tail-seconds", "2"])
        .env("DATABASE_URL", db.url())
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "bench failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&stdout).map_err(|e| anyhow::anyhow!("not JSON ({e}):\n{stdout}"))?;

    assert_eq!(report["events"], EVENTS);
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

    let tail = &report["tail"];
    assert!(tail["appends"].as_u64().unwrap() > 0, "{tail}");
    assert_eq!(tail["unfinished"], 0, "every append reached the read model: {tail}");
    assert!(tail["latency_ms_p99"].as_f64().unwrap() >= tail["latency_ms_p50"].as_f64().unwrap());

    let admin = refract::db::connect(db.url()).await?;
    let left = admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&scratch]).await?;
    assert!(left.is_none(), "the scratch database was not dropped");
    Ok(())
}
