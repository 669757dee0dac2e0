//! The HTTP endpoints of a running engine (`--http`): `/healthz`, `/status` (the document of
//! `refract status --json`), `/metrics` (OpenMetrics text whose counters follow the events
//! applied), and the JSON log format carrying each projection's name and version (what a
//! guest prints included).

mod engine_http;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use engine_http::{generate, get, http_address};
use order_domain::{ITEM_ADDED, ITEM_REMOVED, ORDER_CANCELLED, ORDER_CONFIRMED, ORDER_CREATED, ORDER_SHIPPED};
use refract_projection_artifacts::{HOSTILE_WASI_IO, ORDER_SUMMARY, REVENUE_BY_DAY};
use refract_test_harness::TestDb;
use refract_test_harness::engine::{EngineProcess, start_over, wait_caught_up};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_refract");
/// A bound on a hang, not a performance assertion.
const LIMIT: Duration = Duration::from_secs(120);

/// The event types each example projection subscribes to, written here independently of the
/// projections' own `describe`.
const SUBSCRIBED: [(&str, &[&str]); 2] = [
    ("order_summary", &[ORDER_CREATED, ITEM_ADDED, ITEM_REMOVED, ORDER_CONFIRMED, ORDER_CANCELLED, ORDER_SHIPPED]),
    ("revenue_by_day", &[ORDER_CREATED, ITEM_ADDED, ITEM_REMOVED, ORDER_CONFIRMED, ORDER_CANCELLED]),
];

/// Starts the engine over both example projections and `more` components, serving HTTP on a
/// free port.
async fn engine(
    db: &TestDb,
    more: &[&str],
    extra: &[&str],
) -> anyhow::Result<(tempfile::TempDir, EngineProcess, std::net::SocketAddr)> {
    let components: Vec<&str> = [ORDER_SUMMARY, REVENUE_BY_DAY].into_iter().chain(more.iter().copied()).collect();
    let (dir, engine) = start_over(BIN, db.url(), &components, extra)?;
    let address = http_address(&engine).await?;
    Ok((dir, engine, address))
}

/// `/status` as JSON.
fn status(address: std::net::SocketAddr) -> anyhow::Result<Value> {
    let response = get(address, "/status")?;
    ensure!(response.status == 200, "/status answered {}: {}", response.status, response.body);
    ensure!(response.content_type == "application/json", "content type {:?}", response.content_type);
    Ok(serde_json::from_str(&response.body)?)
}

