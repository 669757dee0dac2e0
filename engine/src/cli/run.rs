//! `refract run`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::ArgMatches;
use tokio::sync::watch;

use super::DbArgs;
use crate::config::{self, HttpAddress, LogFormat, RunFile, layered};
use refract::runner::{RunConfig, StatusBoard};

/// Arguments of `refract run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TOML file holding any of these settings (keys: the flag names with `_` for `-`, e.g.
    /// `poll_interval_ms = 500`); flags and environment variables take precedence over it.
    #[arg(long, env = "REFRACT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    db: DbArgs,
    /// Directory of projection components (`NAME.wasm`, with optional settings in `NAME.toml`).
    #[arg(long, env = "REFRACT_PROJECTIONS", default_value = "projections.d")]
    projections: PathBuf,
    /// Longest wait, in milliseconds, before reading the log again when no notification came.
    #[arg(long, env = "REFRACT_POLL_INTERVAL_MS", default_value_t = 1000)]
    poll_interval_ms: u64,
    /// Do not LISTEN for new-event notifications; rely on polling alone.
    #[arg(long, env = "REFRACT_NO_NOTIFY")]
    no_notify: bool,
    /// Address of `/healthz`, `/status`, `/metrics` and the status page at `/`; `off` serves
    /// nothing; port 0 picks a free port (the address is logged: "serving HTTP on ...").
    #[arg(long, env = "REFRACT_HTTP", default_value = config::DEFAULT_HTTP, value_name = "ADDR|off")]
    http: HttpAddress,
    /// Directory where compiled components are cached by content hash, so that a restart or
    /// a reload does not compile an unchanged component again [default: $XDG_CACHE_HOME/refract,
    /// else ~/.cache/refract; an empty value turns the cache off].
    #[arg(long, env = "REFRACT_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

/// The settings of `refract run` once flags, environment, file and defaults are merged.
#[derive(Debug)]
pub struct Settings {
    config: RunConfig,
    http: Option<std::net::SocketAddr>,
    /// The log format (`--log-format`, or `log_format` in the file).
    pub log_format: LogFormat,
}

impl Settings {
    /// Merges `args` (and the global `log_format`) with the config file they name, if any.
    /// `matches` are the matches of `refract run`, which tell which values are defaults.
    pub fn resolve(args: &Args, log_format: LogFormat, matches: &ArgMatches) -> anyhow::Result<Settings> {
        let file = args.config.as_deref().map(RunFile::read).transpose()?.unwrap_or_default();
        let m = matches;
        let poll_interval_ms = layered(m, "poll_interval_ms", args.poll_interval_ms, file.poll_interval_ms);
        Ok(Settings {
            config: RunConfig {
                database_url: layered(m, "database_url", args.db.database_url.clone(), file.database_url),
                store_schema: layered(m, "schema", args.db.schema.clone(), file.schema),
                projections_dir: layered(m, "projections", args.projections.clone(), file.projections),
                poll_interval: Duration::from_millis(poll_interval_ms.max(1)),
                notify: !layered(m, "no_notify", args.no_notify, file.no_notify),
                http: None,
                cache_dir: layered(m, "cache_dir", args.cache_dir.clone(), file.cache_dir.map(Some))
                    .map_or_else(refract::runner::deploy::default_cache_dir, |dir| {
                        (!dir.as_os_str().is_empty()).then(|| std::path::absolute(&dir).unwrap_or(dir))
                    }),
            },
            http: layered(m, "http", args.http, file.http).0,
            log_format: layered(m, "log_format", log_format, file.log_format),
        })
    }
}

/// Runs `refract run` until SIGINT or SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let mut config = settings.config;
    if let Some(address) = settings.http {
        let listener = refract::http::Listener::bind(address)
            .with_context(|| format!("cannot serve HTTP on {address} (--http, REFRACT_HTTP; `off` serves nothing)"))?;
        tracing::info!(address = %listener.local_addr(), "serving HTTP on http://{}/", listener.local_addr());
        config.http = Some(listener);
    }
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping: finishing the batches under way");
        let _ = stop.send(true);
    });
    refract::runner::run(config, StatusBoard::default(), shutdown).await.context("refract run failed")
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::Settings;
    use crate::config::LogFormat;

    /// The settings of `refract <args>`, as `main` resolves them.
    fn resolve(args: &[&str]) -> anyhow::Result<Settings> {
        let matches = crate::Cli::command().try_get_matches_from(args)?;
        let cli = crate::Cli::from_arg_matches(&matches)?;
        let crate::Command::Run(run) = &cli.command else { panic!("not refract run") };
        Settings::resolve(run, cli.log_format, matches.subcommand_matches("run").expect("refract run"))
    }

    #[test]
    fn flags_override_the_file_which_overrides_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("refract.toml");
        std::fs::write(&file, "poll_interval_ms = 7\nhttp = \"off\"\nlog_format = \"json\"\nprojections = \"p\"\n")
            .unwrap();
        let file = file.to_str().unwrap();

        let from_file = resolve(&["refract", "run", "--config", file]).unwrap();
        assert_eq!(from_file.config.poll_interval.as_millis(), 7);
        assert_eq!(from_file.http, None);
        assert_eq!(from_file.log_format, LogFormat::Json);
        assert_eq!(from_file.config.projections_dir, dir.path().join("p"));
        assert!(from_file.config.notify, "a default the file leaves alone");

        let flags = resolve(&[
            "refract",
            "--log-format",
            "text",
            "run",
            "--config",
            file,
            "--poll-interval-ms",
            "5",
            "--http",
            "127.0.0.1:0",
            "--no-notify",
        ])
        .unwrap();
        assert_eq!(flags.config.poll_interval.as_millis(), 5);
        assert_eq!(flags.http, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(flags.log_format, LogFormat::Text);
        assert!(!flags.config.notify);
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("refract.toml");
        std::fs::write(&file, "poll_interval = 7\n").unwrap();
        let error = resolve(&["refract", "run", "--config", file.to_str().unwrap()]).expect_err("refused");
        assert!(format!("{error:#}").contains("unknown field `poll_interval`"), "{error:#}");
    }
}
