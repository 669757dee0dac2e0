//! The host's side of `apply-packed` (contract 0.2.0): a batch's events packed into one
//! buffer, the operations returned read back into the contract's types.
//!
//! Reading them back is bounded: a packed byte can stand for much more host memory (five
//! bytes of a column and a null, a `ColumnValue` of several words), so the operations are
//! charged what they take on the host, against the same limit as the buffer itself
//! ([`Limits::max_result_bytes`](super::Limits::max_result_bytes)), before anything is
//! allocated for them.

use refract_packed::{
    EventRef, MIN_COLUMN_UPDATE_BYTES, MIN_COLUMN_VALUE_BYTES, MIN_OP_BYTES, MIN_VALUE_BYTES, Malformed, OpKind,
    Reader, ValueRef, Writer,
};

use super::types::{ColumnUpdate, ColumnValue, Delete, Event, Merge, Op, Statement, Upsert, Value};

/// Why packed operations could not be read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnpackError {
    /// Not in the contract's format.
    #[error(transparent)]
    Malformed(#[from] Malformed),
    /// They would take more host memory than the budget.
    #[error("the operations would take more than {0} bytes")]
    TooLarge(usize),
}

/// Host memory the operations being read back may still take.
struct Budget {
    limit: usize,
    left: usize,
}

impl Budget {
    /// Takes `count` items of `T` (or bytes of text, for `u8`) from the budget.
    fn charge<T>(&mut self, count: usize) -> Result<usize, UnpackError> {
        let cost = count.checked_mul(size_of::<T>()).filter(|cost| *cost <= self.left);
        let cost = cost.ok_or(UnpackError::TooLarge(self.limit))?;
        self.left -= cost;
        Ok(count)
    }

    /// A string read and copied, its bytes charged.
    fn text(&mut self, reader: &mut Reader<'_>) -> Result<String, UnpackError> {
        let text = reader.str()?;
        self.charge::<u8>(text.len())?;
        Ok(text.to_owned())
    }

    /// A value read and converted, the text it holds charged.
    fn value(&mut self, reader: &mut Reader<'_>) -> Result<Value, UnpackError> {
        let value = reader.value()?;
        if let ValueRef::Numeric(text) | ValueRef::Text(text) | ValueRef::Json(text) | ValueRef::Uuid(text) = value {
            self.charge::<u8>(text.len())?;
        }
        Ok(owned(value))
    }

    /// A count of items of `T`, charged.
    fn count<T>(&mut self, reader: &mut Reader<'_>, min_item_bytes: usize) -> Result<usize, UnpackError> {
        let count = reader.count(min_item_bytes)?;
        self.charge::<T>(count)
    }
}

/// Packs `events` into `buffer`, replacing what it held (its capacity is reused).
pub(crate) fn pack_events(events: &[Event], buffer: &mut Vec<u8>) {
    buffer.clear();
    let mut writer = Writer::new(std::mem::take(buffer));
    writer.count(events.len());
    for event in events {
        writer.event(&EventRef {
            global_position: event.global_position,
            stream_id: &event.stream_id,
            stream_version: event.stream_version,
            event_id: &event.event_id,
            event_type: &event.event_type,
            data: &event.data,
            metadata: &event.metadata,
            timestamp: event.timestamp,
        });
    }
    *buffer = writer.into_bytes();
}

/// The operations packed in `bytes`, if they take at most `budget` bytes of host memory.
pub(crate) fn unpack_ops(bytes: &[u8], budget: usize) -> Result<Vec<Op>, UnpackError> {
    let mut reader = Reader::new(bytes);
    let mut budget = Budget { limit: budget, left: budget };
    let count = budget.count::<Op>(&mut reader, MIN_OP_BYTES)?;
    let mut ops = Vec::with_capacity(count);
    for _ in 0..count {
        ops.push(match reader.op_kind()? {
            OpKind::Upsert => {
                let table = budget.text(&mut reader)?;
                let key = column_values(&mut reader, &mut budget)?;
                let columns = (0..budget.count::<ColumnUpdate>(&mut reader, MIN_COLUMN_UPDATE_BYTES)?)
                    .map(|_| {
                        let column = budget.text(&mut reader)?;
                        let value = budget.value(&mut reader)?;
                        Ok(ColumnUpdate { column, value, merge: merge(reader.merge()?) })
                    })
                    .collect::<Result<_, UnpackError>>()?;
                Op::Upsert(Upsert { table, key, columns })
            }
            OpKind::Delete => {
                let table = budget.text(&mut reader)?;
                Op::Delete(Delete { table, key: column_values(&mut reader, &mut budget)? })
            }
            OpKind::Sql => {
                let sql = budget.text(&mut reader)?;
                let params = (0..budget.count::<Value>(&mut reader, MIN_VALUE_BYTES)?)
                    .map(|_| budget.value(&mut reader))
                    .collect::<Result<_, _>>()?;
                Op::Sql(Statement { sql, params })
            }
        });
    }
    reader.finish()?;
    Ok(ops)
}

fn column_values(reader: &mut Reader<'_>, budget: &mut Budget) -> Result<Vec<ColumnValue>, UnpackError> {
    (0..budget.count::<ColumnValue>(reader, MIN_COLUMN_VALUE_BYTES)?)
        .map(|_| Ok(ColumnValue { column: budget.text(reader)?, value: budget.value(reader)? }))
        .collect()
}

