//! Rendering the contract's typed values as PostgreSQL text input.
//!
//! Every value reaches the database as a bound parameter in PostgreSQL's text format, cast by
//! the server to the column's type; nothing a guest sends is ever spliced into SQL text.

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta};

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
            .to_rfc3339_opts(SecondsFormat::Micros, true),
        Value::Date(days) => NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|epoch| epoch.checked_add_signed(TimeDelta::try_days(i64::from(*days))?))
            .ok_or(ValueError::Date(*days))?
            .to_string(),
    };
    Ok(Some(text))
}

/// Whether a column of type `column_type` (as `format_type` names it, without modifiers) can
/// take `value`. Refuses the clear mismatches only — a number where a UUID, date or time is
/// due, text that cannot be a number in a numeric column, an integer out of a column's range —
/// so that the error names the column; PostgreSQL judges everything else (text is its
/// universal input).
pub fn fits(column_type: &str, value: &Value) -> bool {
    let looks_numeric = |s: &str| {
        let s = s.trim().trim_start_matches(['-', '+']);
        s.starts_with(|c: char| c.is_ascii_digit() || c == '.')
            || ["nan", "infinity", "inf"].iter().any(|special| s.eq_ignore_ascii_case(special))
    };
    let looks_integer = |s: &str| {
        let s = s.trim().trim_start_matches(['-', '+']);
        s.starts_with(|c: char| c.is_ascii_digit()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match (column_type, value) {
        (_, Value::Null) => true,
        ("smallint", Value::Int(i)) => i16::try_from(*i).is_ok(),
        ("integer", Value::Int(i)) => i32::try_from(*i).is_ok(),
        ("bigint", Value::Int(_)) => true,
        ("smallint" | "integer" | "bigint", Value::Text(s) | Value::Numeric(s)) => looks_integer(s),
        ("smallint" | "integer" | "bigint", _) => false,
        ("numeric" | "real" | "double precision", Value::Int(_) | Value::Numeric(_) | Value::Float(_)) => true,
        ("numeric" | "real" | "double precision", Value::Text(s)) => looks_numeric(s),
        ("numeric" | "real" | "double precision", _) => false,
        ("uuid", value) => matches!(value, Value::Uuid(_) | Value::Text(_)),
        ("boolean", value) => matches!(value, Value::Boolean(_) | Value::Text(_)),
        ("date" | "timestamp with time zone" | "timestamp without time zone", value) => {
            matches!(value, Value::Date(_) | Value::Timestamp(_) | Value::Text(_))
        }
        _ => true,
    }
}

/// `value` for a message: its kind and, shortened, its content (`text "x"`, `int 12`).
pub fn describe(value: &Value) -> String {
    const SHOWN: usize = 40;
    let quoted = |kind: &str, s: &str| {
        let mut shown: String = s.chars().take(SHOWN).collect();
        if shown.len() < s.len() {
            shown.push('…');
        }
        format!("{kind} {shown:?}")
    };
    match value {
        Value::Null => "null".to_owned(),
        Value::Boolean(b) => format!("boolean {b}"),
        Value::Int(i) => format!("int {i}"),
        Value::Float(f) => format!("float {f}"),
        Value::Numeric(s) => quoted("numeric", s),
        Value::Text(s) => quoted("text", s),
        Value::Json(s) => quoted("json", s),
        Value::Uuid(s) => quoted("uuid", s),
        Value::Timestamp(micros) => format!("timestamp {micros} µs"),
        Value::Date(days) => format!("date {days} days"),
    }
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

    #[test]
    fn clear_type_mismatches_do_not_fit() {
        let text = |s: &str| Value::Text(s.into());
        for (column_type, value) in [
            ("bigint", text("x")),
            ("bigint", Value::Float(1.5)),
            ("bigint", Value::Uuid("6f9619ff-8b86-d011-b42d-00c04fc964ff".into())),
            ("integer", Value::Int(1 << 40)),
            ("smallint", Value::Int(40_000)),
            ("numeric", text("twelve")),
            ("numeric", Value::Boolean(true)),
            ("uuid", Value::Int(7)),
            ("timestamp with time zone", Value::Int(7)),
            ("date", Value::Float(1.0)),
            ("boolean", Value::Int(1)),
        ] {
            assert!(!fits(column_type, &value), "{column_type} {value:?}");
        }
        for (column_type, value) in [
            ("bigint", text(" -12")),
            ("bigint", text("1_000")),
            ("integer", Value::Int(-7)),
            ("numeric", text("-.5")),
            ("double precision", text("NaN")),
            ("numeric", Value::Int(3)),
            ("uuid", text("6f9619ff-8b86-d011-b42d-00c04fc964ff")),
            ("date", Value::Timestamp(0)),
            ("text", Value::Int(3)),
            ("jsonb", Value::Int(3)),
            ("bigint", Value::Null),
        ] {
            assert!(fits(column_type, &value), "{column_type} {value:?}");
        }
        assert_eq!(describe(&text(&"y".repeat(50))), format!("text \"{}…\"", "y".repeat(40)));
    }
}
