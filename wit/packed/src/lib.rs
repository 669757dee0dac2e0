//! The packed batch format of `refract:projection@0.2.0`: what `apply-packed` takes (the
//! batch's events) and returns (the batch's operations), one byte buffer each, instead of a
//! list of records. Handing a batch over as records costs a guest allocation per string of
//! every event and every operation, and a call into the guest for each; a buffer costs one.
//!
//! The engine (which encodes events and decodes operations) and the guest SDK (which decodes
//! events and encodes operations) share this crate. `wit/v0.2.0/projection.wit` specifies the
//! same layout for components written in other languages.
//!
//! # Layout
//!
//! Integers are little-endian, fixed width. A *string* is a `u32` byte length and that many
//! bytes of UTF-8; *bytes* the same without the UTF-8 requirement; a *count* a `u32`.
//!
//! - **Events** (host → guest): a count, then per event: `global-position` (`i64`),
//!   `stream-version` (`i64`), `timestamp` (`i64`), `stream-id` (string), `event-id`
//!   (string), `event-type` (string), `data` (bytes), `metadata` (bytes).
//! - **Operations** (guest → host): a count, then per operation a kind byte and its parts:
//!   - `0` upsert: table (string), a count of key columns, each a column (string) and a
//!     value, a count of columns, each a column (string), a value and a merge byte
//!     (`0` set, `1` add, `2` keep-if-present);
//!   - `1` delete: table (string), a count of key columns, each a column and a value;
//!   - `2` sql: the statement (string), a count of parameters, each a value.
//! - A **value** is a tag byte and its payload: `0` null; `1` boolean (one byte, `0` or `1`);
//!   `2` int (`i64`); `3` numeric (string); `4` float (`f64`); `5` text (string); `6` json
//!   (string); `7` uuid (string); `8` timestamp (`i64`); `9` date (`i32`).
//!
//! A buffer holds exactly what its count announces: trailing bytes make it malformed.
//!
//! ```
//! use refract_packed::{EventRef, Reader, Writer};
//!
//! let event = EventRef {
//!     global_position: 7,
//!     stream_id: "order-1",
//!     stream_version: 1,
//!     event_id: "3f1c…",
//!     event_type: "OrderCreated",
//!     data: br#"{"customer_id": "c1"}"#,
//!     metadata: b"",
//!     timestamp: 1_700_000_000_000_000,
//! };
//! let mut writer = Writer::default();
//! writer.count(1);
//! writer.event(&event);
//! let buffer = writer.into_bytes();
//!
//! let mut reader = Reader::new(&buffer);
//! assert_eq!(reader.count(refract_packed::MIN_EVENT_BYTES)?, 1);
//! assert_eq!(reader.event()?, event);
//! reader.finish()?;
//! # Ok::<(), refract_packed::Malformed>(())
//! ```

/// The fewest bytes an encoded event takes (three integers, five empty strings).
pub const MIN_EVENT_BYTES: usize = 3 * 8 + 5 * 4;
/// The fewest bytes an encoded operation takes (a kind, an empty string, an empty count).
pub const MIN_OP_BYTES: usize = 1 + 4 + 4;
/// The fewest bytes an encoded column and value take (an empty string, a null).
pub const MIN_COLUMN_VALUE_BYTES: usize = 4 + 1;
/// The fewest bytes an encoded column, value and merge rule take.
pub const MIN_COLUMN_UPDATE_BYTES: usize = MIN_COLUMN_VALUE_BYTES + 1;
/// The fewest bytes an encoded value takes (a null).
pub const MIN_VALUE_BYTES: usize = 1;

