//! Rendering the contract's typed values as PostgreSQL text input.
//!
//! Every value reaches the database as a bound parameter in PostgreSQL's text format, cast by
//! the server to the column's type; nothing a guest sends is ever spliced into SQL text.

use chrono::{DateTime, NaiveDate, TimeDelta};

use crate::wasm::types::Value;

/// A value that PostgreSQL would not accept, found before anything is sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// A `numeric` that is not a plain decimal such as `-12.30`.
    #[error("{0:?} is not a decimal number")]
    Numeric(String),
    /// A `uuid` that does not parse.
    #[error("{0:?} is not a UUID")]
    Uuid(String),
    /// A `timestamp` outside the range PostgreSQL and chrono share.
    #[error("timestamp {0} µs is out of range")]
    Timestamp(i64),
    /// A `date` outside the representable range.
    #[error("date {0} days after 1970-01-01 is out of range")]
    Date(i32),
    /// Text with a NUL character, which PostgreSQL text cannot hold.
    #[error("text contains a NUL character")]
    Nul,
}

/// The PostgreSQL text input for `value`; `None` is SQL NULL.
pub fn to_text(value: &Value) -> Result<Option<String>, ValueError> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::Boolean(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Numeric(s) => {
            if !is_decimal(s) {
                return Err(ValueError::Numeric(s.clone()));
            }
            s.clone()
        }
        Value::Float(f) if f.is_nan() => "NaN".to_owned(),
        Value::Float(f) if f.is_infinite() => if *f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned(),
        // `{:?}` prints the shortest text that reads back as the same f64.
        Value::Float(f) => format!("{f:?}"),
        Value::Text(s) | Value::Json(s) => {
            if s.contains('\0') {
                return Err(ValueError::Nul);
            }
            s.clone()
        }
        Value::Uuid(s) => uuid::Uuid::parse_str(s).map_err(|_| ValueError::Uuid(s.clone()))?.hyphenated().to_string(),
        Value::Timestamp(micros) => DateTime::from_timestamp_micros(*micros)
            .ok_or(ValueError::Timestamp(*micros))?
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string(),
        Value::Date(days) => NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|epoch| epoch.checked_add_signed(TimeDelta::try_days(i64::from(*days))?))
            .ok_or(ValueError::Date(*days))?
            .to_string(),
    };
    Ok(Some(text))
}

/// `-?digits(.digits)?`: what a `numeric` value may look like on the wire.
fn is_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty() && !frac.is_empty() && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_type_as_postgres_text_input() {
        let cases = [
            (Value::Null, None),
            (Value::Boolean(true), Some("true")),
            (Value::Int(-42), Some("-42")),
            (Value::Numeric("12.30".into()), Some("12.30")),
            (Value::Float(0.1), Some("0.1")),
            (Value::Float(f64::NEG_INFINITY), Some("-Infinity")),
            (Value::Text("it's".into()), Some("it's")),
            (Value::Uuid("6F9619FF-8B86-D011-B42D-00C04FC964FF".into()), Some("6f9619ff-8b86-d011-b42d-00c04fc964ff")),
            (Value::Timestamp(1_700_000_000_123_456), Some("2023-11-14T22:13:20.123456Z")),
            (Value::Timestamp(-1), Some("1969-12-31T23:59:59.999999Z")),
            (Value::Date(19_000), Some("2022-01-08")),
            (Value::Date(-1), Some("1969-12-31")),
        ];
        for (value, expected) in cases {
            assert_eq!(to_text(&value).unwrap().as_deref(), expected, "{value:?}");
        }
    }

    #[test]
    fn refuses_what_postgres_would_refuse() {
        for bad in ["", "-", "1.", ".5", "1e5", "12,3", "NaN", "1.2.3"] {
            assert_eq!(to_text(&Value::Numeric(bad.into())), Err(ValueError::Numeric(bad.into())), "{bad:?}");
        }
        assert!(matches!(to_text(&Value::Uuid("order-1".into())), Err(ValueError::Uuid(_))));
        assert_eq!(to_text(&Value::Text("a\0b".into())), Err(ValueError::Nul));
        assert_eq!(to_text(&Value::Date(i32::MAX)), Err(ValueError::Date(i32::MAX)));
        assert_eq!(to_text(&Value::Timestamp(i64::MAX)), Err(ValueError::Timestamp(i64::MAX)));
    }
}
