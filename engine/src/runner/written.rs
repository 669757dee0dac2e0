//! Which rows a projection has written since its tables were empty.
//!
//! During a rebuild from zero, most of a guest's `get-row` calls ask for rows that do not
//! exist yet (the first event of every order), and each would cost a round trip. When the
//! session started with empty tables, a row that was never written cannot exist, so the
//! answer is known without asking. The set is a Bloom filter of fixed size: "never written" is
//! certain, "maybe written" asks the database, so memory stays bounded however long the log.
//!
//! It only answers for reads by a table's primary key, with key values compared as PostgreSQL
//! compares them, and only for schemas without triggers, foreign keys or other unique
//! constraints (which could write or find a row by another way than its primary key).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};

use crate::readmodel::{Tables, canonical, to_text};
use crate::wasm::types::{ColumnValue, Op};

/// Bits of the filter: 1 MiB. At a few hundred thousand rows it still answers most misses.
const BITS: usize = 1 << 23;
/// Hash functions per key.
const HASHES: u64 = 4;

/// The rows written since the tables were empty, or "unknown" when that cannot be told.
pub struct WrittenKeys {
    /// `None` when nothing is known (the session did not start from empty tables, or a write
    /// may have created rows the filter cannot name).
    bits: Option<Vec<u64>>,
    tables: Tables,
    hasher: RandomState,
}

impl WrittenKeys {
    /// Nothing known: every row may exist.
    pub fn unknown() -> Self {
        WrittenKeys { bits: None, tables: Tables::default(), hasher: RandomState::new() }
    }

    /// `tables` are empty: no row exists until one is written. Unknown when the schema has
    /// triggers or constraints that could make rows appear otherwise.
    pub fn empty(tables: &Tables) -> Self {
        if tables.order_sensitive() {
            return WrittenKeys::unknown();
        }
        WrittenKeys { bits: Some(vec![0; BITS / 64]), tables: tables.clone(), hasher: RandomState::new() }
    }

    /// Whether the row of `table` with `key` may exist.
    pub fn may_exist(&self, table: &str, key: &[ColumnValue]) -> bool {
        let Some(bits) = &self.bits else { return true };
        match self.positions(table, key) {
            Some(positions) => positions.iter().all(|bit| bits[bit / 64] & (1 << (bit % 64)) != 0),
            None => true,
        }
    }

    /// Records the rows `ops` write. A raw statement, or a write by another key than the
    /// primary key, makes everything unknown.
    ///
    /// Recording a batch before it commits is safe, and needed when the guest reads while it
    /// commits: a row recorded answers "maybe", and the read waits for the commit and asks the
    /// database; a batch that never commits ends the session, and its filter with it.
    pub fn record(&mut self, ops: &[Op]) {
        for op in ops {
            let positions = match op {
                Op::Upsert(u) => self.positions(&u.table, &u.key),
                Op::Delete(d) => self.positions(&d.table, &d.key),
                Op::Sql(_) => None,
            };
            match (positions, &mut self.bits) {
                (Some(positions), Some(bits)) => {
                    for bit in positions {
                        bits[bit / 64] |= 1 << (bit % 64);
                    }
                }
                _ => {
                    self.bits = None;
                    return;
                }
            }
        }
    }

    /// The filter's bit positions of a row, or `None` when `key` is not the table's primary
    /// key: its columns in name order, values as PostgreSQL compares them.
    fn positions(&self, table: &str, key: &[ColumnValue]) -> Option<Vec<usize>> {
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
        let (a, b) = (hash(0), hash(1) | 1);
        Some((0..HASHES).map(|i| (a.wrapping_add(i.wrapping_mul(b)) % BITS as u64) as usize).collect())
    }
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
        written.record(&[
            Op::Upsert(Upsert { table: "t".into(), key: key(1), columns: vec![] }),
            Op::Delete(Delete { table: "u".into(), key: key(2) }),
        ]);
        assert!(written.may_exist("t", &key(1)));
        assert!(written.may_exist("u", &key(2)));
        assert!(!written.may_exist("u", &key(1)), "same key, other table");
        let text_key = vec![ColumnValue { column: "id".into(), value: Value::Text("01".into()) }];
        assert!(written.may_exist("t", &text_key), "01 is the bigint 1");
        let misses = (3..10_000).filter(|i| written.may_exist("t", &key(*i))).count();
        assert!(misses < 5, "{misses} false positives among 9997 rows never written");
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
}