/// A typed value, borrowing its text from a buffer or from the caller: the contract's
/// `value` variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// SQL NULL.
    Null,
    /// `boolean`.
    Boolean(bool),
    /// `smallint`, `integer` or `bigint`.
    Int(i64),
    /// `numeric`, as exact decimal text.
    Numeric(&'a str),
    /// `real` or `double precision`.
    Float(f64),
    /// `text` or `varchar`.
    Text(&'a str),
    /// `json` or `jsonb`, as JSON text.
    Json(&'a str),
    /// `uuid`, hyphenated.
    Uuid(&'a str),
    /// `timestamptz`, in microseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
    /// `date`, in days since 1970-01-01.
    Date(i32),
}

/// How an upsert combines a column's new value with the stored one: the contract's `merge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Store the new value.
    Set = 0,
    /// Store `old + new` (on insert: `new`).
    Add = 1,
    /// Keep the stored value when it is not NULL; otherwise store the new one.
    KeepIfPresent = 2,
}

/// The kind of an operation: which of the contract's `op` cases follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// An `upsert`.
    Upsert = 0,
    /// A `delete`.
    Delete = 1,
    /// A parametrized SQL `statement`.
    Sql = 2,
}

/// One event of the log, borrowing its strings: the contract's `event` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// Position in the log.
    pub global_position: i64,
    /// The stream.
    pub stream_id: &'a str,
    /// Version of the event within its stream.
    pub stream_version: i64,
    /// The event's id, hyphenated.
    pub event_id: &'a str,
    /// The event type.
    pub event_type: &'a str,
    /// The data, JSON as UTF-8 bytes.
    pub data: &'a [u8],
    /// The metadata, JSON as UTF-8 bytes; empty when there is none.
    pub metadata: &'a [u8],
    /// Recorded time, in microseconds since 1970-01-01T00:00:00Z.
    pub timestamp: i64,
}

/// Appends to a buffer in the packed format. The caller writes the parts in the order the
/// layout gives; counts first.
///
/// # Panics
///
/// Writing a count, string or byte field longer than `u32::MAX` panics: no buffer within a
/// component's 32-bit memory can hold one.
#[derive(Debug, Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    /// A writer appending to `bytes` after what it holds (clear it to reuse its capacity).
    pub fn new(bytes: Vec<u8>) -> Writer {
        Writer { bytes }
    }

    /// The buffer written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// A count (of events, operations, key columns, columns or parameters).
    pub fn count(&mut self, count: usize) {
        self.u32(count);
    }

    /// An operation's kind byte.
    pub fn op_kind(&mut self, kind: OpKind) {
        self.bytes.push(kind as u8);
    }

    /// A merge byte.
    pub fn merge(&mut self, merge: Merge) {
        self.bytes.push(merge as u8);
    }

    /// A string.
    pub fn str(&mut self, text: &str) {
        self.bytes_field(text.as_bytes());
    }

    /// A column and its value.
    pub fn column_value(&mut self, column: &str, value: ValueRef<'_>) {
        self.str(column);
        self.value(value);
    }

    /// A value: its tag and payload.
    pub fn value(&mut self, value: ValueRef<'_>) {
        let (tag, text) = match value {
            ValueRef::Null => (0, None),
            ValueRef::Boolean(b) => {
                self.bytes.extend_from_slice(&[1, u8::from(b)]);
                return;
            }
            ValueRef::Int(i) => return self.tagged_i64(2, i),
            ValueRef::Numeric(text) => (3, Some(text)),
            ValueRef::Float(f) => return self.tagged_i64(4, f.to_bits() as i64),
            ValueRef::Text(text) => (5, Some(text)),
            ValueRef::Json(text) => (6, Some(text)),
            ValueRef::Uuid(text) => (7, Some(text)),
            ValueRef::Timestamp(micros) => return self.tagged_i64(8, micros),
            ValueRef::Date(days) => {
                self.bytes.push(9);
                self.bytes.extend_from_slice(&days.to_le_bytes());
                return;
            }
        };
        self.bytes.push(tag);
        if let Some(text) = text {
            self.str(text);
        }
    }

    /// An event.
    pub fn event(&mut self, event: &EventRef<'_>) {
        for integer in [event.global_position, event.stream_version, event.timestamp] {
            self.bytes.extend_from_slice(&integer.to_le_bytes());
        }
        self.str(event.stream_id);
        self.str(event.event_id);
        self.str(event.event_type);
        self.bytes_field(event.data);
        self.bytes_field(event.metadata);
    }

    fn tagged_i64(&mut self, tag: u8, integer: i64) {
        self.bytes.push(tag);
        self.bytes.extend_from_slice(&integer.to_le_bytes());
    }

    fn bytes_field(&mut self, bytes: &[u8]) {
        self.u32(bytes.len());
        self.bytes.extend_from_slice(bytes);
    }

    fn u32(&mut self, n: usize) {
        let n = u32::try_from(n).expect("a packed buffer's lengths and counts fit in 32 bits");
        self.bytes.extend_from_slice(&n.to_le_bytes());
    }
}

