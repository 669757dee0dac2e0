//! What each projection is doing, kept in memory by the engine and published to the
//! `refract_status` table for `refract status` and other engines to read.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::cursor::Cursor;
use crate::metrics::{Metrics, ProjectionMetrics};

/// The state of a projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Loading, installing, waiting for its first batch.
    Starting,
    /// Another engine owns it; this one waits to take over.
    Standby,
    /// Behind the head of the log, reading on its own.
    CatchingUp,
    /// At the head of the log.
    Live,
    /// Stopped at an event it could not apply; see the last error.
    Failed,
    /// The engine is shutting down.
    Stopped,
}

impl State {
    /// The name used in the status table and output.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Standby => "standby",
            State::CatchingUp => "catching-up",
            State::Live => "live",
            State::Failed => "failed",
            State::Stopped => "stopped",
        }
    }
}

/// The last error of a projection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastError {
    /// What went wrong.
    pub message: String,
    /// Position of the event that caused it, when one did.
    pub position: Option<i64>,
    /// Id of that event.
    pub event_id: Option<String>,
}

/// What the engine knows about one projection.
#[derive(Debug, Clone)]
pub struct ProjectionStatus {
    /// Content hash of the component.
    pub content_hash: String,
    /// The module's own version string.
    pub module_version: String,
    /// Its state.
    pub state: State,
    /// Its committed checkpoint.
    pub checkpoint: Cursor,
    /// Events applied by this engine since it started.
    pub events: u64,
    /// Batches committed by this engine since it started.
    pub batches: u64,
    /// Its last error.
    pub last_error: Option<LastError>,
    /// Something the operator should know that is not an error of the running version (a
    /// new component that was refused while this one keeps serving).
    pub notice: Option<String>,
    recent: VecDeque<(Instant, u64)>,
    metrics: ProjectionMetrics,
}

/// The window over which events/s is measured.
const RATE_WINDOW: Duration = Duration::from_secs(5);

impl ProjectionStatus {
    fn new(content_hash: &str, module_version: &str, metrics: ProjectionMetrics) -> Self {
        ProjectionStatus {
            content_hash: content_hash.to_owned(),
            module_version: module_version.to_owned(),
            state: State::Starting,
            checkpoint: Cursor::START,
            events: 0,
            batches: 0,
            last_error: None,
            notice: None,
            recent: VecDeque::new(),
            metrics,
        }
    }

    /// Events per second over the last few seconds.
    pub fn rate(&self) -> f64 {
        let now = Instant::now();
        let events: u64 = self.recent.iter().filter(|(t, _)| now - *t <= RATE_WINDOW).map(|(_, n)| n).sum();
        events as f64 / RATE_WINDOW.as_secs_f64()
    }

    /// Records a committed batch of `events` events ending at `checkpoint`, which spent `guest`
    /// in the guest and `total` from the guest call to its commit. A committed batch means the
    /// projection is healthy again: an error it was retrying after is cleared.
    pub fn committed(&mut self, checkpoint: Cursor, events: u64, guest: Duration, total: Duration) {
        self.metrics.committed(events, guest, total);
        self.last_error = None;
        let now = Instant::now();
        self.checkpoint = checkpoint;
        self.events += events;
        self.batches += 1;
        self.recent.push_back((now, events));
        while self.recent.front().is_some_and(|(t, _)| now - *t > RATE_WINDOW) {
            self.recent.pop_front();
        }
    }
}

/// The status of every projection of this engine, shared by its tasks, with the engine's
/// metrics.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard {
    entries: Arc<Mutex<BTreeMap<String, ProjectionStatus>>>,
    metrics: Arc<Metrics>,
}

impl StatusBoard {
    /// Adds (or resets) the entry of a projection.
    pub fn register(&self, name: &str, content_hash: &str, module_version: &str) {
        let metrics = self.metrics.projection(name, module_version);
        self.lock().insert(name.to_owned(), ProjectionStatus::new(content_hash, module_version, metrics));
    }

    /// Counts a reload of `name`'s component.
    pub fn reloaded(&self, name: &str) {
        if let Some(status) = self.lock().get(name) {
            status.metrics.reloaded();
        }
    }

    /// Removes the entry of `name` (a version that was built under its schema's name and now
    /// serves under the projection's).
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    /// Changes the entry of `name`, if there is one. A change into state `failed` counts as a
    /// failure in the metrics.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut ProjectionStatus)) {
        if let Some(status) = self.lock().get_mut(name) {
            let before = status.state;
            change(status);
            if status.state == State::Failed && before != State::Failed {
                status.metrics.failed();
            }
        }
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A copy of every entry.
    pub fn snapshot(&self) -> BTreeMap<String, ProjectionStatus> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ProjectionStatus>> {
        // A panic while holding the lock cannot leave an entry half-written in a way that
        // matters for a status display, so a poisoned lock is still used.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
