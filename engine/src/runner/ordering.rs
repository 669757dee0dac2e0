//! Each stream's events in version order, across batch cuts and the visibility horizon.
//!
//! The log is read in commit order, by transaction id. A transaction that took its id early
//! (by writing elsewhere first) and appended to a stream after a later-numbered transaction
//! did, comes first in the log with the higher version. Appends to one stream take turns (the
//! store's optimistic concurrency locks the stream's row), so the lower version has always
//! committed by the time the higher one does; but in log order it may lie
//!
//! - beyond the batch's cut: the reader extends the batch up to it; or
//! - at or above the visibility horizon, when an older transaction is still open: it cannot be
//!   read yet, so the batch is cut back to end before the stream's first event in it, and
//!   the stream waits for the horizon to pass.
//!
//! Finding such a lower version takes one index lookup per stream. [`Settled`] remembers, for
//! the streams of recent batches, the highest version known to lie at or before a cursor, so
//! that a stream whose batch events continue it without a gap needs no lookup; only the
//! versions below a stream's first one in the batch are looked up otherwise. A stream whose
//! batch events run without a gap from version [`FIRST_VERSION`] needs none either: the
//! store's append numbers a stream's events from 1, so nothing lies below (in a rebuild, new
//! streams were nearly all the lookups: ~156k of ~158k over the bench's 1M-event log).
//! Inside a batch, [`put_streams_in_version_order`] restores version order.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use super::cursor::Cursor;
use crate::wasm::types::Event;

/// Streams remembered per generation; two generations are kept, so memory stays bounded
/// (a few MiB) whatever the number of streams in the log.
const GENERATION: usize = 50_000;

/// The version of a stream's first event: the store's append writes `streams.version + 1`,
/// and `streams.version` starts at 0 (ADR-002).
const FIRST_VERSION: i64 = 1;

/// An event as the reader scanned it: its cursor, and whether the batch's subscription
/// receives it (events it does not receive are scanned too, without their payload, so that
/// gaps in a stream's versions can be told from events filtered out).
#[derive(Debug)]
pub struct Scanned {
    /// Where the event lies in the log.
    pub cursor: Cursor,
    /// Whether the subscription receives it.
    pub wanted: bool,
    /// The event (without data and metadata when not wanted).
    pub event: Event,
}

/// Streams whose versions up to a known one all lie at or before a known cursor.
#[derive(Debug, Default)]
pub struct Settled {
    current: HashMap<String, Mark, RandomState>,
    previous: HashMap<String, Mark, RandomState>,
}

/// Every version of a stream up to `version` lies at or before `bound`.
#[derive(Debug, Clone, Copy)]
struct Mark {
    version: i64,
    bound: Cursor,
}

/// A stream of a batch whose lower versions must be looked up: any version below `below`
/// that lies after the batch's cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The stream.
    pub stream: String,
    /// Versions below this one.
    pub below: i64,
}

/// The versions of each stream of a batch, and whether any stream is out of version order.
pub struct Spans<'a> {
    streams: HashMap<&'a str, Span, RandomState>,
    disordered: bool,
}

/// The versions of one stream in a batch.
struct Span {
    first: i64,
    last: i64,
    count: i64,
}

impl<'a> Spans<'a> {
    /// The versions of each stream among `rows`.
    pub fn of(rows: &'a [Scanned]) -> Self {
        let mut streams: HashMap<&str, Span, RandomState> = HashMap::default();
        let mut disordered = false;
        for row in rows {
            let version = row.event.stream_version;
            streams
                .entry(&row.event.stream_id)
                .and_modify(|s| {
                    disordered |= version < s.last;
                    s.first = s.first.min(version);
                    s.last = s.last.max(version);
                    s.count += 1;
                })
                .or_insert(Span { first: version, last: version, count: 1 });
        }
        Spans { streams, disordered }
    }

    /// Whether some stream's events are not in version order.
    pub fn disordered(&self) -> bool {
        self.disordered
    }
}

impl Settled {
    fn get(&self, stream: &str) -> Option<Mark> {
        self.current.get(stream).or_else(|| self.previous.get(stream)).copied()
    }

    /// The streams of `rows` (a batch read after `from`) whose lower versions may lie after
    /// the batch's cut. A stream is settled when its versions in the batch follow each other
    /// without a gap from [`FIRST_VERSION`] or from one whose predecessor is known to lie at
    /// or before `from`; otherwise the versions below its first one in the batch are looked up,
    /// or, when the batch's versions have a gap, every version below its last.
    pub fn lookups(&self, spans: &Spans<'_>, from: Cursor) -> Vec<Lookup> {
        let mut lookups: Vec<Lookup> = spans
            .streams
            .iter()
            .filter_map(|(&stream, span)| {
                let whole = span.count == span.last - span.first + 1;
                let known = span.first == FIRST_VERSION
                    || self.get(stream).is_some_and(|m| m.version >= span.first - 1 && m.bound <= from);
                match (whole, known) {
                    (true, true) => None,
                    (true, false) => Some(Lookup { stream: stream.to_owned(), below: span.first }),
                    (false, _) => Some(Lookup { stream: stream.to_owned(), below: span.last }),
                }
            })
            .collect();
        lookups.sort_by(|a, b| a.stream.cmp(&b.stream));
        lookups
    }

    /// Remembers that every version of each stream of `rows` up to its last one there lies at
    /// or before `cut` (the batch was checked: nothing lower lies after it).
    pub fn record(&mut self, spans: &Spans<'_>, cut: Cursor) {
        for (&stream, span) in &spans.streams {
            let mark = Mark { version: span.last, bound: cut };
            if let Some(known) = self.current.get_mut(stream) {
                *known = mark;
                continue;
            }
            if self.current.len() >= GENERATION {
                self.previous = std::mem::take(&mut self.current);
            }
            self.current.insert(stream.to_owned(), mark);
        }
    }
}

