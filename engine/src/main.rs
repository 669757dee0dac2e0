//! The `refract` binary.

mod cli;
mod config;

use clap::{Parser, Subcommand};

/// Refract: projections as WebAssembly plugins over a PostgreSQL event store.
#[derive(Debug, Parser)]
#[command(name = "refract", version, about)]
struct Cli {
    /// Log format on stderr: `text` for people, `json` for log pipelines (one object a line).
    #[arg(long, global = true, env = "REFRACT_LOG_FORMAT", value_enum, default_value_t = config::LogFormat::Text)]
    log_format: config::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending schema migrations to the event store.
    Migrate(cli::migrate::Args),
    /// Append events read as JSON lines from a file or stdin.
    Append(cli::append::Args),
    /// Generate sample data.
    Generate(cli::generate::Args),
    /// Run the engine on the order domain: sample data, the example projections, a live feed.
    Demo(cli::demo::Args),
    /// Run the projections in a directory: catch up, then tail the log until stopped.
    Run(cli::run::Args),
    /// Show where each projection stands.
    Status(cli::status::Args),
    /// Resume a failed projection in the running engine, from its checkpoint.
    Retry(cli::retry::Args),
    /// Scaffold a new projection crate.
    New(cli::new::Args),
    /// Measure replay throughput against the database's own read and write rates.
    Bench(cli::bench::Args),
    /// Rebuild a projection from zero beside the live one and swap it in; or, with --until
    /// and --into, build its read model as it was at a point in time.
    Rebuild(cli::rebuild::Args),
    /// Remove a projection's read models, versions, checkpoints and status.
    Drop(cli::drop::Args),
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: `info`; `warn` for the demo, whose
/// output is for a person to read), as text or as JSON lines that carry their span (a
/// projection's name and version).
fn init_tracing(default: &str, format: config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)))
        .with_writer(std::io::stderr);
    match format {
        config::LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        config::LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
    }
}

fn main() -> std::process::ExitCode {
    malloc::tune();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(err) => fail(&err.into()),
    }
}

async fn run() -> std::process::ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // `refract run` may take its log format from its config file: its settings are resolved
    // before logging starts.
    let mut run_settings = None;
    if let (Command::Run(args), Some(matches)) = (&cli.command, matches.subcommand_matches("run")) {
        match cli::run::Settings::resolve(args, cli.log_format, matches) {
            Ok(settings) => run_settings = Some(settings),
            Err(err) => return fail(&err),
        }
    }
    let log_format = run_settings.as_ref().map_or(cli.log_format, |s| s.log_format);
    init_tracing(if matches!(cli.command, Command::Demo(_) | Command::Bench(_)) { "warn" } else { "info" }, log_format);
    let result = match cli.command {
        Command::Migrate(args) => cli::migrate::run(args).await,
        Command::Append(args) => cli::append::run(args).await,
        Command::Generate(args) => cli::generate::run(args).await,
        Command::New(args) => cli::new::run(args).await,
        Command::Demo(args) => cli::demo::run(args).await,
        Command::Run(_) => cli::run::run(run_settings.take().expect("resolved before logging started")).await,
        Command::Status(args) => cli::status::run(args).await,
        Command::Retry(args) => cli::retry::run(args).await,
        Command::Bench(args) => cli::bench::run(args).await,
        Command::Rebuild(args) => cli::rebuild::run(args).await,
        Command::Drop(args) => cli::drop::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

fn fail(err: &anyhow::Error) -> std::process::ExitCode {
    eprintln!("error: {err:#}");
    std::process::ExitCode::FAILURE
}

/// glibc's allocator, held to a resident size that follows what the engine uses.
///
/// By default glibc gives every thread that allocates an arena of its own (up to eight per
/// core), and keeps what is freed inside an arena for reuse instead of returning it: an engine
/// with a guest thread per projection kept 60 to 150 MiB of freed batches resident after a
/// rebuild. Two arenas, and the free pages handed back to the system every few seconds, keep
/// it near what is in use. `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES` in the environment take
/// precedence over the arena limit.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod malloc {
    use std::ffi::c_int;
    use std::time::Duration;

    /// `mallopt`'s parameter for the most arenas (glibc's `M_ARENA_MAX`).
    const M_ARENA_MAX: c_int = -8;
    /// Arenas: one per core of a small machine; the engine's threads wait on the database
    /// and on guests far more than they allocate.
    const ARENAS: c_int = 2;
    /// How often the free pages of every arena go back to the system (and whenever the engine
    /// signals that it freed a lot, see `refract::memory`).
    const TRIM_EVERY: Duration = Duration::from_secs(5);

    #[allow(unsafe_code)]
    unsafe extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
        fn malloc_trim(pad: usize) -> c_int;
    }

    /// Limits the arenas (unless the environment sets them) and starts the trimming thread.
    pub fn tune() {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() && std::env::var_os("GLIBC_TUNABLES").is_none() {
            // SAFETY: mallopt only sets a parameter of the allocator; called before any
            // other thread of ours exists.
            #[allow(unsafe_code)]
            unsafe {
                mallopt(M_ARENA_MAX, ARENAS)
            };
        }
        let trimmer = std::thread::Builder::new().name("refract-malloc-trim".into()).spawn(|| {
            loop {
                // Every few seconds, and at once when the engine says it freed a lot.
                refract::memory::wait_freed(TRIM_EVERY);
                // SAFETY: malloc_trim takes the allocator's own locks; it releases free
                // pages only, never memory in use.
                #[allow(unsafe_code)]
                unsafe {
                    malloc_trim(0)
                };
            }
        });
        if let Err(err) = trimmer {
            eprintln!("warning: cannot start the thread that returns freed memory to the system: {err}");
        }
    }
}

/// Other allocators need no tuning.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod malloc {
    /// Nothing to do.
    pub fn tune() {}
}
