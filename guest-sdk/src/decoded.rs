//! JSON columns kept decoded in the cache ([`State::get_json`](crate::State::get_json) and
//! [`State::put_json`](crate::State::put_json)): a projection that keeps its own state in a
//! `jsonb` column reads it without parsing it again and writes it without serializing it for
//! every event; it is serialized once per row and batch.

use std::any::Any;

use serde::Serialize;

use crate::{Error, Value, bytes};

/// The decoded value of one JSON column of a cached row.
pub(crate) struct Decoded {
    column: String,
    value: Box<dyn JsonValue>,
    /// Written by `put_json` since the row's copy of the column and the row's pending write
    /// were last brought up to date: both hold a placeholder until [`Decoded::to_value`].
    pub(crate) pending: bool,
}

/// A value that serializes as JSON, whatever its type (the cache holds values of any type).
trait JsonValue {
    fn as_any(&self) -> &dyn Any;
    fn to_json(&self) -> Result<Value, Error>;
}

impl<T: Serialize + 'static> JsonValue for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn to_json(&self) -> Result<Value, Error> {
        Value::json(self)
    }
}

impl Decoded {
    /// `value` of `column`; `pending` when it was written and not serialized yet.
    pub(crate) fn new<T: Serialize + 'static>(column: &str, value: T, pending: bool) -> Decoded {
        Decoded { column: column.to_owned(), value: Box::new(value), pending }
    }

    /// The column whose value this is.
    pub(crate) fn column(&self) -> &str {
        &self.column
    }

    /// The value, when it is `column`'s and of type `T`.
    pub(crate) fn get<T: 'static>(&self, column: &str) -> Option<&T> {
        if bytes::equal(&self.column, column) { self.value.as_any().downcast_ref() } else { None }
    }

    /// The value as the column's JSON text.
    pub(crate) fn to_value(&self) -> Result<Value, Error> {
        self.value.to_json()
    }
}
