//! The guest's side of `apply-packed` (contract 0.2.0): a batch's events read from one buffer
//! into a single [`Event`] that is refilled for each of them (no allocation per event once its
//! strings have grown to the batch's longest), and the operations written into one buffer.

use refract_packed::{MIN_EVENT_BYTES, Malformed, OpKind, Reader, ValueRef, Writer};

use crate::runner::Batch;
use crate::{Event, Merge, Op, ProjectionError, Timestamp, Value};

/// A batch of events packed by the host.
pub(crate) struct PackedEvents<'a>(pub(crate) &'a [u8]);

impl Batch for PackedEvents<'_> {
    fn each(self, mut apply: impl FnMut(&Event) -> Result<(), ProjectionError>) -> Result<(), ProjectionError> {
        let malformed = |error: Malformed| ProjectionError {
            message: format!("the engine sent a malformed batch: {error}"),
            global_position: None,
        };
        let mut reader = Reader::new(self.0);
        let mut event = Event::new(String::new(), String::new(), Vec::new());
        for _ in 0..reader.count(MIN_EVENT_BYTES).map_err(malformed)? {
            let packed = reader.event().map_err(malformed)?;
            event.global_position = packed.global_position;
            event.stream_version = packed.stream_version;
            event.timestamp = Timestamp::from_micros(packed.timestamp);
            refill(&mut event.stream_id, packed.stream_id);
            refill(&mut event.event_id, packed.event_id);
            refill(&mut event.event_type, packed.event_type);
            event.data.clear();
            event.data.extend_from_slice(packed.data);
            event.metadata.clear();
            event.metadata.extend_from_slice(packed.metadata);
            apply(&event)?;
        }
        reader.finish().map_err(malformed)
    }
}

fn refill(text: &mut String, with: &str) {
    text.clear();
    text.push_str(with);
}

/// `ops` packed for the host.
pub(crate) fn pack_ops(ops: &[Op]) -> Vec<u8> {
    let mut writer = Writer::default();
    writer.count(ops.len());
    for op in ops {
        let (kind, table, key) = match op {
            Op::Upsert { table, key, .. } => (OpKind::Upsert, table, key),
            Op::Delete { table, key } => (OpKind::Delete, table, key),
        };
        writer.op_kind(kind);
        writer.str(table);
        writer.count(key.columns().len());
        for (column, value) in key.columns() {
            writer.column_value(column, value_ref(value));
        }
        if let Op::Upsert { columns, .. } = op {
            writer.count(columns.len());
            for update in columns {
                writer.column_value(&update.column, value_ref(&update.value));
                writer.merge(match update.merge {
                    Merge::Set => refract_packed::Merge::Set,
                    Merge::Add => refract_packed::Merge::Add,
                    Merge::KeepIfPresent => refract_packed::Merge::KeepIfPresent,
                });
            }
        }
    }
    writer.into_bytes()
}

fn value_ref(value: &Value) -> ValueRef<'_> {
    match value {
        Value::Null => ValueRef::Null,
        Value::Bool(b) => ValueRef::Boolean(*b),
        Value::Int(i) => ValueRef::Int(*i),
        Value::Numeric(text) => ValueRef::Numeric(text),
        Value::Float(f) => ValueRef::Float(*f),
        Value::Text(text) => ValueRef::Text(text),
        Value::Json(text) => ValueRef::Json(text),
        Value::Uuid(text) => ValueRef::Uuid(text),
        Value::Timestamp(micros) => ValueRef::Timestamp(*micros),
        Value::Date(days) => ValueRef::Date(*days),
    }
}

#[cfg(test)]
mod tests {
    use refract_packed::{EventRef, MIN_COLUMN_UPDATE_BYTES, MIN_COLUMN_VALUE_BYTES, MIN_OP_BYTES};

    use super::*;
    use crate::runner::Runner;
    use crate::state::RowSource;
    use crate::{Description, Error, Key, Projection, Row, State};

    fn packed(events: &[Event]) -> Vec<u8> {
        let mut writer = Writer::default();
        writer.count(events.len());
        for event in events {
            writer.event(&EventRef {
                global_position: event.global_position(),
                stream_id: event.stream_id(),
                stream_version: event.stream_version(),
                event_id: event.event_id(),
                event_type: event.event_type(),
                data: event.data_bytes(),
                metadata: event.metadata_bytes(),
                timestamp: event.timestamp().micros(),
            });
        }
        writer.into_bytes()
    }

