//! A position in the log as the engine reads it: committing transaction, then global position.

use std::fmt;

/// Where a projection stands in the log: every event ordered at or before this cursor has been
/// applied (or skipped by its subscription), none after it.
///
/// The log is read in `(transaction_id, global_position)` order and only below the
/// visibility horizon (`pg_snapshot_xmin(pg_current_snapshot())`): a transaction id below the
/// horizon belongs to a transaction that has finished, so no event can appear later before a
/// cursor the engine has passed. Ordering by `global_position` alone would skip events whose
/// BIGSERIAL was taken by a transaction that committed after a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cursor {
    /// `events.transaction_id` (an `xid8`) of the last event passed.
    pub transaction_id: i64,
    /// `events.global_position` of the last event passed.
    pub position: i64,
}

impl Cursor {
    /// The cursor before the first event.
    pub const START: Cursor = Cursor { transaction_id: 0, position: 0 };
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (tx {})", self.position, self.transaction_id)
    }
}
