//! Rows of read-model tables and their keys.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use foldhash::fast::FixedState;

use crate::value::FromValue;
use crate::{Error, Value, bytes};

/// A row of a table: columns and their values, in the order they were set.
///
/// Equality ignores the order of the columns.
#[derive(Debug, Clone, Default)]
pub struct Row {
    columns: Vec<(String, Value)>,
}

impl Row {
    /// A row with no columns.
    pub fn new() -> Row {
        Row::default()
    }

    /// The row with `column` set to `value`.
    pub fn with(mut self, column: &str, value: impl Into<Value>) -> Row {
        self.set(column, value);
        self
    }

    /// Sets `column` to `value`.
    pub fn set(&mut self, column: &str, value: impl Into<Value>) -> &mut Row {
        let value = value.into();
        match self.columns.iter_mut().find(|(name, _)| bytes::equal(name, column)) {
            Some((_, slot)) => *slot = value,
            None => self.columns.push((column.to_owned(), value)),
        }
        self
    }

    /// The value of `column` as a `T`: an error names the column when the row has no such
    /// column or its value does not convert (a `NULL` reads only as an `Option`).
    pub fn get<T: FromValue>(&self, column: &str) -> Result<T, Error> {
        let value = self.value(column).ok_or_else(|| Error::MissingColumn {
            column: column.to_owned(),
            present: self.columns.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(", "),
        })?;
        T::from_value(value).map_err(|source| Error::Column { column: column.to_owned(), source: Box::new(source) })
    }

    /// The value of `column`, if the row has it.
    pub fn value(&self, column: &str) -> Option<&Value> {
        self.columns.iter().find(|(name, _)| bytes::equal(name, column)).map(|(_, value)| value)
    }

    /// The columns and their values.
    pub fn columns(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.columns.iter().map(|(name, value)| (name.as_str(), value))
    }

    pub(crate) fn into_columns(self) -> Vec<(String, Value)> {
        self.columns
    }

    /// Removes `column`, returning its value.
    pub fn remove(&mut self, column: &str) -> Option<Value> {
        let index = self.columns.iter().position(|(name, _)| bytes::equal(name, column))?;
        Some(self.columns.remove(index).1)
    }
}

impl PartialEq for Row {
    fn eq(&self, other: &Row) -> bool {
        self.columns.len() == other.columns.len()
            && self.columns().all(|(name, value)| other.value(name) == Some(value))
    }
}

impl FromIterator<(String, Value)> for Row {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(columns: I) -> Row {
        let mut row = Row::new();
        for (column, value) in columns {
            row.set(&column, value);
        }
        row
    }
}

/// The key of a row: the values of its primary-key columns.
///
/// Built from a `(column, value)` pair (`("order_id", id)`) or with [`Key::new`] and
/// [`Key::and`] for a key of several columns. Columns are kept sorted by name, so the order
/// they are given in does not matter.
///
/// Keys are shared, not copied: a clone is a reference count (the SDK keeps each written row's
/// key in its cache, its list of pending writes and the batch's operations). A key is hashed
/// once, when it is made: the SDK looks a row up several times per event.
#[derive(Debug, Clone, Eq, PartialOrd, Ord)]
pub struct Key {
    columns: Arc<[(String, Value)]>,
    /// The hash of `columns`, with a fixed seed.
    hash: u64,
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        Arc::ptr_eq(&self.columns, &other.columns)
            || (self.hash == other.hash
                && self.columns.len() == other.columns.len()
                && self.columns().zip(other.columns()).all(|((a, x), (b, y))| bytes::equal(a, b) && x == y))
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Key {
    fn from_columns(columns: Arc<[(String, Value)]>) -> Key {
        let hash = FixedState::with_seed(0).hash_one(&*columns);
        Key { columns, hash }
    }

    /// A key of one column.
    pub fn new(column: &str, value: impl Into<Value>) -> Key {
        Key::from_columns(Arc::new([(column.to_owned(), value.into())]))
    }

    /// This key with one more column.
    pub fn and(self, column: &str, value: impl Into<Value>) -> Key {
        let mut columns = self.columns.to_vec();
        let at = columns.partition_point(|(name, _)| name.as_str() < column);
        columns.insert(at, (column.to_owned(), value.into()));
        Key::from_columns(columns.into())
    }

    /// The key's columns and values, sorted by column name.
    pub fn columns(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.columns.iter().map(|(name, value)| (name.as_str(), value))
    }

    /// Whether `column` is one of the key's columns.
    pub fn contains(&self, column: &str) -> bool {
        self.columns.iter().any(|(name, _)| bytes::equal(name, column))
    }

    /// A row holding just the key's columns.
    pub(crate) fn to_row(&self) -> Row {
        self.columns.iter().cloned().collect()
    }
}

impl<V: Into<Value>> From<(&str, V)> for Key {
    fn from((column, value): (&str, V)) -> Key {
        Key::new(column, value)
    }
}

impl fmt::Display for Key {
    /// `order_id=Uuid("…")`, comma-separated for several columns.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (column, value)) in self.columns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{column}={value:?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_get_typed_values_and_name_what_is_wrong() {
        let row = Row::new().with("orders", 2).with("note", Option::<String>::None);
        assert_eq!(row.get::<i64>("orders").unwrap(), 2);
        assert_eq!(row.get::<Option<String>>("note").unwrap(), None);
        assert_eq!(
            row.get::<i64>("revenue").unwrap_err().to_string(),
            "the row has no column `revenue` (it has orders, note)"
        );
        assert_eq!(
            row.get::<String>("orders").unwrap_err().to_string(),
            "column `orders`: expected text, found Int(2)"
        );
        assert_eq!(row, Row::new().with("note", Value::Null).with("orders", 2));
    }

    #[test]
    fn key_columns_are_sorted_by_name() {
        let a = Key::new("product_id", "p1").and("order_id", 7);
        let b = Key::new("order_id", 7).and("product_id", "p1");
        assert_eq!(a, b);
        assert_eq!(a.to_string(), r#"order_id=Int(7), product_id=Text("p1")"#);
    }

    #[test]
    fn keys_equal_by_value_find_each_other() {
        let mut rows = std::collections::HashMap::new();
        rows.insert(Key::new("amount", Value::Numeric("1.5".into())).and("id", 1), "found");
        let same = Key::new("id", 1).and("amount", Value::Numeric("1.50".into()));
        assert_eq!(rows.get(&same), Some(&"found"));
        assert_eq!(rows.get(&Key::new("id", 1).and("amount", Value::Numeric("1.51".into()))), None);
        assert_eq!(rows.get(&Key::new("id", 1)), None);
    }
}
