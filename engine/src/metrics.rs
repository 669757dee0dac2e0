//! Prometheus metrics of a running engine, served at `/metrics` in the OpenMetrics text format.
//!
//! Every projection-labelled series carries `name` and `version` (the module's own version
//! string). Counters move as batches commit ([`ProjectionMetrics`], held by each projection's
//! status entry); gauges (lag, checkpoint, state) are set when `/metrics` is scraped, from the
//! engine's status board and the same database report as `refract status`.
//!
//! | metric | type | what it counts |
//! |---|---|---|
//! | `refract_events_total` | counter | events applied in committed batches |
//! | `refract_batches_total` | counter | batches committed |
//! | `refract_batch_duration_seconds` | histogram | guest call + planning + commit of a committed batch |
//! | `refract_guest_seconds_total` | counter | wall-clock time spent in the guest for committed batches |
//! | `refract_projection_failures_total` | counter | times the projection halted (state `failed`) |
//! | `refract_projection_reloads_total` | counter | times the projection's component was reloaded |
//! | `refract_projection_lag_events` | gauge | events in the log after the checkpoint |
//! | `refract_projection_checkpoint_position` | gauge | global position of the committed checkpoint |
//! | `refract_projection_state` | gauge | 1 for the projection's current state (label `state`), 0 for the others |
//! | `refract_log_head_position` | gauge | the log's last global position |

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::runner::State;

/// The labels of every per-projection series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProjectionLabels {
    name: String,
    version: String,
}

/// The labels of the state gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    name: String,
    version: String,
    state: &'static str,
}

/// Every state, for the state gauge (one series per state, so that `== 1` alerts work).
const STATES: [State; 6] =
    [State::Starting, State::Standby, State::CatchingUp, State::Live, State::Failed, State::Stopped];

/// Batch latency buckets: 1 ms doubling up to about 33 s (the default guest deadline is 30 s).
fn batch_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

type FloatCounter = Counter<f64, AtomicU64>;

/// The engine's metric families and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events: Family<ProjectionLabels, Counter>,
    batches: Family<ProjectionLabels, Counter>,
    batch_duration: Family<ProjectionLabels, Histogram, fn() -> Histogram>,
    guest_seconds: Family<ProjectionLabels, FloatCounter>,
    failures: Family<ProjectionLabels, Counter>,
    reloads: Family<ProjectionLabels, Counter>,
    lag: Family<ProjectionLabels, Gauge>,
    checkpoint: Family<ProjectionLabels, Gauge>,
    state: Family<StateLabels, Gauge>,
    head: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("refract");
        let metrics = Metrics {
            registry: Registry::default(),
            events: Family::default(),
            batches: Family::default(),
            batch_duration: Family::new_with_constructor(batch_buckets),
            guest_seconds: Family::default(),
            failures: Family::default(),
            reloads: Family::default(),
            lag: Family::default(),
            checkpoint: Family::default(),
            state: Family::default(),
            head: Gauge::default(),
        };
        registry.register("events", "Events applied in committed batches", metrics.events.clone());
        registry.register("batches", "Batches committed", metrics.batches.clone());
        registry.register_with_unit(
            "batch_duration",
            "Time from handing a batch to the guest to its commit",
            Unit::Seconds,
            metrics.batch_duration.clone(),
        );
        registry.register_with_unit(
            "guest",
            "Wall-clock time spent in the guest for committed batches",
            Unit::Seconds,
            metrics.guest_seconds.clone(),
        );
        registry.register(
            "projection_failures",
            "Times the projection halted in state failed",
            metrics.failures.clone(),
        );
        registry.register(
            "projection_reloads",
            "Times the projection's component was reloaded",
            metrics.reloads.clone(),
        );
        registry.register("projection_lag_events", "Events in the log after the checkpoint", metrics.lag.clone());
        registry.register(
            "projection_checkpoint_position",
            "Global position of the committed checkpoint",
            metrics.checkpoint.clone(),
        );
        registry.register(
            "projection_state",
            "1 for the projection's current state, 0 for the others",
            metrics.state.clone(),
        );
        registry.register("log_head_position", "The log's last global position", metrics.head.clone());
        Metrics { registry, ..metrics }
    }
}

impl Metrics {
    /// The counters of projection `name` at `version`, created at zero so that they are
    /// exported before anything happens.
    pub fn projection(&self, name: &str, version: &str) -> ProjectionMetrics {
        let labels = ProjectionLabels { name: name.to_owned(), version: version.to_owned() };
        ProjectionMetrics {
            events: self.events.get_or_create_owned(&labels),
            batches: self.batches.get_or_create_owned(&labels),
            batch_duration: self.batch_duration.get_or_create_owned(&labels),
            guest_seconds: self.guest_seconds.get_or_create_owned(&labels),
            failures: self.failures.get_or_create_owned(&labels),
            reloads: self.reloads.get_or_create_owned(&labels),
        }
    }

    /// Sets the gauges of projection `name` at `version`: its state, checkpoint, and lag when
    /// known.
    pub fn observe(&self, name: &str, version: &str, state: State, checkpoint: i64, lag: Option<i64>) {
        let labels = ProjectionLabels { name: name.to_owned(), version: version.to_owned() };
        self.checkpoint.get_or_create(&labels).set(checkpoint);
        if let Some(lag) = lag {
            self.lag.get_or_create(&labels).set(lag);
        }
        for s in STATES {
            let labels = StateLabels { name: name.to_owned(), version: version.to_owned(), state: s.as_str() };
            self.state.get_or_create(&labels).set(i64::from(s == state));
        }
    }

    /// Sets the log's head position.
    pub fn observe_head(&self, head: i64) {
        self.head.set(head);
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; the encoder only propagates the writer's errors.
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String");
        text
    }
}

/// The counters of one projection; cheap handles onto the series in [`Metrics`].
#[derive(Debug, Clone)]
pub struct ProjectionMetrics {
    events: Counter,
    batches: Counter,
    batch_duration: Histogram,
    guest_seconds: FloatCounter,
    failures: Counter,
    reloads: Counter,
}

impl ProjectionMetrics {
    /// Records a committed batch of `events` events that spent `guest` in the guest and
    /// `total` from the guest call to its commit.
    pub fn committed(&self, events: u64, guest: Duration, total: Duration) {
        self.events.inc_by(events);
        self.batches.inc();
        self.batch_duration.observe(total.as_secs_f64());
        self.guest_seconds.inc_by(guest.as_secs_f64());
    }

    /// Records that the projection halted.
    pub fn failed(&self) {
        self.failures.inc();
    }

    /// Records that the projection's component was reloaded.
    pub fn reloaded(&self) {
        self.reloads.inc();
    }
}
