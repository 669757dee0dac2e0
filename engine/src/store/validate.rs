//! Checks that run before an append touches the database.

use std::collections::HashSet;

use serde_json::Value;

use super::error::InvalidInput;
use super::event::AppendRequest;
use super::{MAX_CATEGORY_CHARS, MAX_EVENT_TYPE_CHARS, MAX_STREAM_ID_CHARS, category};

/// Checks a stream id against the `streams`/`events` columns.
pub fn stream_id(stream_id: &str) -> Result<(), InvalidInput> {
    if stream_id.is_empty() {
        return Err(InvalidInput::EmptyStreamId);
    }
    let chars = stream_id.chars().count();
    if chars > MAX_STREAM_ID_CHARS {
        return Err(InvalidInput::StreamIdTooLong { chars });
    }
    if stream_id.contains('\0') {
        return Err(InvalidInput::NulCharacter { what: "stream id".to_owned() });
    }
    let category_chars = category(stream_id).chars().count();
    if category_chars > MAX_CATEGORY_CHARS {
        let shown: String = stream_id.chars().take(40).collect();
        return Err(InvalidInput::CategoryTooLong { stream_id: format!("{shown}…"), chars: category_chars });
    }
    Ok(())
}

/// Checks every request of an append, event ids across all of them included.
pub fn requests(requests: &[AppendRequest]) -> Result<(), InvalidInput> {
    let mut seen = HashSet::new();
    for request in requests {
        stream_id(&request.stream_id)?;
        if request.events.is_empty() {
            return Err(InvalidInput::NoEvents { stream_id: request.stream_id.clone() });
        }
        for event in &request.events {
            let id = event.event_id;
            if !seen.insert(id) {
                return Err(InvalidInput::DuplicateEventId(id));
            }
            if event.event_type.is_empty() {
                return Err(InvalidInput::EmptyEventType { event_id: id });
            }
            let chars = event.event_type.chars().count();
            if chars > MAX_EVENT_TYPE_CHARS {
                return Err(InvalidInput::EventTypeTooLong { event_id: id, chars });
            }
            if event.event_type.contains('\0') {
                return Err(InvalidInput::NulCharacter { what: format!("event type of event {id}") });
            }
            if !event.data.is_object() {
                return Err(InvalidInput::DataNotObject {
                    event_id: id,
                    event_type: event.event_type.clone(),
                    found: kind(&event.data),
                });
            }
            if has_nul(&event.data) {
                return Err(InvalidInput::NulCharacter { what: format!("data of event {id}") });
            }
            if event.metadata.to_json().as_ref().is_some_and(has_nul) {
                return Err(InvalidInput::NulCharacter { what: format!("metadata of event {id}") });
            }
        }
    }
    Ok(())
}

/// `a string`, `an array`, … for error messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether any string or key holds a NUL, which JSONB refuses (`\u0000`).
fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}