fn owned(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Boolean(b) => Value::Boolean(b),
        ValueRef::Int(i) => Value::Int(i),
        ValueRef::Numeric(text) => Value::Numeric(text.to_owned()),
        ValueRef::Float(f) => Value::Float(f),
        ValueRef::Text(text) => Value::Text(text.to_owned()),
        ValueRef::Json(text) => Value::Json(text.to_owned()),
        ValueRef::Uuid(text) => Value::Uuid(text.to_owned()),
        ValueRef::Timestamp(micros) => Value::Timestamp(micros),
        ValueRef::Date(days) => Value::Date(days),
    }
}

fn merge(merge: refract_packed::Merge) -> Merge {
    match merge {
        refract_packed::Merge::Set => Merge::Set,
        refract_packed::Merge::Add => Merge::Add,
        refract_packed::Merge::KeepIfPresent => Merge::KeepIfPresent,
    }
}

#[cfg(test)]
mod tests {
    use refract_packed::MIN_EVENT_BYTES;

    use super::*;

    #[test]
    fn events_are_packed_in_the_documented_layout() {
        let event = Event {
            global_position: 3,
            stream_id: "order-1".into(),
            stream_version: 2,
            event_id: "e".into(),
            event_type: "ItemAdded".into(),
            data: b"{}".to_vec(),
            metadata: Vec::new(),
            timestamp: -5,
        };
        let mut buffer = b"left over from the last batch".to_vec();
        pack_events(&[event.clone(), event], &mut buffer);
        let mut reader = Reader::new(&buffer);
        assert_eq!(reader.count(MIN_EVENT_BYTES), Ok(2));
        let first = reader.event().unwrap();
        assert_eq!((first.global_position, first.stream_version, first.timestamp), (3, 2, -5));
        assert_eq!((first.stream_id, first.event_id, first.event_type), ("order-1", "e", "ItemAdded"));
        assert_eq!((first.data, first.metadata), (&b"{}"[..], &b""[..]));
        reader.event().unwrap();
        reader.finish().unwrap();
    }

    #[test]
    fn every_kind_of_operation_is_unpacked_into_the_contract_types() {
        let mut writer = Writer::default();
        writer.count(3);
        writer.op_kind(OpKind::Upsert);
        writer.str("totals");
        writer.count(1);
        writer.column_value("day", ValueRef::Date(19_000));
        writer.count(2);
        writer.column_value("amount", ValueRef::Numeric("1.50"));
        writer.merge(refract_packed::Merge::Add);
        writer.column_value("note", ValueRef::Null);
        writer.merge(refract_packed::Merge::KeepIfPresent);
        writer.op_kind(OpKind::Delete);
        writer.str("totals");
        writer.count(1);
        writer.column_value("day", ValueRef::Date(18_999));
        writer.op_kind(OpKind::Sql);
        writer.str("UPDATE totals SET amount = $1");
        writer.count(1);
        writer.value(ValueRef::Float(0.5));
        let day = |days| vec![ColumnValue { column: "day".into(), value: Value::Date(days) }];
        // The generated types have no `PartialEq`: their debug forms are compared.
        assert_eq!(
            format!("{:?}", unpack_ops(writer.as_bytes(), usize::MAX).unwrap()),
            format!(
                "{:?}",
                [
                    Op::Upsert(Upsert {
                        table: "totals".into(),
                        key: day(19_000),
                        columns: vec![
                            ColumnUpdate {
                                column: "amount".into(),
                                value: Value::Numeric("1.50".into()),
                                merge: Merge::Add
                            },
                            ColumnUpdate { column: "note".into(), value: Value::Null, merge: Merge::KeepIfPresent },
                        ],
                    }),
                    Op::Delete(Delete { table: "totals".into(), key: day(18_999) }),
                    Op::Sql(Statement { sql: "UPDATE totals SET amount = $1".into(), params: vec![Value::Float(0.5)] }),
                ]
            )
        );
    }

    #[test]
    fn a_buffer_that_is_not_what_its_count_says_is_malformed() {
        let mut writer = Writer::default();
        writer.count(2);
        writer.op_kind(OpKind::Delete);
        writer.str("t");
        writer.count(0);
        // One operation of the two announced, padded so that the count itself is plausible.
        let mut bytes = writer.into_bytes();
        bytes.extend_from_slice(&[0; 9]);
        let error = unpack_ops(&bytes, usize::MAX).unwrap_err();
        assert_eq!(error.to_string(), "at byte 23: the buffer ends inside the count");
    }

    #[test]
    fn operations_that_would_take_more_host_memory_than_the_budget_are_refused() {
        // One statement with a million null parameters: 4 MB packed, 32 MB as `Value`s.
        let params = 1_000_000;
        let mut writer = Writer::default();
        writer.count(1);
        writer.op_kind(OpKind::Sql);
        writer.str("SELECT 1");
        writer.count(params);
        for _ in 0..params {
            writer.value(ValueRef::Null);
        }
        let bytes = writer.into_bytes();
        let needed = size_of::<Op>() + "SELECT 1".len() + params * size_of::<Value>();
        assert!(matches!(unpack_ops(&bytes, needed - 1), Err(UnpackError::TooLarge(limit)) if limit == needed - 1));
        let ops = unpack_ops(&bytes, needed).unwrap();
        assert!(matches!(&ops[..], [Op::Sql(statement)] if statement.params.len() == params));
    }
}
