//! The projections directory, watched: components appear, change and disappear while the
//! engine runs.
//!
//! - A new component is loaded and its projection installed and caught up.
//! - A changed component (new content hash, or new settings) starts a worker for the new
//!   version beside the one serving; the new version is built from zero in a schema of its own
//!   and swapped in when it reaches the head (see [`super::install`]). The old worker stops
//!   when the new version is active.
//! - A file that cannot be loaded (half copied, invalid, built against an unknown contract) is
//!   refused with a notice in the projection's status; whatever served keeps serving.
//! - A removed component stops its projection; its read model stays until `refract drop`.
//!
//! Changes to a file are debounced: a burst of writes gives one reload, once the file has
//! been quiet for [`QUIET`]. Components are compiled on a blocking thread, through the
//! runtime's compilation cache, so tailing goes on meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::loader::{self, Loaded};
use super::worker::{self, Mode, Switched, WorkerContext};
use crate::wasm::Runtime;

/// How long a file must stay unchanged before it is (re)loaded.
pub const QUIET: Duration = Duration::from_millis(400);

/// A worker the deployer started.
struct Deployed {
    name: String,
    content_hash: String,
    /// What the files held when it was loaded: the component's hash and the settings' text.
    fingerprint: String,
    stop: watch::Sender<bool>,
}

/// Watches the projections directory and runs a worker per component.
pub struct Deployer {
    runtime: Runtime,
    dir: PathBuf,
    ctx: WorkerContext,
    switched: mpsc::UnboundedReceiver<Switched>,
    /// The worker of each component file.
    current: BTreeMap<PathBuf, Deployed>,
    /// Workers of replaced components, serving until the new version is swapped in.
    outgoing: Vec<Deployed>,
    workers: JoinSet<()>,
}

impl Deployer {
    /// A deployer of the components in `dir`; workers get `ctx` (with a stop signal of their
    /// own in place of its `shutdown`).
    pub fn new(
        runtime: Runtime,
        dir: PathBuf,
        ctx: WorkerContext,
        switched: mpsc::UnboundedReceiver<Switched>,
    ) -> Self {
        Deployer {
            runtime,
            dir,
            ctx,
            switched,
            current: BTreeMap::new(),
            outgoing: Vec::new(),
            workers: JoinSet::new(),
        }
    }

    /// Loads every component of the directory, then starts their workers together, so that
    /// projections starting from the same checkpoint share their reads from the first batch.
    pub async fn start(&mut self) -> Result<(), loader::LoadError> {
        let mut loaded = Vec::new();
        for path in loader::components_in(&self.dir)? {
            let print = fingerprint(&path);
            if let Some(component) = self.load(&path).await {
                loaded.push((component, print));
            }
        }
        for (component, print) in loaded {
            self.spawn(component, print);
        }
        Ok(())
    }

