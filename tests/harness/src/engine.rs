//! Driving `refract run` as a separate process, the way an operator does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_postgres::Client;

/// A running `refract run` process. Killed when dropped.
pub struct EngineProcess {
    child: Child,
    log: PathBuf,
}

impl EngineProcess {
    /// Starts `bin run` against `url` with the components in `projections`, logging to `log`,
    /// with `extra` arguments appended.
    pub fn start(bin: &str, url: &str, projections: &Path, log: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = Command::new(bin)
            .arg("run")
            .arg("--database-url")
            .arg(url)
            .arg("--projections")
            .arg(projections)
            .arg("--poll-interval-ms")
            .arg("100")
            .args(extra)
            .env("RUST_LOG", "info")
            // Engines of concurrent tests must not compete for the default HTTP port.
            .env("REFRACT_HTTP", "127.0.0.1:0")
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {bin}"))?;
        Ok(EngineProcess { child, log: log.to_owned() })
    }

    /// Kills the process with SIGKILL: no clean-up of any kind.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the process to stop with SIGTERM and waits for it.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.kill();
                bail!("the engine did not stop within 60 s of SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `bin` (the `refract` binary) with `args`: its stdout, or an error with its stderr.
pub fn cli(bin: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin).args(args).output().with_context(|| format!("starting {bin}"))?;
    anyhow::ensure!(out.status.success(), "refract {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?)
}

/// Appends `orders` sample orders (deterministic for `seed`) to the database at `url` with
/// `bin generate orders`.
pub fn generate_orders(bin: &str, url: &str, orders: u32, seed: u32) -> anyhow::Result<()> {
    let (orders, seed) = (orders.to_string(), seed.to_string());
    cli(bin, &["generate", "orders", "--database-url", url, "--orders", &orders, "--seed", &seed]).map(drop)
}

/// Starts `bin run` against `url` over a new directory holding copies of `components`,
/// logging to `engine.log` in it; returns the directory (removed when dropped) and the process.
pub fn start_over(
    bin: &str,
    url: &str,
    components: &[&str],
    extra: &[&str],
) -> anyhow::Result<(tempfile::TempDir, EngineProcess)> {
    let dir = projections_dir(components)?;
    let engine = EngineProcess::start(bin, url, dir.path(), &dir.path().join("engine.log"), extra)?;
    Ok((dir, engine))
}

/// A directory holding copies of `components` (paths of `.wasm` files), for `--projections`.
pub fn projections_dir(components: &[&str]) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    for component in components {
        let path = Path::new(component);
        let name = path.file_name().context("component path has no file name")?;
        std::fs::copy(path, dir.path().join(name)).with_context(|| format!("copying {component}"))?;
    }
    Ok(dir)
}

/// Events of the log (schema `public`) that the active version of projection `name` has not
/// passed yet, in the engine's order `(transaction_id, global_position)`; the whole log when
/// it has no active version yet.
pub async fn remaining(client: &Client, name: &str) -> anyhow::Result<i64> {
    let row = client
        .query_one(
            "SELECT count(*) FROM events e
              WHERE (e.transaction_id, e.global_position) >
                    (SELECT coalesce(max(c.transaction_id), '0'), coalesce(max(c.position), 0)
                       FROM checkpoints c JOIN refract_projections p ON c.projection_name = p.active_schema
                      WHERE p.name = $1)",
            &[&name],
        )
        .await?;
    Ok(row.get(0))
}

/// Waits until every projection in `names` has passed every committed event, or fails after
/// `limit` (a bound on a hang, not a performance assertion) with `engine`'s log.
pub async fn wait_caught_up(
    client: &Client,
    names: &[&str],
    limit: Duration,
    engine: &EngineProcess,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let mut behind = Vec::new();
        for name in names {
            let left = remaining(client, name).await?;
            if left > 0 {
                behind.push(format!("{name}: {left} events left"));
            }
        }
        if behind.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not caught up after {limit:?} ({}); engine log:\n{}", behind.join(", "), engine.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
