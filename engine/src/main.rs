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

/// The engine's allocator: mimalloc, with arena memory committed as it is used.
///
/// The host allocates and frees per event and per operation on several threads (reader,
/// guests, planner, writers). With glibc's allocator that took a quarter of the engine's CPU
/// in a write-heavy rebuild (`perf`: `malloc_consolidate`, `_int_free`, `unlink_chunk`), and
/// glibc kept freed batches resident unless trimmed. mimalloc by default keeps freed pages
/// committed for a while (its default purge delay) and commits its arenas eagerly: ten live
/// projections then held 220 to 275 MiB instead of ~130 MiB. Purging freed pages at once, in
/// turn, cost page faults for every batch (an order_summary rebuild: ~450k faults, sys time
/// 2.0 s against 1.6 s with a 10 ms delay, wall 4% longer in paired runs) and saved no memory
/// (ten live projections: 136 MiB with 10 ms, 139 MiB with 0). So: a purge delay of 10 ms,
/// arenas committed as they are used, no large pages. Options set in the environment
/// (`MIMALLOC_*`) take precedence.
mod malloc {
    #[global_allocator]
    static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

    /// Sets the options before `main`: mimalloc makes its first arena at the first allocation,
    /// with the options in force then (set in `main`, after the Rust runtime's first
    /// allocations, they left ten live projections at 154 to 182 MiB instead of ~125).
    #[cfg(target_os = "linux")]
    mod options {
        use std::ffi::{CStr, c_char};

        use libmimalloc_sys::{mi_option_large_os_pages, mi_option_set, mi_option_t};

        /// `mi_option_arena_eager_commit` of `mimalloc.h` (the crate names only some options).
        const ARENA_EAGER_COMMIT: mi_option_t = 4;
        /// `mi_option_purge_delay` of `mimalloc.h`.
        const PURGE_DELAY: mi_option_t = 15;

        /// Purge freed pages after 10 ms; commit arena memory as it is used; no large pages.
        const OPTIONS: [(&CStr, mi_option_t, std::ffi::c_long); 3] = [
            (c"MIMALLOC_PURGE_DELAY", PURGE_DELAY, 10),
            (c"MIMALLOC_ARENA_EAGER_COMMIT", ARENA_EAGER_COMMIT, 0),
            (c"MIMALLOC_ALLOW_LARGE_OS_PAGES", mi_option_large_os_pages, 0),
        ];

        #[allow(unsafe_code)]
        unsafe extern "C" {
            fn getenv(name: *const c_char) -> *const c_char;
        }

        #[used]
        #[allow(unsafe_code)]
        #[unsafe(link_section = ".init_array")]
        static SET: extern "C" fn() = set;

        /// Sets each option unless its variable is in the environment. Allocates nothing.
        extern "C" fn set() {
            for (variable, option, value) in OPTIONS {
                // SAFETY: getenv reads the environment, which nothing writes before `main`;
                // mi_option_set only stores the value (mimalloc's own initialisation, if it ran
                // first, does not override a value set later).
                #[allow(unsafe_code)]
                unsafe {
                    if getenv(variable.as_ptr()).is_null() {
                        mi_option_set(option, value);
                    }
                }
            }
        }
    }
}
