//! `refract demo`: the engine on the order domain, from nothing, in one command.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;
use tokio_postgres::Client;

use refract::generate::orders::{OrderConfig, OrderGenerator};
use refract::runner::{RunConfig, State, StatusBoard};

const PROJECTIONS: [&str; 2] = ["order_summary", "revenue_by_day"];

/// Arguments of `refract demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Orders to generate before the engine starts.
    #[arg(long, default_value_t = 5_000)]
    orders: u64,
    /// Seed of the generated orders.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Events per second appended by the live generator once caught up.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Stop after this many seconds of live appending (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
    /// The scratch database the demo creates on the server it finds (dropped first if it
    /// exists): lowercase letters, digits and `_`.
    #[arg(long, default_value = "refract_demo", value_parser = database_name)]
    database: String,
    /// Address of the engine's status page, `/status` and `/metrics`; `off` serves nothing.
    /// When the port is taken, a free one is used (the URL is printed).
    #[arg(long, env = "REFRACT_HTTP", default_value = crate::config::DEFAULT_HTTP, value_name = "ADDR|off")]
    http: crate::config::HttpAddress,
}

/// Runs `refract demo`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let server = refract::db::discover().await?;
    let url = server.database_url(&args.database);
    println!("Refract demo: the engine on the order domain\n");
    recreate_database(server.url(), &args.database).await?;
    println!("  database     {url}{}", if server.is_throwaway() { " (private cluster, stopped on exit)" } else { "" });
    let mut client = refract::db::connect(&url).await?;
    refract::migrate::migrate(&mut client, "public").await?;

    let started = Instant::now();
    let config = OrderConfig { orders: args.orders, seed: args.seed, ..OrderConfig::default() };
    let loaded = refract::generate::load(&mut client, "public", OrderGenerator::new(config)).await?;
    println!(
        "  generated    {} orders, {} events in {:.1} s",
        loaded.streams,
        loaded.events,
        started.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    for (name, path) in refract_projection_artifacts::all() {
        std::fs::copy(path, dir.path().join(format!("{name}.wasm"))).with_context(|| format!("copying {path}"))?;
    }
    let http = args.http.0.map(serve_on).transpose()?;
    if let Some(listener) = &http {
        println!("  status page  http://{}/  (and /status, /metrics)", listener.local_addr());
    }
    let status = StatusBoard::default();
    let (stop, shutdown) = watch::channel(false);
    let engine = tokio::spawn(refract::runner::run(
        RunConfig {
            database_url: url.clone(),
            store_schema: "public".into(),
            projections_dir: dir.path().to_owned(),
            poll_interval: Duration::from_millis(500),
            notify: true,
            http,
            cache_dir: refract::runner::deploy::default_cache_dir(),
        },
        status.clone(),
        shutdown,
    ));

    let head = last_position(&client).await?;
    let started = Instant::now();
    catch_up(&status, head).await;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "  caught up    {} events in {seconds:.1} s ({:.0} events/s)\n",
        loaded.events,
        loaded.events as f64 / seconds
    );
    print_read_models(&client).await?;

    println!("\nLive: appending about {} events/s (Ctrl-C to stop)", args.rate);
    let live = live(&mut client, &status, &args);
    tokio::select! {
        result = live => result?,
        _ = crate::cli::run::wait_for_signal() => {}
    }
    let _ = stop.send(true);
    engine.await.context("the engine task panicked")??;
    println!("stopped cleanly");
    Ok(())
}

/// Binds `address`, or a free port on the same host when its port is taken: the demo should
/// not fail because another engine serves there.
fn serve_on(address: std::net::SocketAddr) -> anyhow::Result<refract::http::Listener> {
    refract::http::Listener::bind(address)
        .or_else(|_| refract::http::Listener::bind(std::net::SocketAddr::new(address.ip(), 0)))
        .with_context(|| format!("cannot serve HTTP on {}", address.ip()))
}

fn database_name(name: &str) -> Result<String, String> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63;
    valid.then(|| name.to_owned()).ok_or_else(|| "use 1 to 63 lowercase letters, digits and `_`".to_owned())
}

async fn recreate_database(server_url: &str, database: &str) -> anyhow::Result<()> {
    let admin = refract::db::connect(server_url).await?;
    // Two statements: a multi-statement string would run them in one (implicit) transaction,
    // where DROP/CREATE DATABASE are not allowed.
    for sql in [format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"), format!("CREATE DATABASE {database}")] {
        admin.batch_execute(&sql).await.context("creating the demo database")?;
    }
    Ok(())
}

