//! `refract rebuild`: a projection rebuilt from zero beside the live one and swapped in, or
//! its read model as it was at a point in time, built into a schema of its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use super::DbArgs;
use refract::runner::loader::{self, Loaded};
use refract::runner::worker::{Mode, Until};
use refract::runner::{RunConfig, StatusBoard};

/// Arguments of `refract rebuild`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
    /// The projection to rebuild.
    name: String,
    /// Directory of projection components: the one whose projection is NAME is rebuilt.
    #[arg(long, env = "REFRACT_PROJECTIONS", default_value = "projections.d")]
    projections: PathBuf,
    /// Build the read model as it was at this point: a global position (events up to and
    /// including it) or an RFC 3339 timestamp (events recorded at or before it). Needs --into.
    #[arg(long, requires = "into", value_name = "POSITION|TIMESTAMP")]
    until: Option<String>,
    /// The schema (new) to build the point-in-time read model into; the live one is untouched.
    #[arg(long, requires = "until", value_name = "SCHEMA")]
    into: Option<String>,
}

/// Runs `refract rebuild` until the new version is swapped in (or the point-in-time read
/// model is complete), showing progress.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mode = match (&args.until, &args.into) {
        (Some(until), Some(into)) => {
            if !loader::valid_name(into) {
                bail!("--into {into:?}: use 1 to 48 lowercase letters, digits and single `_`s, starting with a letter");
            }
            Mode::PointInTime { into: into.clone(), until: parse_until(until)? }
        }
        _ => Mode::Rebuild,
    };
    let runtime = refract::wasm::Runtime::with_cache(refract::runner::deploy::default_cache_dir().as_deref())?;
    let loaded = find(&runtime, &args.projections, &args.name).await?;
    let config = RunConfig {
        database_url: args.db.database_url.clone(),
        store_schema: args.db.schema.clone(),
        projections_dir: args.projections.clone(),
        poll_interval: Duration::from_millis(500),
        notify: true,
        http: None,
        cache_dir: None,
    };
    let status = StatusBoard::default();
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        super::run::wait_for_signal().await;
        let _ = stop.send(true);
    });
    let client = refract::db::connect(&config.database_url).await?;
    let progress = tokio::spawn(show_progress(client, config.store_schema.clone(), status.clone()));
    let built = refract::runner::build(config, loaded, mode.clone(), status.clone(), shutdown.clone()).await;
    progress.abort();
    built.context("rebuild failed")?;
    if *shutdown.borrow() {
        bail!("interrupted; the build resumes where it stopped when run again");
    }
    let failed = status.snapshot().into_iter().find_map(|(_, s)| s.last_error.map(|e| e.message));
    if let Some(error) = failed {
        bail!("the build failed: {error}");
    }
    match mode {
        Mode::PointInTime { into, .. } => {
            println!("{} as of {}: built into schema {into}", args.name, args.until.unwrap_or_default())
        }
        _ => println!("{}: rebuilt from zero and swapped in", args.name),
    }
    Ok(())
}

/// `--until`: a global position, or an RFC 3339 timestamp.
fn parse_until(text: &str) -> anyhow::Result<Until> {
    if let Ok(position) = text.parse::<i64>() {
        return Ok(Until::Position(position));
    }
    let time = chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("--until {text:?} is neither a global position nor an RFC 3339 timestamp"))?;
    Ok(Until::Micros(time.timestamp_micros()))
}

/// The component in `dir` whose projection is `name`.
async fn find(runtime: &refract::wasm::Runtime, dir: &Path, name: &str) -> anyhow::Result<Loaded> {
    let mut seen = Vec::new();
    for path in loader::components_in(dir)? {
        let runtime = runtime.clone();
        let loaded = tokio::task::spawn_blocking(move || loader::load(&runtime, &path)).await?;
        match loaded {
            Ok(loaded) if loaded.name() == name => return Ok(loaded),
            Ok(loaded) => seen.push(loaded.name().to_owned()),
            Err(error) => tracing::warn!(%error, "component refused"),
        }
    }
    bail!("no component in {} describes projection {name:?} (found: {})", dir.display(), seen.join(", "))
}

/// A progress bar over the build's checkpoint until aborted.
async fn show_progress(client: tokio_postgres::Client, store_schema: String, status: StatusBoard) {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, ETA {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("building");
    let head_sql = format!(
        "SELECT coalesce(max(global_position), 0) FROM {}.events",
        refract::readmodel::quote_ident(&store_schema)
    );
    loop {
        if let Ok(row) = client.query_one(&head_sql, &[]).await {
            bar.set_length(row.get::<_, i64>(0).max(0) as u64);
        }
        if let Some(position) = status.snapshot().values().map(|s| s.checkpoint.position).max() {
            bar.set_position(position.max(0) as u64);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