    #[test]
    fn a_packed_batch_gives_the_projection_the_same_events() {
        let events = [
            Event::new("order-1", "ItemAdded", r#"{"n": 1}"#)
                .with_position(1)
                .with_id("a")
                .with_metadata(r#"{"m": 1}"#),
            Event::new("order-22", "ItemAdded", "{}").with_position(2).with_version(7).with_id("bb"),
            Event::new("o", "X", r#"{"longer": "data than before"}"#).with_timestamp(Timestamp::from_micros(-3)),
        ];
        let mut seen = Vec::new();
        PackedEvents(&packed(&events))
            .each(|event| {
                seen.push(event.clone());
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, events);
    }

    #[test]
    fn the_first_error_stops_the_batch_and_a_malformed_one_is_refused() {
        let events = [Event::new("a", "X", "{}"), Event::new("b", "X", "{}"), Event::new("c", "X", "{}")];
        let mut applied = 0;
        let stop = |event: &Event| ProjectionError { message: event.stream_id().into(), global_position: None };
        let error = PackedEvents(&packed(&events))
            .each(|event| {
                applied += 1;
                if event.stream_id() == "b" { Err(stop(event)) } else { Ok(()) }
            })
            .unwrap_err();
        assert_eq!((error.message.as_str(), applied), ("b", 2));

        let mut cut = packed(&events);
        cut.pop();
        let error = PackedEvents(&cut).each(|_| Ok(())).unwrap_err();
        assert!(error.message.starts_with("the engine sent a malformed batch: at byte"), "{}", error.message);
    }

    /// Reads packed operations back, independently of the host's reader: (kind, table, key,
    /// columns) with values as `ValueRef`'s debug text.
    fn unpacked(bytes: &[u8]) -> Vec<(OpKind, String, Vec<String>, Vec<String>)> {
        let mut reader = Reader::new(bytes);
        let ops = (0..reader.count(MIN_OP_BYTES).unwrap())
            .map(|_| {
                let kind = reader.op_kind().unwrap();
                let table = reader.str().unwrap().to_owned();
                let key = (0..reader.count(MIN_COLUMN_VALUE_BYTES).unwrap())
                    .map(|_| format!("{}={:?}", reader.str().unwrap(), reader.value().unwrap()))
                    .collect();
                let columns = match kind {
                    OpKind::Upsert => (0..reader.count(MIN_COLUMN_UPDATE_BYTES).unwrap())
                        .map(|_| {
                            let (column, value) = (reader.str().unwrap(), reader.value().unwrap());
                            format!("{column}={value:?} {:?}", reader.merge().unwrap())
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                (kind, table, key, columns)
            })
            .collect();
        reader.finish().unwrap();
        ops
    }

    /// Adds each `add` event's `n` to its stream's row of `tally` and labels it; `drop`
    /// deletes the row.
    struct Tally;

    impl Projection for Tally {
        fn describe() -> Description {
            Description::new("tally", "1")
                .table("tally", "CREATE TABLE tally (id text PRIMARY KEY, n bigint, label text)")
        }

        fn apply(event: &Event, state: &mut State) -> Result<(), Error> {
            let key = Key::new("id", event.stream_id());
            match event.event_type() {
                "add" => {
                    let n: i64 = event.data::<serde_json::Value>()?["n"].as_i64().unwrap_or_default();
                    state.add("tally", key.clone(), "n", n)?;
                    state.put("tally", key, Row::new().with("label", event.stream_id()))
                }
                _ => state.delete("tally", key),
            }
        }
    }

    struct NoReads;

    impl RowSource for NoReads {
        fn get_row(&mut self, _: &str, _: &Key) -> Result<Option<Row>, String> {
            Err("Tally reads nothing".into())
        }
    }

    #[test]
    fn operations_are_packed_with_their_keys_values_and_merge_rules() {
        let events = [
            Event::new("t-1", "add", r#"{"n": 2}"#),
            Event::new("t-1", "add", r#"{"n": 3}"#),
            Event::new("t-2", "drop", "{}"),
        ];
        let ops = Runner::default().apply::<Tally>(PackedEvents(&packed(&events)), || Box::new(NoReads)).unwrap();
        let text = |items: &[&str]| items.iter().map(|item| (*item).to_owned()).collect::<Vec<_>>();
        let expected = [
            (
                OpKind::Upsert,
                "tally".to_owned(),
                text(&[r#"id=Text("t-1")"#]),
                text(&["n=Int(5) Add", r#"label=Text("t-1") Set"#]),
            ),
            (OpKind::Delete, "tally".to_owned(), text(&[r#"id=Text("t-2")"#]), text(&[])),
        ];
        assert_eq!(unpacked(&pack_ops(&ops)), expected);
    }
}
