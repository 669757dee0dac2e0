//! The trait a projection implements, and how it describes itself.

use crate::{Error, Event, State};

/// How many rows per table the SDK keeps cached between batches unless a projection says
/// otherwise with [`Projection::CACHE_ROWS`].
///
/// A cached row of a few columns takes about half a kilobyte of the instance's memory, and a
/// WebAssembly instance never gives memory back: the most the cache ever held stays resident
/// until the engine replaces the instance (it does so once a projection catches up with the
/// log). 16 384 rows per table keep that to about 8 MiB however long the log, while still
/// holding every row read again within the last 8 192 to 16 384 distinct rows read or written
/// (the open orders of a shop, say).
pub const DEFAULT_CACHE_ROWS: usize = 16_384;

/// A projection: a read model computed from events, one event at a time.
///
/// Implement it on a type of yours and export that type with [`export!`](crate::export).
///
/// `apply` reads and writes the projection's own tables through [`State`]; that is the only
/// state that lasts. The engine may replace the instance that runs a projection at any time
/// (after an error, a restart, a rebuild), so nothing else survives from one batch to the
/// next, which is why the trait has no `self`.
pub trait Projection {
    /// How many rows per table to keep cached between batches; see [`State`]. Raise it when
    /// more than half as many rows are read again and again (each miss is a read from the
    /// host), lower it to save memory; the default is [`DEFAULT_CACHE_ROWS`].
    const CACHE_ROWS: usize = DEFAULT_CACHE_ROWS;

    /// The projection's name, version, subscription and tables. Called once per instance.
    fn describe() -> Description;

    /// Applies one event. Events come in log order; an error stops the batch, none of its
    /// writes are applied, and the engine reports the error with the event's position.
    fn apply(event: &Event, state: &mut State) -> Result<(), Error>;
}

/// What a projection says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// Lowercase letters, digits and `_`; also the name of the projection's schema.
    pub name: String,
    /// The projection's own version string, e.g. `1.4.0`.
    pub version: String,
    /// The events it receives.
    pub subscription: Subscription,
    /// Its read-model tables.
    pub tables: Vec<Table>,
}

impl Description {
    /// A projection named `name` at `version`, subscribed to everything, with no tables yet.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Description {
        Description {
            name: name.into(),
            version: version.into(),
            subscription: Subscription::default(),
            tables: Vec::new(),
        }
    }

    /// Receives only events of these types.
    pub fn event_types<S: Into<String>>(mut self, event_types: impl IntoIterator<Item = S>) -> Description {
        self.subscription.event_types = event_types.into_iter().map(Into::into).collect();
        self
    }

    /// Receives only events of streams of these categories.
    pub fn categories<S: Into<String>>(mut self, categories: impl IntoIterator<Item = S>) -> Description {
        self.subscription.categories = categories.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a table named `name`, created by `ddl` (see [`Table::ddl`]).
    pub fn table(mut self, name: impl Into<String>, ddl: impl Into<String>) -> Description {
        self.tables.push(Table { name: name.into(), ddl: ddl.into() });
        self
    }
}

/// Which events a projection receives. The host filters in SQL; an empty list means no
/// filter on that field, and both filters apply together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Event types, e.g. `["OrderCreated", "ItemAdded"]`.
    pub event_types: Vec<String>,
    /// Stream categories (the part of the stream id before the first `-`), e.g. `["order"]`.
    pub categories: Vec<String>,
}

impl Subscription {
    /// Whether the host hands `event` to the projection.
    pub fn matches(&self, event: &Event) -> bool {
        let wanted = |list: &[String], value: &str| list.is_empty() || list.iter().any(|item| item == value);
        wanted(&self.event_types, event.event_type()) && wanted(&self.categories, event.category())
    }
}

/// A read-model table of a projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The table's name, unqualified.
    pub name: String,
    /// `CREATE TABLE` statement (and any `CREATE INDEX`), unqualified: the host runs it
    /// inside the projection's own schema.
    pub ddl: String,
}
