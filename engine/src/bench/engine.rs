//! The engine under measurement: `refract run` in a child process of its own, so that its
//! memory and CPU time are its own, watched from outside until it has caught up.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};
use tokio_postgres::Client;

use super::BenchError;
use super::procstat::{cpu_seconds, peak_rss_bytes, reset_peak_rss, rss_bytes};
use crate::readmodel::quote_ident;
use crate::runner::Cursor;

/// How often the watcher looks at the checkpoints.
const POLL: Duration = Duration::from_millis(10);
/// Lines of the engine's log kept to explain a failure.
const LOG_TAIL: usize = 20;
/// The log line the engine writes per committed batch, and the field with its duration.
const BATCH_LINE: &str = "batch committed";
const BATCH_FIELD: &str = "total_ms";

/// What the child used, sampled just before it was stopped.
#[derive(Debug, Clone)]
pub struct Usage {
    /// Peak resident set size of the engine process, in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// CPU seconds of the engine process.
    pub engine_cpu_seconds: Option<f64>,
    /// CPU seconds of the PostgreSQL backends of the engine's connections.
    pub postgres_cpu_seconds: Option<f64>,
    /// Milliseconds per committed batch (apply + plan + commit), as the engine logs them.
    pub batch_ms: Vec<f64>,
}

/// A running `refract run` over a directory holding just the projections measured.
pub struct EngineChild {
    child: Child,
    pid: u32,
    /// Removed when the child is done with it.
    _dir: tempfile::TempDir,
    names: Vec<String>,
    application_name: String,
    batch_ms: Arc<Mutex<Vec<f64>>>,
    log_tail: Arc<Mutex<VecDeque<String>>>,
    /// Set when the engine logs an error (a refused component, a failed projection).
    logged_error: Arc<AtomicBool>,
    /// Last CPU seconds seen per backend pid (a backend's time is lost when it exits).
    backends: HashMap<u32, f64>,
}

/// How a child engine is started.
#[derive(Debug, Clone)]
pub struct EngineSpec<'a> {
    /// The `refract` binary.
    pub binary: &'a Path,
    /// The scratch database.
    pub url: &'a str,
    /// The event store's schema.
    pub schema: &'a str,
    /// Events per batch, or `None` for the engine's default.
    pub batch_size: Option<usize>,
}

impl EngineChild {
    /// Starts `refract run` over copies of `projections` (`(name, component path)`).
    pub fn start<P: AsRef<Path>>(spec: &EngineSpec<'_>, projections: &[(&str, P)]) -> Result<Self, BenchError> {
        let dir = tempfile::tempdir()?;
        for (name, path) in projections {
            std::fs::copy(path, dir.path().join(format!("{name}.wasm")))?;
            if let Some(batch_size) = spec.batch_size {
                std::fs::write(dir.path().join(format!("{name}.toml")), format!("batch_size = {batch_size}\n"))?;
            }
        }
        // The engine's connections carry this name, so that their backends can be found.
        let application_name = format!("refract_bench_{}", std::process::id());
        let mut child = Command::new(spec.binary)
            .arg("run")
            .arg("--projections")
            .arg(dir.path())
            .args(["--database-url", &with_application_name(spec.url, &application_name)])
            .args(["--schema", spec.schema])
            .env("RUST_LOG", "warn,refract::runner=debug")
            .env_remove("RUST_LOG_STYLE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or_else(|| BenchError::Engine("the engine exited at once".into()))?;
        let batch_ms = Arc::new(Mutex::new(Vec::new()));
        let log_tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let logged_error = Arc::new(AtomicBool::new(false));
        let (batches, tail, error) = (batch_ms.clone(), log_tail.clone(), logged_error.clone());
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(ms) = batch_duration(&line) {
                    batches.lock().unwrap_or_else(|p| p.into_inner()).push(ms);
                    continue;
                }
                if line.contains(" ERROR ") || line.contains(r#""level":"ERROR""#) {
                    error.store(true, Ordering::Relaxed);
                }
                let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                if tail.len() == LOG_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        Ok(EngineChild {
            child,
            pid,
            _dir: dir,
            names: projections.iter().map(|(name, _)| (*name).to_owned()).collect(),
            application_name,
            batch_ms,
            log_tail,
            logged_error,
            backends: HashMap::new(),
        })
    }

    /// Waits until every projection's checkpoint has reached `head`, failing if the engine
    /// exits, a projection fails, or `timeout` passes. Returns when the projections were
    /// installed (their checkpoints appeared) and when they had all caught up.
    pub async fn wait_caught_up(
        &mut self,
        client: &Client,
        schema: &str,
        head: Cursor,
        timeout: Duration,
    ) -> Result<(Instant, Instant), BenchError> {
        let deadline = Instant::now() + timeout;
        let mut installed = None;
        for tick in 0u64.. {
            let cursors = self.checkpoints(client, schema).await?;
            let now = Instant::now();
            if installed.is_none() && cursors.len() == self.names.len() {
                installed = Some(now);
            }
            if let Some(installed) = installed
                && cursors.values().all(|c| *c >= head)
            {
                self.sample_backends(client).await?;
                return Ok((installed, now));
            }
            if tick % 20 == 0 {
                self.sample_backends(client).await?;
                self.check_failed(client, schema).await?;
            }
            if self.logged_error.load(Ordering::Relaxed) {
                // Give the log a moment to carry the whole message.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(self.failure("the engine logged an error"));
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(self.failure(&format!("the engine exited ({status})")));
            }
            if now > deadline {
                return Err(self.failure(&format!("not caught up after {timeout:?} (checkpoints {cursors:?})")));
            }
            tokio::time::sleep(POLL).await;
        }
        unreachable!("the loop returns")
    }

    /// The furthest checkpoint of each measured projection (any of its versions' schemas).
    pub async fn checkpoints(&self, client: &Client, schema: &str) -> Result<HashMap<String, Cursor>, BenchError> {
        let sql = format!(
            "SELECT split_part(projection_name, '__', 1), transaction_id::text::bigint, position
               FROM {}.checkpoints WHERE split_part(projection_name, '__', 1) = ANY($1)",
            quote_ident(schema)
        );
        let mut cursors: HashMap<String, Cursor> = HashMap::new();
        for row in client.query(&sql, &[&self.names]).await? {
            let cursor = Cursor { transaction_id: row.get(1), position: row.get(2) };
            let entry = cursors.entry(row.get(0)).or_insert(cursor);
            *entry = (*entry).max(cursor);
        }
        Ok(cursors)
    }

    async fn check_failed(&self, client: &Client, schema: &str) -> Result<(), BenchError> {
        let sql = format!(
            "SELECT name, coalesce(last_error, '') FROM {}.refract_status WHERE name = ANY($1) AND state = 'failed'",
            quote_ident(schema)
        );
        match client.query(&sql, &[&self.names]).await?.first() {
            Some(row) => Err(self.failure(&format!("{} failed: {}", row.get::<_, String>(0), row.get::<_, String>(1)))),
            None => Ok(()),
        }
    }

    /// Records the CPU time of every backend of the engine's connections.
    async fn sample_backends(&mut self, client: &Client) -> Result<(), BenchError> {
        let rows = client
            .query("SELECT pid FROM pg_stat_activity WHERE application_name = $1", &[&self.application_name])
            .await?;
        for row in rows {
            let pid = row.get::<_, i32>(0).unsigned_abs();
            if let Some(cpu) = cpu_seconds(pid) {
                self.backends.insert(pid, cpu);
            }
        }
        Ok(())
    }

    /// The engine's peak resident set size so far (since [`EngineChild::reset_peak_rss`]).
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        peak_rss_bytes(self.pid)
    }

