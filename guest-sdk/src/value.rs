//! Typed column values, and conversions between them and Rust types.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::decimal::{Decimal, TEXT_LEN};
use crate::{Cents, Date, Error, Timestamp, Uuid, bytes};

/// A value of a read-model column, as it crosses the component boundary.
///
/// Values are always sent to the database as parameters, never as SQL text. Most code uses
/// the typed helpers instead ([`Cents`], [`Timestamp`], [`Date`], [`Uuid`], [`Json`] and
/// plain Rust numbers, strings and `bool`s), which convert with `Into<Value>` and
/// [`FromValue`]. See the [crate docs](crate#types) for the PostgreSQL types each one maps to.
///
/// Equality, hashing and ordering compare `Numeric` values by value (`1.5 == 1.50`) and
/// `Float` values bit for bit, so that values can be parts of keys.
///
/// Later versions of the contract may add kinds, hence `#[non_exhaustive]`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// `boolean`.
    Bool(bool),
    /// `smallint`, `integer` or `bigint`.
    Int(i64),
    /// `numeric`, as an exact decimal string such as `"-12.30"`.
    Numeric(String),
    /// `real` or `double precision`.
    Float(f64),
    /// `text` or `varchar`.
    Text(String),
    /// `json` or `jsonb`, as JSON text.
    Json(String),
    /// `uuid`, hyphenated.
    Uuid(String),
    /// `timestamptz`, in microseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
    /// `date`, in days since 1970-01-01.
    Date(i32),
}

impl Value {
    /// `value` serialized as JSON, for a `json` or `jsonb` column.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Value, Error> {
        serde_json::to_string(value)
            .map(Value::Json)
            .map_err(|error| Error::Value(format!("cannot serialize a JSON column value: {error}")))
    }

    /// The name of the value's kind, for messages: `null`, `int`, `numeric`, …
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Numeric(_) => "numeric",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Json(_) => "json",
            Value::Uuid(_) => "uuid",
            Value::Timestamp(_) => "timestamp",
            Value::Date(_) => "date",
        }
    }

    /// `self + other` as PostgreSQL computes `COALESCE(old, 0) + new` for the `add` merge:
    /// a `NULL` on the left counts as zero.
    pub(crate) fn checked_add(&self, other: &Value) -> Result<Value, Error> {
        let overflow = || Error::Value(format!("{self:?} + {other:?} overflows"));
        match (self, other) {
            (Value::Null, new) => Ok(new.clone()),
            (_, Value::Null) => Ok(Value::Null),
            (Value::Int(a), Value::Int(b)) => a.checked_add(*b).map(Value::Int).ok_or_else(overflow),
            (Value::Float(a), Value::Float(b)) => Ok(Value::Float(a + b)),
            (Value::Numeric(_) | Value::Int(_), Value::Numeric(_) | Value::Int(_)) => {
                let (a, b) = (self.decimal()?, other.decimal()?);
                a.checked_add(b).map(|sum| Value::Numeric(sum.to_string())).ok_or_else(overflow)
            }
            _ => Err(Error::Value(format!("cannot add a {} to a {}", other.kind(), self.kind()))),
        }
    }

    fn decimal(&self) -> Result<Decimal, Error> {
        match self {
            Value::Int(int) => Ok(Decimal::new(i128::from(*int), 0)),
            Value::Numeric(text) => {
                Decimal::parse(text).ok_or_else(|| Error::Value(format!("`{text}` is not a decimal number")))
            }
            other => Err(Error::Value(format!("expected a number, found a {}", other.kind()))),
        }
    }

    /// Position of the variant, to order values of different kinds.
    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) => 2,
            Value::Numeric(_) => 3,
            Value::Float(_) => 4,
            Value::Text(_) => 5,
            Value::Json(_) => 6,
            Value::Uuid(_) => 7,
            Value::Timestamp(_) => 8,
            Value::Date(_) => 9,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            // The common key kinds without a comparison of their order.
            (Value::Text(a), Value::Text(b)) | (Value::Json(a), Value::Json(b)) | (Value::Uuid(a), Value::Uuid(b)) => {
                bytes::equal(a, b)
            }
            (Value::Int(a), Value::Int(b)) => a == b,
            _ => self.cmp(other) == Ordering::Equal,
        }
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Numeric(a), Value::Numeric(b)) => match (Decimal::parse(a), Decimal::parse(b)) {
                (Some(x), Some(y)) => x.cmp_value(y),
                _ => a.cmp(b),
            },
            (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
            (Value::Text(a), Value::Text(b)) | (Value::Json(a), Value::Json(b)) | (Value::Uuid(a), Value::Uuid(b)) => {
                a.cmp(b)
            }
            (Value::Timestamp(a), Value::Timestamp(b)) => a.cmp(b),
            (Value::Date(a), Value::Date(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rank().hash(state);
        match self {
            Value::Null => {}
            Value::Bool(b) => b.hash(state),
            Value::Int(i) => i.hash(state),
            Value::Numeric(text) => match Decimal::parse(text) {
                Some(decimal) => decimal.canonical().hash(state),
                None => text.hash(state),
            },
            Value::Float(f) => f.to_bits().hash(state),
            Value::Text(s) | Value::Json(s) | Value::Uuid(s) => s.hash(state),
            Value::Timestamp(t) => t.hash(state),
            Value::Date(d) => d.hash(state),
        }
    }
}

/// A Rust type read from a column [`Value`]; see [`Row::get`](crate::Row::get).
pub trait FromValue: Sized {
    /// Converts `value`; an error says what was expected and what was found.
    fn from_value(value: &Value) -> Result<Self, Error>;
}

fn mismatch<T>(expected: &str, found: &Value) -> Result<T, Error> {
    Err(Error::Value(format!("expected {expected}, found {found:?}")))
}

macro_rules! int_value {
    ($($int:ty),*) => {$(
        impl From<$int> for Value {
            fn from(value: $int) -> Value {
                Value::Int(i64::from(value))
            }
        }

        impl FromValue for $int {
            fn from_value(value: &Value) -> Result<Self, Error> {
                match value {
                    Value::Int(int) => <$int>::try_from(*int)
                        .map_err(|_| Error::Value(format!("{int} does not fit in {}", stringify!($int)))),
                    other => mismatch("int", other),
                }
            }
        }
    )*};
}

int_value!(i16, i32, i64, u8, u16, u32);

impl From<bool> for Value {
    fn from(value: bool) -> Value {
        Value::Bool(value)
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Bool(b) => Ok(*b),
            other => mismatch("bool", other),
        }
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Value {
        Value::Float(value)
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Float(f) => Ok(*f),
            other => mismatch("float", other),
        }
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Value {
        Value::Text(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Value {
        Value::Text(value)
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Text(text) => Ok(text.clone()),
            other => mismatch("text", other),
        }
    }
}

impl From<Cents> for Value {
    fn from(value: Cents) -> Value {
        Value::Numeric(value.write(&mut [0; TEXT_LEN]).to_owned())
    }
}

impl FromValue for Cents {
    fn from_value(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Numeric(text) => text.parse(),
            Value::Int(int) => int
                .checked_mul(100)
                .map(Cents::new)
                .ok_or_else(|| Error::Value(format!("{int} is too large for cents"))),
            other => mismatch("numeric", other),
        }
    }
}

impl From<Uuid> for Value {
    fn from(value: Uuid) -> Value {
        Value::Uuid(value.to_string())
    }
}

impl FromValue for Uuid {
    fn from_value(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Uuid(text) => text.parse(),
            other => mismatch("uuid", other),
        }
    }
}

