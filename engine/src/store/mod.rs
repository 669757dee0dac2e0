//! The event store: appending and reading events.
