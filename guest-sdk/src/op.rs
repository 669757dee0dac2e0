//! The write operations a batch returns to the host.

use crate::{Error, Key, Row, Value};

/// How an upsert combines a column's new value with the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Merge {
    /// Store the new value (on insert and on update).
    Set,
    /// Store `COALESCE(old, 0) + new` (on insert: `new`). For numeric columns.
    Add,
    /// Keep the stored value when it is not `NULL`; otherwise store the new one.
    KeepIfPresent,
}

/// A column of an upsert with its merge rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnUpdate {
    /// The column.
    pub column: String,
    /// The new value.
    pub value: Value,
    /// How it combines with the stored value.
    pub merge: Merge,
}

/// One write to the read model, as the host receives it. (The contract's parametrized SQL
/// statement is not produced by the SDK; later versions may add kinds of operation.)
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Insert the row with `key`, or update it, column by column.
    Upsert {
        /// The table.
        table: String,
        /// The row's key.
        key: Key,
        /// The columns written, with their merge rules.
        columns: Vec<ColumnUpdate>,
    },
    /// Delete the row with `key`, if there is one.
    Delete {
        /// The table.
        table: String,
        /// The row's key.
        key: Key,
    },
}

impl Op {
    /// The table the operation writes.
    pub fn table(&self) -> &str {
        match self {
            Op::Upsert { table, .. } | Op::Delete { table, .. } => table,
        }
    }
}

impl ColumnUpdate {
    /// The update as the parts [`upsert_row`] takes.
    pub(crate) fn parts(&self) -> (&str, &Value, Merge) {
        (&self.column, &self.value, self.merge)
    }
}

/// The row after an upsert of `columns` (name, value, merge rule) onto `stored` (`None`: the
/// row is inserted, holding the key's columns and the written ones). This is what the host
/// does in SQL; the SDK applies it to its cached rows and the testing harness to its tables.
pub(crate) fn upsert_row<'a>(
    stored: Option<Row>,
    key: &Key,
    columns: impl IntoIterator<Item = (&'a str, &'a Value, Merge)>,
) -> Result<Row, Error> {
    let inserted = stored.is_none();
    let mut row = stored.unwrap_or_else(|| key.to_row());
    for (column, value, merge) in columns {
        let new = match (merge, if inserted { None } else { row.value(column) }) {
            (Merge::Set, _) | (_, None) => value.clone(),
            (Merge::Add, Some(old)) => old.checked_add(value)?,
            (Merge::KeepIfPresent, Some(Value::Null)) => value.clone(),
            (Merge::KeepIfPresent, Some(old)) => old.clone(),
        };
        row.set(column, new);
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(column: &str, value: impl Into<Value>, merge: Merge) -> ColumnUpdate {
        ColumnUpdate { column: column.into(), value: value.into(), merge }
    }

    #[test]
    fn upserts_merge_like_the_host() {
        let key = Key::new("day", 1);
        let columns = [
            update("orders", 1, Merge::Add),
            update("first", "a", Merge::KeepIfPresent),
            update("last", "a", Merge::Set),
        ];
        let inserted = upsert_row(None, &key, columns.iter().map(ColumnUpdate::parts)).unwrap();
        assert_eq!(inserted, Row::new().with("day", 1).with("orders", 1).with("first", "a").with("last", "a"));
        let columns = [
            update("orders", 2, Merge::Add),
            update("first", "b", Merge::KeepIfPresent),
            update("last", "b", Merge::Set),
        ];
        let updated = upsert_row(Some(inserted), &key, columns.iter().map(ColumnUpdate::parts)).unwrap();
        assert_eq!(updated, Row::new().with("day", 1).with("orders", 3).with("first", "a").with("last", "b"));
    }
}
