//! Which rows a projection has written: since its tables were empty, and in the batches that
//! may not have committed yet.
//!
//! During a rebuild from zero, most of a guest's `get-row` calls ask for rows that do not
//! exist yet (the first event of every order), and each would cost a round trip. When the
//! session started with empty tables, a row that was never written cannot exist, so the
//! answer is known without asking. The set is a Bloom filter of fixed size: "never written" is
//! certain, "maybe written" asks the database, so memory stays bounded however long the log.
//!
//! A read that asks the database must see the batches before the guest's current one, some
//! of which may still be committing: it waits for them only when one of them writes the row
//! (or writes rows it cannot name), see [`WrittenKeys::in_flight`].
//!
//! It only answers for reads by a table's primary key, with key values compared as PostgreSQL
//! compares them, and only for schemas without triggers, foreign keys or other unique
//! constraints (which could write or find a row by another way than its primary key).

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};

use crate::readmodel::{Tables, canonical, to_text};
use crate::wasm::types::{ColumnValue, Op};

/// Bits of the filter: 1 MiB. At a few hundred thousand rows it still answers most misses.
const BITS: usize = 1 << 23;
/// Hash functions per key.
const HASHES: u64 = 4;

/// The rows written since the tables were empty, or "unknown" when that cannot be told; and
/// the rows of the batches recorded that may not have committed yet.
pub struct WrittenKeys {
    /// `None` when nothing is known (the session did not start from empty tables, or a write
    /// may have created rows the filter cannot name).
    bits: Option<Vec<u64>>,
    tables: Tables,
    /// Hashes rows (foldhash: SipHash was ~2% of a write-heavy rebuild's engine CPU).
    hasher: foldhash::quality::RandomState,
    /// Batches recorded, by number (the first recorded is 1), with the rows they write (`None`:
    /// rows that cannot be named), until they are known to have committed.
    in_flight: VecDeque<(u64, Option<HashSet<u64>>)>,
    /// Batches recorded so far.
    recorded: u64,
}

impl WrittenKeys {
    /// Nothing known: every row may exist, and a batch in flight may write any.
    pub fn unknown() -> Self {
        WrittenKeys::with(Tables::default(), None)
    }

    /// Rows of `tables` may exist: only the rows of the batches in flight are known.
    pub fn existing(tables: &Tables) -> Self {
        WrittenKeys::with(tables.clone(), None)
    }

    /// `tables` are empty: no row exists until one is written. Unknown when the schema has
    /// triggers or constraints that could make rows appear otherwise.
    pub fn empty(tables: &Tables) -> Self {
        if tables.order_sensitive() {
            return WrittenKeys::unknown();
        }
        WrittenKeys::with(tables.clone(), Some(vec![0; BITS / 64]))
    }

    fn with(tables: Tables, bits: Option<Vec<u64>>) -> Self {
        WrittenKeys {
            bits,
            tables,
            hasher: foldhash::quality::RandomState::default(),
            in_flight: VecDeque::new(),
            recorded: 0,
        }
    }

    /// Whether the row of `table` with `key` may exist.
    pub fn may_exist(&self, table: &str, key: &[ColumnValue]) -> bool {
        let Some(bits) = &self.bits else { return true };
        match self.identity(table, key) {
            Some(identity) => positions(identity).all(|bit| bits[bit / 64] & (1 << (bit % 64)) != 0),
            None => true,
        }
    }

    /// Records the rows `ops` write, as the next batch in flight, and tells for each operation
    /// whether it is an upsert of a row that cannot exist before it (never written, nor by an
    /// operation before it in `ops`). A raw statement, or a write by another key than the
    /// primary key, makes every row possible (and every row possibly written by this batch).
    ///
    /// The worker records each batch it hands to its writer, in order, before it hands it over,
    /// so that batch `n` recorded is batch `n` committed. Recording a batch before it commits
    /// is safe, and needed when the guest reads while it commits: a row recorded answers
    /// "maybe", and the read waits for the commit and asks the database; a batch that never
    /// commits ends the session, and these keys with it.
    pub fn record(&mut self, ops: &[Op]) -> Vec<bool> {
        self.recorded += 1;
        let mut new = vec![false; ops.len()];
        let mut rows = (!self.tables.order_sensitive()).then(HashSet::new);
        for (op, new) in ops.iter().zip(&mut new) {
            let identity = match op {
                Op::Upsert(u) => self.identity(&u.table, &u.key),
                Op::Delete(d) => self.identity(&d.table, &d.key),
                Op::Sql(_) => None,
            };
            let Some(identity) = identity else {
                self.bits = None;
                rows = None;
                break;
            };
            if let Some(bits) = &mut self.bits {
                let mut absent = false;
                for bit in positions(identity) {
                    absent |= bits[bit / 64] & (1 << (bit % 64)) == 0;
                    bits[bit / 64] |= 1 << (bit % 64);
                }
                *new = absent && matches!(op, Op::Upsert(_));
            }
            if let Some(rows) = &mut rows {
                rows.insert(identity.0);
            }
        }
        self.in_flight.push_back((self.recorded, rows));
        new
    }

