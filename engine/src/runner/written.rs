//! Which rows a projection has written since its tables were empty.
//!
//! During a rebuild from zero, most of a guest's `get-row` calls ask for rows that do not
//! exist yet (the first event of every order), and each would cost a round trip. When the
//! session started with empty tables, a row that was never written cannot exist, so the
//! answer is known without asking. The set is a Bloom filter of fixed size: "never written" is
//! certain, "maybe written" asks the database, so memory stays bounded however long the log.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};

use crate::readmodel::to_text;
use crate::wasm::types::{ColumnValue, Op};

/// Bits of the filter: 1 MiB. At a few hundred thousand rows it still answers most misses.
const BITS: usize = 1 << 23;
/// Hash functions per key.
const HASHES: u64 = 4;

/// The rows written since the tables were empty, or "unknown" when that cannot be told.
pub struct WrittenKeys {
    /// `None` when nothing is known (the session did not start from empty tables, or a raw SQL
    /// statement may have written anything).
    bits: Option<Vec<u64>>,
    hasher: RandomState,
}

impl WrittenKeys {
    /// Nothing known: every row may exist.
    pub fn unknown() -> Self {
        WrittenKeys {
            bits: None,
            hasher: RandomState::new(),
        }
    }

    /// The tables are empty: no row exists until one is written.
    pub fn empty() -> Self {
        WrittenKeys {
            bits: Some(vec![0; BITS / 64]),
            hasher: RandomState::new(),
        }
    }

    /// Whether the row of `table` with `key` may exist.
    pub fn may_exist(&self, table: &str, key: &[ColumnValue]) -> bool {
        let Some(bits) = &self.bits else { return true };
        self.positions(table, key)
            .all(|bit| bits[bit / 64] & (1 << (bit % 64)) != 0)
    }

    /// Records the rows `ops` write; a raw statement makes everything unknown.
    pub fn record(&mut self, ops: &[Op]) {
        for op in ops {
            let (table, key) = match op {
                Op::Upsert(u) => (&u.table, &u.key),
                Op::Delete(d) => (&d.table, &d.key),
                Op::Sql(_) => {
                    self.bits = None;
                    return;
                }
            };
            let positions: Vec<usize> = self.positions(table, key).collect();
            if let Some(bits) = &mut self.bits {
                for bit in positions {
                    bits[bit / 64] |= 1 << (bit % 64);
                }
            }
        }
    }

    /// The filter's bit positions of a row: the key's columns in name order, values as text.
    fn positions(&self, table: &str, key: &[ColumnValue]) -> impl Iterator<Item = usize> {
        let mut columns: Vec<(&str, Option<String>)> = key
            .iter()
            .map(|c| (c.column.as_str(), to_text(&c.value).ok().flatten()))
            .collect();
        columns.sort();
        let hash = |seed: u64| {
            let mut h = self.hasher.build_hasher();
            seed.hash(&mut h);
            table.hash(&mut h);
            columns.hash(&mut h);
            h.finish()
        };
        let (a, b) = (hash(0), hash(1) | 1);
        (0..HASHES).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) % BITS as u64) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::types::{Delete, Statement, Upsert, Value};

    fn key(id: i64) -> Vec<ColumnValue> {
        vec![ColumnValue {
            column: "id".into(),
            value: Value::Int(id),
        }]
    }

    #[test]
    fn only_written_rows_may_exist_until_raw_sql_runs() {
        let mut written = WrittenKeys::empty();
        assert!(!written.may_exist("t", &key(1)));
        written.record(&[
            Op::Upsert(Upsert {
                table: "t".into(),
                key: key(1),
                columns: vec![],
            }),
            Op::Delete(Delete {
                table: "u".into(),
                key: key(2),
            }),
        ]);
        assert!(written.may_exist("t", &key(1)));
        assert!(written.may_exist("u", &key(2)));
        assert!(!written.may_exist("u", &key(1)), "same key, other table");
        let misses = (3..10_000)
            .filter(|i| written.may_exist("t", &key(*i)))
            .count();
        assert!(
            misses < 5,
            "{misses} false positives among 9997 rows never written"
        );
        written.record(&[Op::Sql(Statement {
            sql: "INSERT INTO t VALUES (5)".into(),
            params: vec![],
        })]);
        assert!(written.may_exist("t", &key(5)));
        assert!(WrittenKeys::unknown().may_exist("t", &key(1)));
    }
}