    /// Makes the peak resident set size start again from the engine's current one, which it
    /// returns (bytes).
    pub fn reset_peak_rss(&self) -> Result<Option<u64>, BenchError> {
        reset_peak_rss(self.pid)?;
        Ok(rss_bytes(self.pid))
    }

    /// Samples what the engine used, then stops it.
    pub async fn finish(mut self, client: &Client) -> Result<Usage, BenchError> {
        self.sample_backends(client).await?;
        let usage = Usage {
            peak_rss_bytes: peak_rss_bytes(self.pid),
            engine_cpu_seconds: cpu_seconds(self.pid),
            postgres_cpu_seconds: (!self.backends.is_empty()).then(|| self.backends.values().sum()),
            batch_ms: std::mem::take(&mut *self.batch_ms.lock().unwrap_or_else(|p| p.into_inner())),
        };
        // The read models are committed: nothing is lost by killing rather than stopping it.
        self.child.kill().await?;
        Ok(usage)
    }

    fn failure(&self, what: &str) -> BenchError {
        let tail = self.log_tail.lock().unwrap_or_else(|p| p.into_inner());
        let log = tail.iter().cloned().collect::<Vec<_>>().join("\n");
        BenchError::Engine(format!("{what}; the engine's last log lines:\n{log}"))
    }
}

/// `url` with `application_name` set (URL or `key=value` form).
fn with_application_name(url: &str, name: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}application_name={name}")
    } else {
        format!("{url} application_name={name}")
    }
}

/// The `total_ms` of an engine log line about a committed batch.
fn batch_duration(line: &str) -> Option<f64> {
    if !line.contains(BATCH_LINE) {
        return None;
    }
    // `total_ms=12` in text logs, `"total_ms":12` in JSON ones.
    let start = line.find(BATCH_FIELD)? + BATCH_FIELD.len();
    let value = line[start..].trim_start_matches(['=', '"', ':']);
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_duration_of_a_committed_batch() {
        let line = "2026-01-01T00:00:00Z DEBUG refract::runner::worker: batch committed projection=noop \
                    events=5000 ops=0 statements=0 guest_ms=3 total_ms=12";
        assert_eq!(batch_duration(line), Some(12.0));
        assert_eq!(batch_duration(r#"{"fields":{"message":"batch committed","total_ms":7}}"#), Some(7.0));
        assert_eq!(batch_duration("DEBUG other line total_ms=5"), None);
    }

    #[test]
    fn sets_the_application_name_in_both_url_forms() {
        assert_eq!(with_application_name("postgres://h/db", "x"), "postgres://h/db?application_name=x");
        assert_eq!(with_application_name("postgres://h/db?a=b", "x"), "postgres://h/db?a=b&application_name=x");
        assert_eq!(with_application_name("host=h dbname=db", "x"), "host=h dbname=db application_name=x");
    }
}
