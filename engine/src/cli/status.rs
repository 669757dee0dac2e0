//! `refract status`.

use std::time::Duration;

use anyhow::Context;

use super::DbArgs;
use refract::runner::report::{self, Report};

/// Arguments of `refract status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Refresh every N seconds until interrupted.
    #[arg(long, value_name = "SECONDS")]
    watch: Option<u64>,
}

/// Runs `refract status`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = refract::db::connect(&args.db.database_url).await?;
    loop {
        let report = report::read(&client, &args.db.schema).await.context("reading the status")?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            if args.watch.is_some() {
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", table(&report));
        }
        match args.watch {
            Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds.max(1))).await,
            None => return Ok(()),
        }
    }
}

fn table(report: &Report) -> String {
    let mut out = format!(
        "{:<24} {:<22} {:<14} {:>12} {:>10} {:>10}  {}\n",
        "NAME", "VERSION", "STATE", "CHECKPOINT", "LAG", "EVENTS/S", "LAST ERROR"
    );
    for p in &report.projections {
        let version = format!("{} ({})", p.version, &p.content_hash[..p.content_hash.len().min(8)]);
        let error = match (&p.last_error, p.last_error_position, &p.last_error_event_id) {
            (Some(e), Some(pos), Some(id)) => format!("at event {pos} ({id}): {e}"),
            (Some(e), Some(pos), None) => format!("at event {pos}: {e}"),
            (Some(e), None, _) => e.clone(),
            (None, ..) => "-".to_owned(),
        };
        let (name, state) = match &p.building_for {
            Some(live) => {
                let done = if p.head > 0 { 100.0 * p.checkpoint as f64 / p.head as f64 } else { 100.0 };
                let eta = p.eta_seconds.map_or_else(String::new, |s| format!(", ETA {s:.0} s"));
                (format!("  └ {}", p.name), format!("{} {done:.0}%{eta}: rebuilding {live}", p.state))
            }
            None => (p.name.clone(), p.state.clone()),
        };
        out.push_str(&format!(
            "{:<24} {:<22} {:<14} {:>12} {:>10} {:>10.0}  {}\n",
            name, version, state, p.checkpoint, p.lag, p.events_per_second, error
        ));
        if let Some(notice) = &p.notice {
            out.push_str(&format!("{:<24} note: {notice}\n", ""));
        }
    }
    if report.projections.is_empty() {
        out.push_str("(no projections installed)\n");
    }
    if let Some(h) = &report.horizon_held_by {
        out.push_str(&format!(
            "\nwarning: backend {} ({}) has held a transaction open since {}; events committed after it started \
             cannot be projected until it ends: {}\n",
            h.pid,
            h.application.as_deref().unwrap_or("?"),
            h.since.map_or_else(|| "?".to_owned(), |t| t.to_rfc3339()),
            h.query.as_deref().unwrap_or("")
        ));
    }
    out
}
