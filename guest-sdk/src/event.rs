//! Events of the log, and typed access to their JSON payloads.

use serde::Deserialize;

use crate::error::EventRef;
use crate::{Error, Timestamp};

/// One event of the log, as the engine hands it to a projection.
///
/// Its payloads are JSON documents; [`Event::data`] reads the data into a type of yours with
/// serde, and a payload of the wrong shape gives an [`Error::Payload`] that names the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub(crate) global_position: i64,
    pub(crate) stream_id: String,
    pub(crate) stream_version: i64,
    pub(crate) event_id: String,
    pub(crate) event_type: String,
    pub(crate) data: Vec<u8>,
    pub(crate) metadata: Vec<u8>,
    pub(crate) timestamp: Timestamp,
}

impl Event {
    /// An event of `event_type` in `stream_id` with the JSON `data`, for tests. Position 0,
    /// version 1, an empty id and metadata, timestamp 0, until set with the `with_` methods.
    pub fn new(stream_id: impl Into<String>, event_type: impl Into<String>, data: impl Into<Vec<u8>>) -> Event {
        Event {
            global_position: 0,
            stream_id: stream_id.into(),
            stream_version: 1,
            event_id: String::new(),
            event_type: event_type.into(),
            data: data.into(),
            metadata: Vec::new(),
            timestamp: Timestamp::from_micros(0),
        }
    }

    /// With this global position.
    pub fn with_position(mut self, global_position: i64) -> Event {
        self.global_position = global_position;
        self
    }

    /// With this stream version.
    pub fn with_version(mut self, stream_version: i64) -> Event {
        self.stream_version = stream_version;
        self
    }

    /// With this event id.
    pub fn with_id(mut self, event_id: impl Into<String>) -> Event {
        self.event_id = event_id.into();
        self
    }

    /// With this timestamp.
    pub fn with_timestamp(mut self, timestamp: Timestamp) -> Event {
        self.timestamp = timestamp;
        self
    }

    /// With this JSON metadata.
    pub fn with_metadata(mut self, metadata: impl Into<Vec<u8>>) -> Event {
        self.metadata = metadata.into();
        self
    }

    /// Position in the log (`events.global_position`).
    pub fn global_position(&self) -> i64 {
        self.global_position
    }

    /// The stream, e.g. `order-3f1c…`.
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// The stream's category: the part of the stream id before the first `-` (all of it
    /// when there is no `-`), e.g. `order`.
    pub fn category(&self) -> &str {
        self.stream_id.split_once('-').map_or(self.stream_id.as_str(), |(category, _)| category)
    }

    /// Version of the event within its stream, from 1.
    pub fn stream_version(&self) -> i64 {
        self.stream_version
    }

    /// `events.event_id`, hyphenated.
    pub fn event_id(&self) -> &str {
        &self.event_id
    }

    /// The event type, e.g. `OrderCreated`.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// When the event was recorded.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The data as JSON bytes.
    pub fn data_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The metadata as JSON bytes; empty when the event has none.
    pub fn metadata_bytes(&self) -> &[u8] {
        &self.metadata
    }

    /// The data read into `T` with serde. Fields of the JSON that `T` does not name are
    /// ignored (unless `T` says `deny_unknown_fields`).
    pub fn data<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Error> {
        self.decode("data", &self.data)
    }

    /// The metadata read into `T` with serde; `None` when the event has no metadata.
    pub fn metadata<'a, T: Deserialize<'a>>(&'a self) -> Result<Option<T>, Error> {
        if self.metadata.is_empty() {
            return Ok(None);
        }
        self.decode("metadata", &self.metadata).map(Some)
    }

    fn decode<'a, T: Deserialize<'a>>(&self, part: &'static str, json: &'a [u8]) -> Result<T, Error> {
        serde_json::from_slice(json).map_err(|error| Error::Payload {
            event: Box::new(self.reference()),
            part,
            target: short_type_name::<T>(),
            message: error.to_string(),
        })
    }

    /// How messages name this event.
    pub fn reference(&self) -> EventRef {
        EventRef {
            global_position: self.global_position,
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            stream_id: self.stream_id.clone(),
            stream_version: self.stream_version,
        }
    }
}

/// `ItemAdded` for `my_crate::events::ItemAdded<'_>`: what a reader calls the type.
pub(crate) fn short_type_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    let short = base.rsplit("::").next().unwrap_or(base);
    match full.find('<') {
        Some(generics) if !full[generics..].starts_with("<'") => {
            format!("{short}{}", &full[generics..])
        }
        _ => short.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code, reason = "fields are read by serde only")]
    struct ItemAdded<'a> {
        product_id: &'a str,
        quantity: u32,
    }

    #[test]
    fn a_payload_of_the_wrong_shape_names_the_event_and_the_problem() {
        let event = Event::new("order-1", "ItemAdded", r#"{"product_id": "p1", "quantity": "two"}"#)
            .with_position(42)
            .with_id("7c1d")
            .with_version(3);
        let error = event.data::<ItemAdded>().unwrap_err();
        let Error::Payload { event: reference, target, message, .. } = &error else { panic!("{error:?}") };
        assert_eq!(reference.global_position, 42);
        assert_eq!(target, "ItemAdded");
        assert!(message.contains("invalid type: string \"two\""), "{message}");
        assert_eq!(
            error.to_string(),
            format!(
                "event 42 (ItemAdded, id 7c1d, stream order-1, version 3): data is not a valid ItemAdded: {message}"
            )
        );
    }

    #[test]
    fn borrows_strings_from_the_payload_and_reads_metadata() {
        let event = Event::new("order-1", "ItemAdded", r#"{"product_id": "p1", "quantity": 2, "extra": true}"#);
        assert_eq!(event.data::<ItemAdded>().unwrap().product_id, "p1");
        assert_eq!(event.metadata::<serde_json::Value>().unwrap(), None);
        let event = event.with_metadata(r#"{"actor_id": "a"}"#);
        assert_eq!(event.metadata::<serde_json::Value>().unwrap().unwrap()["actor_id"], "a");
        assert_eq!(event.category(), "order");
    }

    #[test]
    fn short_type_names_drop_paths_and_lifetimes() {
        assert_eq!(short_type_name::<ItemAdded<'static>>(), "ItemAdded");
        assert_eq!(short_type_name::<Vec<u8>>(), "Vec<u8>");
    }
}