/// Why a buffer could not be read: where, and what was wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {problem}")]
pub struct Malformed {
    /// The offset of the part that could not be read.
    pub offset: usize,
    /// What was wrong.
    pub problem: Problem,
}

/// What was wrong with a part of a buffer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The buffer ends before the part does.
    #[error("the buffer ends inside the {0}")]
    Truncated(&'static str),
    /// A count announces more items than the rest of the buffer can hold.
    #[error("a count of {0} is more than the rest of the buffer can hold")]
    Count(u32),
    /// A tag or kind byte that means nothing here.
    #[error("{1} is not a valid {0}")]
    Tag(&'static str, u8),
    /// A string that is not UTF-8.
    #[error("a string is not valid UTF-8")]
    Utf8,
    /// Bytes after the last item the count announced.
    #[error("{0} bytes follow the last item")]
    Trailing(usize),
}

/// Reads a buffer in the packed format, checking every length and tag against it.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    /// A count of items that take at least `min_item_bytes` each; refused when the rest of the
    /// buffer cannot hold that many, so that it is safe to reserve room for them.
    pub fn count(&mut self, min_item_bytes: usize) -> Result<usize, Malformed> {
        let at = self.at;
        let count = self.u32("count")?;
        let fits = (count as usize).checked_mul(min_item_bytes).is_some_and(|n| n <= self.bytes.len() - self.at);
        if fits { Ok(count as usize) } else { Err(Malformed { offset: at, problem: Problem::Count(count) }) }
    }

    /// An operation's kind.
    pub fn op_kind(&mut self) -> Result<OpKind, Malformed> {
        match self.byte("operation kind")? {
            0 => Ok(OpKind::Upsert),
            1 => Ok(OpKind::Delete),
            2 => Ok(OpKind::Sql),
            tag => Err(self.bad_tag("operation kind", tag)),
        }
    }

    /// A merge rule.
    pub fn merge(&mut self) -> Result<Merge, Malformed> {
        match self.byte("merge rule")? {
            0 => Ok(Merge::Set),
            1 => Ok(Merge::Add),
            2 => Ok(Merge::KeepIfPresent),
            tag => Err(self.bad_tag("merge rule", tag)),
        }
    }

    /// A string.
    pub fn str(&mut self) -> Result<&'a str, Malformed> {
        let at = self.at;
        let bytes = self.bytes_field("string")?;
        std::str::from_utf8(bytes).map_err(|_| Malformed { offset: at, problem: Problem::Utf8 })
    }

    /// A value.
    pub fn value(&mut self) -> Result<ValueRef<'a>, Malformed> {
        Ok(match self.byte("value tag")? {
            0 => ValueRef::Null,
            1 => match self.byte("boolean")? {
                0 => ValueRef::Boolean(false),
                1 => ValueRef::Boolean(true),
                other => return Err(self.bad_tag("boolean", other)),
            },
            2 => ValueRef::Int(self.i64("int")?),
            3 => ValueRef::Numeric(self.str()?),
            4 => ValueRef::Float(f64::from_bits(self.i64("float")? as u64)),
            5 => ValueRef::Text(self.str()?),
            6 => ValueRef::Json(self.str()?),
            7 => ValueRef::Uuid(self.str()?),
            8 => ValueRef::Timestamp(self.i64("timestamp")?),
            9 => ValueRef::Date(i32::from_le_bytes(self.array("date")?)),
            tag => return Err(self.bad_tag("value tag", tag)),
        })
    }

    /// An event.
    pub fn event(&mut self) -> Result<EventRef<'a>, Malformed> {
        let global_position = self.i64("event")?;
        let stream_version = self.i64("event")?;
        let timestamp = self.i64("event")?;
        Ok(EventRef {
            global_position,
            stream_version,
            timestamp,
            stream_id: self.str()?,
            event_id: self.str()?,
            event_type: self.str()?,
            data: self.bytes_field("event's data")?,
            metadata: self.bytes_field("event's metadata")?,
        })
    }

    /// Ends the reading: the buffer must hold nothing more.
    pub fn finish(self) -> Result<(), Malformed> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            rest => Err(Malformed { offset: self.at, problem: Problem::Trailing(rest) }),
        }
    }

    fn bad_tag(&self, part: &'static str, tag: u8) -> Malformed {
        Malformed { offset: self.at - 1, problem: Problem::Tag(part, tag) }
    }

    fn take(&mut self, n: usize, part: &'static str) -> Result<&'a [u8], Malformed> {
        let rest = &self.bytes[self.at..];
        if rest.len() < n {
            return Err(Malformed { offset: self.at, problem: Problem::Truncated(part) });
        }
        self.at += n;
        Ok(&rest[..n])
    }

    fn array<const N: usize>(&mut self, part: &'static str) -> Result<[u8; N], Malformed> {
        let bytes = self.take(N, part)?;
        Ok(bytes.try_into().expect("take returns N bytes"))
    }

    fn byte(&mut self, part: &'static str) -> Result<u8, Malformed> {
        Ok(self.array::<1>(part)?[0])
    }

    fn u32(&mut self, part: &'static str) -> Result<u32, Malformed> {
        self.array(part).map(u32::from_le_bytes)
    }

    fn i64(&mut self, part: &'static str) -> Result<i64, Malformed> {
        self.array(part).map(i64::from_le_bytes)
    }

    fn bytes_field(&mut self, part: &'static str) -> Result<&'a [u8], Malformed> {
        let at = self.at;
        let len = self.u32(part)? as usize;
        self.take(len, part).map_err(|_| Malformed { offset: at, problem: Problem::Truncated(part) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: [ValueRef<'static>; 11] = [
        ValueRef::Null,
        ValueRef::Boolean(true),
        ValueRef::Boolean(false),
        ValueRef::Int(-42),
        ValueRef::Numeric("-12.30"),
        ValueRef::Float(0.1),
        ValueRef::Text("zoë"),
        ValueRef::Json(r#"{"a": [1]}"#),
        ValueRef::Uuid("7c1d6b0e-96a3-4d9b-9a5e-3f1c2b7a8e01"),
        ValueRef::Timestamp(-1),
        ValueRef::Date(19_000),
    ];

    #[test]
    fn every_value_reads_back_as_written() {
        let mut writer = Writer::default();
        writer.count(VALUES.len());
        for value in VALUES {
            writer.value(value);
        }
        let bytes = writer.into_bytes();
        let mut reader = Reader::new(&bytes);
        let count = reader.count(MIN_VALUE_BYTES).unwrap();
        let read: Vec<ValueRef<'_>> = (0..count).map(|_| reader.value().unwrap()).collect();
        assert_eq!(read, VALUES);
        reader.finish().unwrap();
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let mut writer = Writer::default();
        writer.op_kind(OpKind::Upsert);
        writer.str("t");
        writer.count(1);
        writer.column_value("k", ValueRef::Int(1));
        writer.count(1);
        writer.column_value("n", ValueRef::Boolean(true));
        writer.merge(Merge::Add);
        #[rustfmt::skip]
        let expected = [
            0, // upsert
            1, 0, 0, 0, b't', // table
            1, 0, 0, 0, // one key column
            1, 0, 0, 0, b'k', 2, 1, 0, 0, 0, 0, 0, 0, 0, // k = int 1
            1, 0, 0, 0, // one column
            1, 0, 0, 0, b'n', 1, 1, 1, // n = true, add
        ];
        assert_eq!(writer.as_bytes(), expected);
    }

    #[test]
    fn malformed_buffers_are_refused_where_they_go_wrong() {
        let malformed = |bytes: &[u8], read: fn(&mut Reader<'_>) -> Result<(), Malformed>| {
            let mut reader = Reader::new(bytes);
            read(&mut reader).and_then(|()| reader.finish()).unwrap_err()
        };
        let value = |reader: &mut Reader<'_>| reader.value().map(drop);
        assert_eq!(malformed(&[10], value), Malformed { offset: 0, problem: Problem::Tag("value tag", 10) });
        assert_eq!(malformed(&[1, 2], value), Malformed { offset: 1, problem: Problem::Tag("boolean", 2) });
        assert_eq!(malformed(&[2, 1, 0], value), Malformed { offset: 1, problem: Problem::Truncated("int") });
        assert_eq!(malformed(&[2, 1, 0], value).to_string(), "at byte 1: the buffer ends inside the int");
        assert_eq!(
            malformed(&[5, 3, 0, 0, 0, b'a'], value),
            Malformed { offset: 1, problem: Problem::Truncated("string") }
        );
        assert_eq!(malformed(&[5, 1, 0, 0, 0, 0xff], value), Malformed { offset: 1, problem: Problem::Utf8 });
        assert_eq!(malformed(&[0, 0], value), Malformed { offset: 1, problem: Problem::Trailing(1) });
        let ops = |reader: &mut Reader<'_>| reader.count(MIN_OP_BYTES).map(drop);
        // Four billion operations cannot fit in the nine bytes left.
        let huge = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(malformed(&huge, ops), Malformed { offset: 0, problem: Problem::Count(u32::MAX) });
        let kind = |reader: &mut Reader<'_>| reader.op_kind().map(drop);
        assert_eq!(malformed(&[3], kind).to_string(), "at byte 0: 3 is not a valid operation kind");
    }

    #[test]
    fn values_and_events_have_the_documented_bytes() {
        #[rustfmt::skip]
        let values: [(ValueRef<'_>, &[u8]); 11] = [
            (ValueRef::Null, &[0]),
            (ValueRef::Boolean(false), &[1, 0]),
            (ValueRef::Boolean(true), &[1, 1]),
            (ValueRef::Int(-2), &[2, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            (ValueRef::Numeric("1.5"), &[3, 3, 0, 0, 0, b'1', b'.', b'5']),
            (ValueRef::Float(1.0), &[4, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]),
            (ValueRef::Text("é"), &[5, 2, 0, 0, 0, 0xc3, 0xa9]),
            (ValueRef::Json("[]"), &[6, 2, 0, 0, 0, b'[', b']']),
            (ValueRef::Uuid("u"), &[7, 1, 0, 0, 0, b'u']),
            (ValueRef::Timestamp(256), &[8, 0, 1, 0, 0, 0, 0, 0, 0]),
            (ValueRef::Date(-1), &[9, 0xff, 0xff, 0xff, 0xff]),
        ];
        for (value, bytes) in values {
            let mut writer = Writer::default();
            writer.value(value);
            assert_eq!(writer.as_bytes(), bytes, "{value:?}");
            let mut reader = Reader::new(bytes);
            assert_eq!(reader.value(), Ok(value));
            reader.finish().unwrap();
        }

        let event = EventRef {
            global_position: 1,
            stream_id: "s",
            stream_version: 2,
            event_id: "i",
            event_type: "t",
            data: b"{}",
            metadata: b"",
            timestamp: 3,
        };
        let mut writer = Writer::default();
        writer.event(&event);
        #[rustfmt::skip]
        let expected = [
            1, 0, 0, 0, 0, 0, 0, 0, // global-position
            2, 0, 0, 0, 0, 0, 0, 0, // stream-version
            3, 0, 0, 0, 0, 0, 0, 0, // timestamp
            1, 0, 0, 0, b's', // stream-id
            1, 0, 0, 0, b'i', // event-id
            1, 0, 0, 0, b't', // event-type
            2, 0, 0, 0, b'{', b'}', // data
            0, 0, 0, 0, // metadata
        ];
        assert_eq!(writer.as_bytes(), expected);
        assert_eq!(Reader::new(&expected).event(), Ok(event));
    }
}