    /// Whether a batch recorded after the first `committed` may write the row of `table` with
    /// `key`: a read of it must wait for them to commit; a read of any other row may ask the
    /// database at once, whose state these batches do not change.
    pub fn in_flight(&mut self, table: &str, key: &[ColumnValue], committed: u64) -> bool {
        while self.in_flight.front().is_some_and(|(batch, _)| *batch <= committed) {
            self.in_flight.pop_front();
        }
        if self.in_flight.is_empty() {
            return false;
        }
        match self.identity(table, key) {
            Some((row, _)) => {
                self.in_flight.iter().any(|(_, rows)| rows.as_ref().is_none_or(|rows| rows.contains(&row)))
            }
            None => true,
        }
    }

    /// Two hashes of a row, or `None` when `key` is not the table's primary key: its columns in
    /// name order, values as PostgreSQL compares them.
    fn identity(&self, table: &str, key: &[ColumnValue]) -> Option<(u64, u64)> {
        let mut columns: Vec<(&str, Option<String>)> = key
            .iter()
            .map(|c| {
                let ty = self.tables.column_type(table, &c.column).unwrap_or("text");
                (c.column.as_str(), canonical(ty, &to_text(&c.value).ok().flatten()))
            })
            .collect();
        columns.sort();
        let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        if !self.tables.is_primary_key(table, &names) {
            return None;
        }
        let hash = |seed: u64| {
            let mut h = self.hasher.build_hasher();
            seed.hash(&mut h);
            table.hash(&mut h);
            columns.hash(&mut h);
            h.finish()
        };
        Some((hash(0), hash(1) | 1))
    }
}

/// The filter's bit positions of a row of `identity`.
fn positions((a, b): (u64, u64)) -> impl Iterator<Item = usize> {
    (0..HASHES).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) % BITS as u64) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::types::{Delete, Statement, Upsert, Value};

    fn tables() -> Tables {
        Tables::from_columns(
            "p",
            [("t", vec!["id"], vec![("id", "bigint")]), ("u", vec!["id"], vec![("id", "bigint")])],
        )
    }

    fn key(id: i64) -> Vec<ColumnValue> {
        vec![ColumnValue { column: "id".into(), value: Value::Int(id) }]
    }

    #[test]
    fn only_written_rows_may_exist_until_raw_sql_runs() {
        let mut written = WrittenKeys::empty(&tables());
        assert!(!written.may_exist("t", &key(1)));
        let new = written.record(&[
            Op::Upsert(Upsert { table: "t".into(), key: key(1), columns: vec![] }),
            Op::Delete(Delete { table: "u".into(), key: key(2) }),
        ]);
        assert_eq!(new, [true, false], "an upsert of a row never written; a delete is never an insert");
        assert!(written.may_exist("t", &key(1)));
        assert!(written.may_exist("u", &key(2)));
        assert!(!written.may_exist("u", &key(1)), "same key, other table");
        let text_key = vec![ColumnValue { column: "id".into(), value: Value::Text("01".into()) }];
        assert!(written.may_exist("t", &text_key), "01 is the bigint 1");
        let misses = (3..10_000).filter(|i| written.may_exist("t", &key(*i))).count();
        assert!(misses < 5, "{misses} false positives among 9997 rows never written");
        let upsert = |table: &str, id| Op::Upsert(Upsert { table: table.into(), key: key(id), columns: vec![] });
        let new = written.record(&[upsert("t", 1), upsert("t", 3), upsert("t", 3), upsert("u", 3)]);
        assert_eq!(new, [false, true, false, true], "written before, new, its second write, other table");
        written.record(&[Op::Sql(Statement { sql: "INSERT INTO t VALUES (5)".into(), params: vec![] })]);
        assert!(written.may_exist("t", &key(5)));
        assert!(WrittenKeys::unknown().may_exist("t", &key(1)));
    }

    #[test]
    fn answers_only_for_primary_keys() {
        let mut written = WrittenKeys::empty(&tables());
        let by_name = vec![ColumnValue { column: "name".into(), value: Value::Text("x".into()) }];
        assert!(written.may_exist("t", &by_name), "not the primary key: the database must be asked");
        written.record(&[Op::Upsert(Upsert { table: "t".into(), key: by_name, columns: vec![] })]);
        assert!(written.may_exist("t", &key(1)), "a write by another key makes every row possible");
    }

    #[test]
    fn a_row_is_in_flight_while_a_batch_that_writes_it_may_not_have_committed() {
        let mut written = WrittenKeys::existing(&tables());
        assert!(written.may_exist("t", &key(1)), "the tables were not empty");
        written.record(&[Op::Upsert(Upsert { table: "t".into(), key: key(1), columns: vec![] })]);
        written.record(&[Op::Delete(Delete { table: "u".into(), key: key(2) })]);
        assert!(written.in_flight("t", &key(1), 0));
        assert!(!written.in_flight("t", &key(2), 0), "no batch writes it: the database's row is the one to read");
        assert!(!written.in_flight("t", &key(1), 1), "batch 1 committed");
        assert!(written.in_flight("u", &key(2), 1));
        let by_name = vec![ColumnValue { column: "name".into(), value: Value::Text("x".into()) }];
        assert!(written.in_flight("t", &by_name, 1), "not the primary key: any row may be the one written");
        assert!(!written.in_flight("u", &key(2), 2), "every batch committed");
        written.record(&[Op::Sql(Statement { sql: "DELETE FROM t".into(), params: vec![] })]);
        assert!(written.in_flight("t", &key(7), 2), "a raw statement may write any row");
        written.record(&[]);
        assert!(!written.in_flight("t", &key(7), 3));
        assert!(WrittenKeys::unknown().may_exist("t", &key(1)));
    }
}