impl From<Timestamp> for Value {
    fn from(value: Timestamp) -> Value {
        Value::Timestamp(value.micros())
    }
}

impl FromValue for Timestamp {
    fn from_value(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Timestamp(micros) => Ok(Timestamp::from_micros(*micros)),
            other => mismatch("timestamp", other),
        }
    }
}

impl From<Date> for Value {
    fn from(value: Date) -> Value {
        Value::Date(value.days())
    }
}

impl FromValue for Date {
    fn from_value(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Date(days) => Ok(Date::from_days(*days)),
            other => mismatch("date", other),
        }
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Value {
        value.map_or(Value::Null, Into::into)
    }
}

/// `NULL` reads as `None`.
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self, Error> {
        Ok(value.clone())
    }
}

/// A `json`/`jsonb` column read into a Rust type with serde: `row.get::<Json<Lines>>("lines")`.
/// To write one, use [`Value::json`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromValue for Json<T> {
    fn from_value(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Json(text) => serde_json::from_str(text).map(Json).map_err(|error| {
                Error::Value(format!("JSON column does not match {}: {error}", crate::event::short_type_name::<T>()))
            }),
            other => mismatch("json", other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_values_compare_and_hash_by_value() {
        use std::collections::hash_map::DefaultHasher;
        let hash = |v: &Value| {
            let mut h = DefaultHasher::new();
            v.hash(&mut h);
            h.finish()
        };
        let a = Value::Numeric("1.50".into());
        let b = Value::Numeric("1.5".into());
        assert_eq!(a, b);
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(a, Value::Numeric("1.51".into()));
        assert_ne!(Value::Int(1), Value::Numeric("1".into()));
    }

    #[test]
    fn add_follows_the_hosts_coalesce_rule() {
        let add = |a: Value, b: Value| a.checked_add(&b).unwrap();
        assert_eq!(add(Value::Null, Value::Int(2)), Value::Int(2));
        assert_eq!(add(Value::Int(2), Value::Int(-3)), Value::Int(-1));
        assert_eq!(add(Value::Numeric("0.10".into()), Value::Numeric("0.2".into())), Value::Numeric("0.3".into()));
        assert_eq!(add(Value::Numeric("10.00".into()), Value::Int(1)), Value::Numeric("11.00".into()));
        assert!(Value::Int(i64::MAX).checked_add(&Value::Int(1)).is_err());
        assert!(Value::Text("a".into()).checked_add(&Value::Int(1)).is_err());
    }

    #[test]
    fn typed_reads_check_kind_and_range() {
        assert_eq!(i32::from_value(&Value::Int(7)).unwrap(), 7);
        assert!(i32::from_value(&Value::Int(i64::MAX)).is_err());
        assert!(i64::from_value(&Value::Text("7".into())).is_err());
        assert_eq!(Option::<i64>::from_value(&Value::Null).unwrap(), None);
        assert!(i64::from_value(&Value::Null).is_err());
        assert_eq!(Cents::from_value(&Value::Numeric("12.30".into())).unwrap(), Cents::new(1230));
        let Json(map) =
            Json::<std::collections::BTreeMap<String, i64>>::from_value(&Value::Json(r#"{"a":1}"#.into())).unwrap();
        assert_eq!(map["a"], 1);
    }
}