    /// Watches the directory until `shutdown`, then stops every worker and waits for them.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let (changes, mut changed) = mpsc::unbounded_channel::<PathBuf>();
        let _watcher = match watch_dir(&self.dir, changes) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::error!(dir = %self.dir.display(), %error, "cannot watch the projections directory; hot reload is off");
                None
            }
        };
        let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
        loop {
            let next = pending.values().min().copied();
            tokio::select! {
                Some(path) = changed.recv() => {
                    pending.insert(path, Instant::now() + QUIET);
                }
                Some(switched) = self.switched.recv() => self.retire_outgoing(&switched),
                _ = sleep_until(next) => {
                    let now = Instant::now();
                    let due: Vec<PathBuf> = pending.iter().filter(|(_, at)| **at <= now).map(|(p, _)| p.clone()).collect();
                    for path in due {
                        pending.remove(&path);
                        self.reload(&path).await;
                    }
                }
                Some(_) = self.workers.join_next(), if !self.workers.is_empty() => {}
                // (The guard `wait_for` returns is not `Send`: it must not live in the select.)
                () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => break,
            }
        }
        for deployed in self.current.values().chain(&self.outgoing) {
            let _ = deployed.stop.send(true);
        }
        while self.workers.join_next().await.is_some() {}
    }

    /// Reads, compiles and describes the component at `path` on a blocking thread; logs why
    /// it was refused, in the status of the projection its file served, if any.
    async fn load(&self, path: &Path) -> Option<Loaded> {
        let runtime = self.runtime.clone();
        let owned = path.to_owned();
        let result = tokio::task::spawn_blocking(move || loader::load(&runtime, &owned)).await;
        let error = match result {
            Ok(Ok(loaded)) => {
                let compiled = self.runtime.compiled();
                tracing::info!(projection = %loaded.name(), version = %loaded.description.version, path = %path.display(), compiled_so_far = ?compiled, "loaded");
                return Some(loaded);
            }
            Ok(Err(error)) => error.to_string(),
            Err(join) => format!("{}: loading panicked: {join}", path.display()),
        };
        tracing::error!(path = %path.display(), %error, "component refused");
        if let Some(serving) = self.current.get(path) {
            self.ctx.status.update(&serving.name, |s| s.notice = Some(format!("new component refused: {error}")));
        }
        None
    }

    /// Starts a worker for `loaded`, whose files had `fingerprint` before it was loaded.
    fn spawn(&mut self, loaded: Loaded, fingerprint: String) {
        let (stop, stopped) = watch::channel(false);
        let ctx = WorkerContext { shutdown: stopped, ..self.ctx.clone() };
        let deployed =
            Deployed { name: loaded.name().to_owned(), content_hash: loaded.content_hash.clone(), fingerprint, stop };
        if let Some(previous) = self.current.insert(loaded.path.clone(), deployed) {
            // Callers take the previous worker out first; this one is a leftover: stop it.
            let _ = previous.stop.send(true);
        }
        let span =
            tracing::info_span!("projection", projection = %loaded.name(), version = %loaded.description.version);
        self.workers.spawn(tracing::Instrument::instrument(worker::run(loaded, ctx, Mode::Serve), span));
    }

    /// Acts on a change to `path` (a component or its settings file).
    async fn reload(&mut self, path: &Path) {
        let component = path.with_extension("wasm");
        if !component.is_file() {
            if let Some(removed) = self.current.remove(&component) {
                tracing::info!(projection = %removed.name, path = %component.display(), "component removed: projection stopped; its read model stays until `refract drop`");
                let _ = removed.stop.send(true);
            }
            return;
        }
        let print = fingerprint(&component);
        if self.current.get(&component).is_some_and(|d| d.fingerprint == print) {
            return;
        }
        let Some(loaded) = self.load(&component).await else { return };
        if let Some((other, _)) =
            self.current.iter().find(|(p, d)| d.name == loaded.name() && p.as_path() != component.as_path())
        {
            tracing::error!(projection = %loaded.name(), path = %component.display(), other = %other.display(), "component refused: another file already serves this projection");
            return;
        }
        tracing::info!(projection = %loaded.name(), version = %loaded.description.version, "reloading");
        if let Some(replaced) = self.current.remove(&component) {
            self.ctx.status.update(&replaced.name, |s| s.notice = None);
            let serving = self.serves(&replaced);
            if replaced.name == loaded.name() && serving && replaced.content_hash != loaded.content_hash {
                // The new version is built beside it; it serves until then.
                self.outgoing.push(replaced);
            } else {
                // Another projection in the file (like a removal), new settings for the same
                // component (a restart), or a version still being built that the new file
                // supersedes: it stops now.
                let _ = replaced.stop.send(true);
            }
        }
        self.ctx.status.reloaded(loaded.name());
        // Back to the component that still serves (a change undone while its successor was
        // being built): that worker is the current one again.
        let back = self.outgoing.iter().position(|d| d.name == loaded.name() && d.fingerprint == print);
        match back {
            Some(index) => {
                let serving = self.outgoing.remove(index);
                self.current.insert(component, serving);
            }
            None => self.spawn(loaded, print),
        }
    }

    /// Whether `deployed`'s worker serves its projection's active version (rather than
    /// building a new one): the status entry under the projection's name is its component's.
    fn serves(&self, deployed: &Deployed) -> bool {
        self.ctx.status.snapshot().get(&deployed.name).is_some_and(|s| s.content_hash == deployed.content_hash)
    }

    /// The version of `switched.name` built by the current worker is active: the workers of
    /// the versions it replaced stop.
    fn retire_outgoing(&mut self, switched: &Switched) {
        self.outgoing.retain(|deployed| {
            let replaced = deployed.name == switched.name;
            if replaced {
                let _ = deployed.stop.send(true);
            }
            !replaced
        });
    }
}

/// Where compiled components are cached unless configured otherwise: `$REFRACT_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/refract`, else `$HOME/.cache/refract`; `None` when none of these is
/// set (or `REFRACT_CACHE_DIR` is empty: no cache).
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).map(PathBuf::from);
    match var("REFRACT_CACHE_DIR") {
        Some(dir) if dir.as_os_str().is_empty() => None,
        Some(dir) => Some(dir),
        None => var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache"))).map(|d| d.join("refract")),
    }
    .map(|dir| std::path::absolute(&dir).unwrap_or(dir))
}

/// What a component file and its settings file hold, to tell a real change from a touch.
fn fingerprint(component: &Path) -> String {
    let mut hash = Sha256::new();
    hash.update(std::fs::read(component).unwrap_or_default());
    hash.update([0]);
    hash.update(std::fs::read(component.with_extension("toml")).unwrap_or_default());
    format!("{:x}", hash.finalize())
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Watches `dir` and sends the path of every component or settings file that changes.
fn watch_dir(dir: &Path, changes: mpsc::UnboundedSender<PathBuf>) -> notify::Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for path in event.paths {
            if path.extension().is_some_and(|e| e == "wasm" || e == "toml") {
                let _ = changes.send(path);
            }
        }
    })?;
    watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
    Ok(watcher)
}