/// Waits until `/status` shows every example projection `live`.
async fn wait_live(address: std::net::SocketAddr, engine: &EngineProcess) -> anyhow::Result<Value> {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let report = status(address)?;
        let projections = report["projections"].as_array().context("projections")?;
        let live = |name: &str| projections.iter().any(|p| p["name"] == name && p["state"] == "live");
        if SUBSCRIBED.iter().all(|(name, _)| live(name)) {
            return Ok(report);
        }
        if std::time::Instant::now() > deadline {
            bail!("not live: {report:#}\nengine log:\n{}", engine.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_openmetrics_text_and_count_the_events_applied() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let client = db.connect().await?;
    generate(&db, 150, 1).await?;
    let (_dir, engine, address) = engine(&db, &[], &[]).await?;

    let health = get(address, "/healthz")?;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    for round in 0..2 {
        if round == 1 {
            generate(&db, 80, 2).await?;
        }
        let names: Vec<&str> = SUBSCRIBED.iter().map(|(name, _)| *name).collect();
        wait_caught_up(&client, &names, LIMIT, &engine).await?;
        let report = wait_live(address, &engine).await?;
        let response = get(address, "/metrics")?;
        assert_eq!(response.status, 200);
        assert!(response.content_type.starts_with("application/openmetrics-text"), "{}", response.content_type);
        let samples = parse_openmetrics(&response.body).with_context(|| response.body.clone())?;
        let head: i64 = client.query_one("SELECT max(global_position) FROM events", &[]).await?.get(0);
        assert_eq!(value(&samples, "refract_log_head_position", &[])?, head as f64);

        for (name, types) in SUBSCRIBED {
            let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
            let applied: i64 =
                client.query_one("SELECT count(*) FROM events WHERE event_type = ANY($1)", &[&types]).await?.get(0);
            let line = report["projections"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap();
            let version = line["version"].as_str().context("version")?;
            let labels = [("name", name), ("version", version)];
            let of = |metric: &str| value(&samples, metric, &labels);
            assert_eq!(of("refract_events_total")?, applied as f64, "{name}, round {round}");
            let batches = of("refract_batches_total")?;
            assert!(batches >= 1.0, "{name}: no batches");
            assert_eq!(of("refract_batch_duration_seconds_count")?, batches, "{name}");
            assert!(of("refract_batch_duration_seconds_sum")? > 0.0, "{name}");
            assert!(of("refract_guest_seconds_total")? > 0.0, "{name}");
            assert!(of("refract_guest_seconds_total")? <= of("refract_batch_duration_seconds_sum")?, "{name}");
            assert_eq!(of("refract_projection_failures_total")?, 0.0, "{name}");
            assert_eq!(of("refract_projection_reloads_total")?, 0.0, "{name}");
            assert_eq!(of("refract_projection_lag_events")?, 0.0, "{name}");
            assert_eq!(of("refract_projection_checkpoint_position")?, line["checkpoint"].as_f64().unwrap(), "{name}");
            let live = [("name", name), ("version", version), ("state", "live")];
            let failed = [("name", name), ("version", version), ("state", "failed")];
            assert_eq!(value(&samples, "refract_projection_state", &live)?, 1.0, "{name}");
            assert_eq!(value(&samples, "refract_projection_state", &failed)?, 0.0, "{name}");
            // Buckets are cumulative and end with every batch.
            let buckets: Vec<f64> = samples
                .iter()
                .filter(|s| s.name == "refract_batch_duration_seconds_bucket" && s.labels["name"] == name)
                .map(|s| s.value)
                .collect();
            assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
            assert_eq!(buckets.last(), Some(&batches), "{name}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn status_endpoint_serves_the_document_of_refract_status_json() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let client = db.connect().await?;
    generate(&db, 100, 3).await?;
    let (_dir, engine, address) = engine(&db, &[], &[]).await?;
    wait_caught_up(&client, &["order_summary", "revenue_by_day"], LIMIT, &engine).await?;
    wait_live(address, &engine).await?;

    let out = std::process::Command::new(BIN).args(["status", "--json", "--database-url", db.url()]).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout)?;
    let served = status(address)?;
    // The rate decays and the engine republishes every second; the rest is the same moment.
    let stable = |mut report: Value| {
        for p in report["projections"].as_array_mut().into_iter().flatten() {
            let p = p.as_object_mut().unwrap();
            assert!(p.remove("events_per_second").is_some() && p.remove("updated_at").is_some(), "{p:?}");
        }
        report
    };
    let (cli, served) = (stable(cli), stable(served));
    assert_eq!(served, cli);
    let names: Vec<&str> =
        served["projections"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["order_summary", "revenue_by_day"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_json_lines_and_name_the_projection_and_version() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let client = db.connect().await?;
    generate(&db, 50, 4).await?;
    // hostile_wasi_io prints on stdout and stderr from the guest, which the host logs.
    let (_dir, mut engine, address) = engine(&db, &[HOSTILE_WASI_IO], &["--log-format", "json"]).await?;
    wait_caught_up(&client, &["order_summary", "revenue_by_day", "hostile_wasi_io"], LIMIT, &engine).await?;
    let report = wait_live(address, &engine).await?;
    assert!(engine.stop()?.success(), "{}", engine.log());

    let versions: BTreeMap<&str, &str> = report["projections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["version"].as_str().unwrap()))
        .collect();
    let log = engine.log();
    let mut in_span = BTreeMap::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).with_context(|| format!("not a JSON line: {line}"))?;
        assert!(entry["level"].is_string() && entry["fields"]["message"].is_string(), "{line}");
        // A line about a projection names it and its version, in its span or in its fields.
        let either = |key: &str| entry["span"][key].as_str().or(entry["fields"][key].as_str());
        if let Some(name) = either("projection") {
            assert_eq!(either("version"), versions.get(name).copied(), "{line}");
        }
        if let Some(name) = entry["span"]["projection"].as_str() {
            *in_span.entry(name.to_owned()).or_insert(0) += 1;
        }
    }
    assert_eq!(in_span.keys().collect::<Vec<_>>(), ["hostile_wasi_io", "order_summary", "revenue_by_day"], "{log}");
    // What the guest printed is logged on the guest's thread, inside the projection's span.
    let printed = log.lines().find(|l| l.contains("a guest says hello on stdout")).with_context(|| log.clone())?;
    let printed: Value = serde_json::from_str(printed)?;
    assert_eq!(printed["span"]["projection"], "hostile_wasi_io", "{printed}");
    assert_eq!(printed["span"]["version"].as_str(), Some(versions["hostile_wasi_io"]), "{printed}");
    Ok(())
}

/// The value of the sample `name` whose labels include `labels`; exactly one must match.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one.value),
        _ => bail!("{} samples {name} with {labels:?}", matching.len()),
    }
}

/// One sample of an exposition: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (a family name plus a suffix such as `_total` or `_bucket`).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// Reads an OpenMetrics text exposition strictly: every line is a `# HELP`, `# TYPE` or
/// `# UNIT` of a valid family name, a sample of a family whose TYPE came before it (with a
/// suffix its type allows), or the final `# EOF`. Any other line is an error.
pub fn parse_openmetrics(text: &str) -> anyhow::Result<Vec<Sample>> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    let mut ended = false;
    for (number, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", number + 1);
        ensure!(!ended, "{}: after # EOF", at());
        if line == "# EOF" {
            ended = true;
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (kind, family, rest) = (parts.next(), parts.next(), parts.next());
            let family = family.filter(|f| is_name(f)).with_context(at)?;
            match (kind, rest) {
                (Some("TYPE"), Some(t)) => {
                    let known = ["counter", "gauge", "histogram", "summary", "info", "stateset", "unknown"];
                    ensure!(known.contains(&t), "{}: unknown type", at());
                    types.insert(family.to_owned(), t.to_owned());
                }
                (Some("HELP" | "UNIT"), Some(_)) => {}
                _ => bail!("{}: not HELP, TYPE, UNIT or EOF", at()),
            }
            continue;
        }
        let sample = parse_sample(line).with_context(at)?;
        let declared = types.iter().any(|(family, kind)| {
            let suffixes: &[&str] = match kind.as_str() {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_count", "_sum", "_created"],
                "info" => &["_info"],
                _ => &[""],
            };
            suffixes.iter().any(|s| sample.name == format!("{family}{s}"))
        });
        ensure!(declared, "{}: no TYPE declared for this sample's family", at());
        samples.push(sample);
    }
    ensure!(ended, "no # EOF at the end");
    Ok(samples)
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `name{label="value",...} value`.
fn parse_sample(line: &str) -> anyhow::Result<Sample> {
    let name_end = line.find(['{', ' ']).context("no value")?;
    let name = &line[..name_end];
    ensure!(is_name(name), "bad metric name {name:?}");
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        while !rest.starts_with('}') {
            let (key, after) = rest.split_once("=\"").context("a label without =\"")?;
            ensure!(is_name(key) && !key.contains(':'), "bad label name {key:?}");
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().context("an unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().context("a dangling escape")?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => bail!("bad escape \\{c}"),
                    },
                    (_, c) => value.push(c),
                }
            };
            ensure!(labels.insert(key.to_owned(), value).is_none(), "label {key:?} twice");
            rest = &after[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
        rest = &rest[1..];
    }
    let value = rest.strip_prefix(' ').context("no space before the value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().with_context(|| format!("bad value {v:?}"))?,
    };
    Ok(Sample { name: name.to_owned(), labels, value })
}