/// Puts the events of each stream in version order, each stream keeping the slots its events
/// occupy in the batch.
///
/// Inside a batch the engine restores version order; the batch is applied and committed as a
/// whole, so the checkpoint is unaffected.
pub fn put_streams_in_version_order(events: &mut [Event]) {
    let mut last: HashMap<&str, i64> = HashMap::with_capacity(events.len());
    let mut disordered = false;
    for event in events.iter() {
        let previous = last.insert(&event.stream_id, event.stream_version);
        disordered |= previous.is_some_and(|v| v > event.stream_version);
    }
    if !disordered {
        return;
    }
    let mut slots: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, event) in events.iter().enumerate() {
        slots.entry(event.stream_id.clone()).or_default().push(i);
    }
    for indices in slots.into_values().filter(|i| i.len() > 1) {
        let mut stream: Vec<Event> = indices.iter().map(|&i| events[i].clone()).collect();
        stream.sort_by_key(|e| e.stream_version);
        for (slot, event) in indices.into_iter().zip(stream) {
            events[slot] = event;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: i64, stream: &str, version: i64) -> Event {
        Event {
            global_position: position,
            stream_id: stream.into(),
            stream_version: version,
            event_id: String::new(),
            event_type: String::new(),
            data: Vec::new(),
            metadata: Vec::new(),
            timestamp: 0,
        }
    }

    fn scanned(position: i64, stream: &str, version: i64) -> Scanned {
        Scanned { cursor: at(position), wanted: true, event: event(position, stream, version) }
    }

    fn at(position: i64) -> Cursor {
        Cursor { transaction_id: 1, position }
    }

    fn order(events: &[Event]) -> Vec<(&str, i64)> {
        events.iter().map(|e| (e.stream_id.as_str(), e.stream_version)).collect()
    }

    fn lookup(stream: &str, below: i64) -> Lookup {
        Lookup { stream: stream.into(), below }
    }

    #[test]
    fn a_stream_committed_out_of_version_order_is_put_back_in_order() {
        let mut events = vec![event(9, "b", 2), event(3, "a", 1), event(5, "b", 1), event(7, "a", 2), event(8, "b", 3)];
        put_streams_in_version_order(&mut events);
        assert_eq!(order(&events), [("b", 1), ("a", 1), ("b", 2), ("a", 2), ("b", 3)]);
    }

    #[test]
    fn spans_tell_a_disordered_stream() {
        assert!(!Spans::of(&[scanned(1, "a", 1), scanned(2, "b", 1), scanned(3, "a", 2)]).disordered());
        assert!(Spans::of(&[scanned(1, "a", 2), scanned(2, "b", 1), scanned(3, "a", 1)]).disordered());
    }

    #[test]
    fn ordered_batches_are_left_alone() {
        let mut events = vec![event(1, "a", 1), event(2, "b", 1), event(3, "a", 2)];
        put_streams_in_version_order(&mut events);
        assert_eq!(order(&events), [("a", 1), ("b", 1), ("a", 2)]);
    }

    #[test]
    fn unknown_streams_look_up_the_versions_below_their_first() {
        let rows = [scanned(1, "a", 2), scanned(2, "b", 4), scanned(3, "a", 3), scanned(4, "c", 1)];
        assert_eq!(Settled::default().lookups(&Spans::of(&rows), at(0)), [lookup("a", 2), lookup("b", 4)]);
    }

    #[test]
    fn a_stream_from_its_first_version_needs_no_lookup_unless_it_has_a_gap() {
        let rows = [scanned(1, "a", 1), scanned(2, "a", 2), scanned(3, "b", 1), scanned(4, "b", 3)];
        assert_eq!(Settled::default().lookups(&Spans::of(&rows), at(0)), [lookup("b", 3)]);
    }

    #[test]
    fn a_gap_in_the_batch_looks_up_everything_below_the_last_version() {
        let mut settled = Settled::default();
        settled.record(&Spans::of(&[scanned(1, "a", 1)]), at(1));
        let rows = [scanned(2, "a", 2), scanned(3, "a", 4)];
        assert_eq!(settled.lookups(&Spans::of(&rows), at(1)), [lookup("a", 4)]);
    }

    #[test]
    fn a_stream_continuing_a_settled_one_needs_no_lookup() {
        let mut settled = Settled::default();
        settled.record(&Spans::of(&[scanned(1, "a", 1), scanned(2, "a", 2)]), at(2));
        assert_eq!(settled.lookups(&Spans::of(&[scanned(3, "a", 3), scanned(4, "a", 4)]), at(2)), []);
        // Not when the batch starts before the mark's bound (another reader's batch), nor
        // when a version is missing between the mark and the batch.
        assert_eq!(settled.lookups(&Spans::of(&[scanned(3, "a", 3)]), at(1)), [lookup("a", 3)]);
        assert_eq!(settled.lookups(&Spans::of(&[scanned(3, "a", 4)]), at(2)), [lookup("a", 4)]);
    }

    #[test]
    fn memory_is_bounded_to_two_generations() {
        let mut settled = Settled::default();
        for batch in 0..3 {
            let rows: Vec<Scanned> = (0..GENERATION as i64).map(|i| scanned(i, &format!("s{batch}-{i}"), 1)).collect();
            settled.record(&Spans::of(&rows), at(batch));
        }
        assert!(settled.current.len() + settled.previous.len() <= 2 * GENERATION);
        assert!(settled.get("s2-0").is_some(), "the latest batch's streams are remembered");
        assert!(settled.get("s0-0").is_none(), "the oldest are forgotten");
    }
}
