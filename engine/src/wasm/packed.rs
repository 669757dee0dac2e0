//! The host's side of `apply-packed` (contract 0.2.0): a batch's events packed into one
//! buffer, the operations returned read back into the contract's types.

use refract_packed::{
    EventRef, MIN_COLUMN_UPDATE_BYTES, MIN_COLUMN_VALUE_BYTES, MIN_OP_BYTES, MIN_VALUE_BYTES, Malformed, OpKind,
    Reader, ValueRef, Writer,
};

use super::types::{ColumnUpdate, ColumnValue, Delete, Event, Merge, Op, Statement, Upsert, Value};

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

/// The operations packed in `bytes`.
pub(crate) fn unpack_ops(bytes: &[u8]) -> Result<Vec<Op>, Malformed> {
    let mut reader = Reader::new(bytes);
    let count = reader.count(MIN_OP_BYTES)?;
    let mut ops = Vec::with_capacity(count);
    for _ in 0..count {
        ops.push(match reader.op_kind()? {
            OpKind::Upsert => {
                let table = reader.str()?.to_owned();
                let key = column_values(&mut reader)?;
                let columns = (0..reader.count(MIN_COLUMN_UPDATE_BYTES)?)
                    .map(|_| {
                        let column = reader.str()?.to_owned();
                        let value = value(reader.value()?);
                        Ok(ColumnUpdate { column, value, merge: merge(reader.merge()?) })
                    })
                    .collect::<Result<_, Malformed>>()?;
                Op::Upsert(Upsert { table, key, columns })
            }
            OpKind::Delete => {
                let table = reader.str()?.to_owned();
                Op::Delete(Delete { table, key: column_values(&mut reader)? })
            }
            OpKind::Sql => {
                let sql = reader.str()?.to_owned();
                let params =
                    (0..reader.count(MIN_VALUE_BYTES)?).map(|_| reader.value().map(value)).collect::<Result<_, _>>()?;
                Op::Sql(Statement { sql, params })
            }
        });
    }
    reader.finish()?;
    Ok(ops)
}

fn column_values(reader: &mut Reader<'_>) -> Result<Vec<ColumnValue>, Malformed> {
    (0..reader.count(MIN_COLUMN_VALUE_BYTES)?)
        .map(|_| Ok(ColumnValue { column: reader.str()?.to_owned(), value: value(reader.value()?) }))
        .collect()
}

fn value(value: ValueRef<'_>) -> Value {
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
            format!("{:?}", unpack_ops(writer.as_bytes()).unwrap()),
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
        let error = unpack_ops(&bytes).unwrap_err();
        assert_eq!(error.to_string(), "at byte 23: the buffer ends inside a count");
    }
}