async fn last_position(client: &Client) -> anyhow::Result<i64> {
    Ok(client.query_one("SELECT coalesce(max(global_position), 0) FROM events", &[]).await?.get(0))
}

/// The least checkpoint position over the demo's projections, once all are running.
fn progress(status: &StatusBoard) -> Option<i64> {
    let snapshot = status.snapshot();
    PROJECTIONS.iter().map(|name| snapshot.get(*name).map(|s| s.checkpoint.position)).min().flatten()
}

async fn catch_up(status: &StatusBoard, head: i64) {
    let bar = ProgressBar::new(head.max(1) as u64).with_style(
        ProgressStyle::with_template("  catching up  [{bar:40}] {pos}/{len} positions, {per_sec}, eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    loop {
        let position = progress(status).unwrap_or(0);
        bar.set_position(position.max(0) as u64);
        let failed = status.snapshot().into_iter().find(|(_, s)| s.state == State::Failed);
        if position >= head || failed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bar.finish_and_clear();
}

async fn print_read_models(client: &Client) -> anyhow::Result<()> {
    let orders: i64 = client.query_one("SELECT count(*) FROM order_summary.order_summary", &[]).await?.get(0);
    println!("Orders (order_summary.order_summary: {orders} rows; the five largest)");
    println!("  {:<36}  {:<10}  {:>5}  {:>10}  {:>7}  updated_at", "order_id", "status", "items", "total", "version");
    for row in client
        .query(
            "SELECT order_id::text, status, item_count, total::text AS total_text, version, updated_at
               FROM order_summary.order_summary ORDER BY total DESC, order_id LIMIT 5",
            &[],
        )
        .await?
    {
        let updated: chrono::DateTime<Utc> = row.get(5);
        println!(
            "  {:<36}  {:<10}  {:>5}  {:>10}  {:>7}  {}",
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, i32>(2),
            row.get::<_, String>(3),
            row.get::<_, i64>(4),
            updated.format("%Y-%m-%d %H:%M:%S")
        );
    }
    println!("\nRevenue by day (revenue_by_day.revenue_by_day)");
    println!("  {:<10}  {:>6}  {:>12}", "day", "orders", "revenue");
    for row in client
        .query("SELECT day::text, orders, revenue::text FROM revenue_by_day.revenue_by_day ORDER BY day", &[])
        .await?
    {
        println!("  {:<10}  {:>6}  {:>12}", row.get::<_, String>(0), row.get::<_, i32>(1), row.get::<_, String>(2));
    }
    Ok(())
}

/// Appends new orders at about `args.rate` events/s and prints lag and append-to-read-model
/// latency every second, until `args.seconds` have passed (or forever).
async fn live(client: &mut Client, status: &StatusBoard, args: &Args) -> anyhow::Result<()> {
    const TICK: Duration = Duration::from_millis(200);
    let orders_per_tick = (args.rate / 5 / 8).max(1); // an order has about 8 events
    let until = args.seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let mut pending: Vec<(i64, Instant)> = Vec::new();
    let mut latencies: Vec<Duration> = Vec::new();
    let mut last_report = Instant::now();
    let mut tick = 0u64;
    while until.is_none_or(|u| Instant::now() < u) {
        tick += 1;
        let config =
            OrderConfig { orders: orders_per_tick, seed: args.seed + 1_000_000 + tick, start: Utc::now(), days: 0 };
        refract::generate::load(client, "public", OrderGenerator::new(config)).await?;
        pending.push((last_position(client).await?, Instant::now()));
        let deadline = Instant::now() + TICK;
        while Instant::now() < deadline {
            let reached = progress(status).unwrap_or(0);
            pending.retain(|(position, at)| {
                let done = *position <= reached;
                if done {
                    latencies.push(at.elapsed());
                }
                !done
            });
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            latencies.sort();
            let pct = |p: f64| {
                latencies.get(((latencies.len() as f64 - 1.0) * p) as usize).map_or(0.0, |d| d.as_secs_f64() * 1e3)
            };
            let lag = last_position(client).await? - progress(status).unwrap_or(0);
            println!(
                "  lag {lag:>5} positions   append→read model p50 {:>6.1} ms  p99 {:>6.1} ms",
                pct(0.5),
                pct(0.99)
            );
            latencies.clear();
            last_report = Instant::now();
        }
    }
    // Let the projections take in the last appends before stopping (bounded: a failed
    // projection never will).
    let last = last_position(client).await?;
    let drain = Instant::now() + Duration::from_secs(10);
    while progress(status).unwrap_or(0) < last && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
