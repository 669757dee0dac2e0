//! A throwaway PostgreSQL cluster, started from the installed binaries for as long as the
//! process that started it lives.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Where Debian and Ubuntu install the server binaries, one folder per major version.
const INSTALL_ROOT: &str = "/usr/lib/postgresql";

/// Why a throwaway cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No `initdb` and `pg_ctl` were found.
    #[error("no PostgreSQL server binaries (initdb, pg_ctl) under {INSTALL_ROOT}/*/bin or on PATH")]
    NoBinaries,
    /// Running as root, but there is no `postgres` user to run the server as.
    #[error("running as root and there is no `postgres` user to run the server as")]
    NoPostgresUser,
    /// A step failed.
    #[error("{step} failed: {detail}")]
    Step {
        /// What was being done.
        step: &'static str,
        /// Its error output, or the I/O error.
        detail: String,
    },
}

/// A PostgreSQL cluster in a temporary directory, listening on a free port of 127.0.0.1 with
/// trust authentication for user `postgres`. Built for tests and demos: durability is off.
///
/// It is stopped and deleted when dropped, and — since a process may exit without dropping
/// it, or be killed — also by a watchdog process that waits for the owning process to end.
#[derive(Debug)]
pub struct ThrowawayCluster {
    dir: PathBuf,
    pg_ctl: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl ThrowawayCluster {
    /// Initialises and starts a cluster (blocking: a few seconds). As root the server runs as
    /// the `postgres` user, since PostgreSQL refuses to run as root.
    pub fn start() -> Result<Self, ClusterError> {
        let bin = find_binaries().ok_or(ClusterError::NoBinaries)?;
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!("refract-pg-{}-{}", std::process::id(), unique_suffix()));
        std::fs::create_dir_all(&dir).map_err(|e| step("creating the cluster directory", e))?;
        let cluster = ThrowawayCluster { dir, pg_ctl: bin.join("pg_ctl"), port: free_port()?, as_postgres };
        if as_postgres {
            let uid = postgres_uid().ok_or(ClusterError::NoPostgresUser)?;
            std::os::unix::fs::chown(&cluster.dir, Some(uid), None)
                .map_err(|e| step("handing the cluster directory to user postgres", e))?;
        }
        cluster.watch_owner()?;
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &bin.join("initdb"),
            [
                OsStr::new("-D"),
                data.as_os_str(),
                OsStr::new("-U"),
                OsStr::new("postgres"),
                OsStr::new("--auth=trust"),
                OsStr::new("--encoding=UTF8"),
                OsStr::new("--no-sync"),
            ],
        )?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories='{}' \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            cluster.port,
            cluster.dir.display()
        );
        let log = cluster.dir.join("server.log");
        cluster.run(
            "pg_ctl start",
            &cluster.pg_ctl,
            [
                OsStr::new("-D"),
                data.as_os_str(),
                OsStr::new("-l"),
                log.as_os_str(),
                OsStr::new("-o"),
                OsStr::new(&options),
                OsStr::new("-w"),
                OsStr::new("start"),
            ],
        )?;
        tracing::info!(port = cluster.port, dir = %cluster.dir.display(), "started a throwaway PostgreSQL cluster");
        Ok(cluster)
    }

    /// The connection URL of the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs `program` with `args`, as user postgres when running as root.
    fn run<'a>(
        &self,
        what: &'static str,
        program: &Path,
        args: impl IntoIterator<Item = &'a OsStr>,
    ) -> Result<Output, ClusterError> {
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        let output =
            command.args(args).current_dir(&self.dir).stdin(Stdio::null()).output().map_err(|e| step(what, e))?;
        if !output.status.success() {
            let detail = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            return Err(ClusterError::Step { step: what, detail: format!("{} ({})", detail, output.status) });
        }
        Ok(output)
    }

    /// Starts a detached shell that waits for this process to end, then stops the server and
    /// deletes its directory. It ignores the terminal's signals, so a Ctrl-C that ends the
    /// tests does not end the watchdog before it has cleaned up.
    fn watch_owner(&self) -> Result<(), ClusterError> {
        const SCRIPT: &str = r#"trap '' INT HUP TERM QUIT
while kill -0 "$1" 2>/dev/null; do sleep 1; done
if [ "$4" = yes ]; then runuser -u postgres -- "$2" -D "$3/data" -m immediate stop
else "$2" -D "$3/data" -m immediate stop; fi
rm -rf "$3""#;
        Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("refract-pg-watchdog")
            .arg(std::process::id().to_string())
            .arg(&self.pg_ctl)
            .arg(&self.dir)
            .arg(if self.as_postgres { "yes" } else { "no" })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| step("starting the cluster watchdog", e))?;
        Ok(())
    }
}

impl Drop for ThrowawayCluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        let stopped = self.run(
            "pg_ctl stop",
            &self.pg_ctl.clone(),
            [OsStr::new("-D"), data.as_os_str(), OsStr::new("-m"), OsStr::new("fast"), OsStr::new("stop")],
        );
        if let Err(err) = stopped {
            tracing::warn!(error = %err, "stopping the throwaway cluster");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn step(what: &'static str, err: std::io::Error) -> ClusterError {
    ClusterError::Step { step: what, detail: err.to_string() }
}

/// The `bin` folder of the newest installed major version, else the folder of `initdb` on PATH.
fn find_binaries() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let mut installed: Vec<(u32, PathBuf)> = std::fs::read_dir(INSTALL_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((major, bin))
        })
        .collect();
    installed.sort();
    installed
        .pop()
        .map(|(_, bin)| bin)
        .or_else(|| std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| has_tools(dir)))
}

fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| step("finding a free port", e))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| step("finding a free port", e))
}

fn is_root() -> bool {
    // The effective uid, without unsafe code: /proc/self is owned by it.
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

fn postgres_uid() -> Option<u32> {
    let output = Command::new("id").args(["-u", "postgres"]).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().parse().ok())?
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}
