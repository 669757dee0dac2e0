//! Write [Refract](https://example.invalid/refract) projections in Rust: ordinary functions
//! over typed events, built into sandboxed WebAssembly components the engine loads.
//!
//! A projection implements [`Projection`]: it [describes](Projection::describe) itself (name,
//! version, the events it subscribes to, the DDL of its tables) and
//! [applies](Projection::apply) one event at a time to its tables through [`State`].
//! [`export!`] turns it into a component; [`testing::Harness`] runs the same code natively.
//!
//! ```
//! use refract_sdk::{Cents, Description, Error, Event, Projection, State};
//! use serde::Deserialize;
//!
//! /// The data of an `ItemAdded` event; other fields of the JSON are ignored.
//! #[derive(Deserialize)]
//! struct ItemAdded {
//!     quantity: i64,
//!     price: Cents,
//! }
//!
//! /// The value of the items added to each order stream.
//! struct OrderValue;
//!
//! impl Projection for OrderValue {
//!     fn describe() -> Description {
//!         Description::new("order_value", "1.0.0")
//!             .event_types(["ItemAdded"])
//!             .categories(["order"])
//!             .table("order_value", "CREATE TABLE order_value (stream_id text PRIMARY KEY, value numeric(12,2) NOT NULL)")
//!     }
//!
//!     fn apply(event: &Event, state: &mut State) -> Result<(), Error> {
//!         let item: ItemAdded = event.data()?;
//!         let value = item.price.checked_mul(item.quantity)?;
//!         state.add("order_value", ("stream_id", event.stream_id()), "value", value)
//!     }
//! }
//!
//! refract_sdk::export!(OrderValue);
//!
//! // The same code, natively, over in-memory tables:
//! let mut harness = refract_sdk::testing::Harness::<OrderValue>::new();
//! harness.apply([
//!     Event::new("order-1", "ItemAdded", r#"{"product_id": "p1", "quantity": 3, "price": 0.1}"#),
//!     Event::new("order-1", "ItemAdded", r#"{"product_id": "p2", "quantity": 1, "price": 0.2}"#),
//!     Event::new("order-1", "OrderConfirmed", "{}"), // not subscribed: never applied
//! ])?;
//! let row = harness.row("order_value", ("stream_id", "order-1")).expect("a row");
//! assert_eq!(row.get::<Cents>("value")?.to_string(), "0.50");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Built with `cargo build --target wasm32-wasip2 --release`, a crate with
//! `crate-type = ["cdylib", "rlib"]` gives the component `target/wasm32-wasip2/release/NAME.wasm`.
//! `refract new NAME` scaffolds such a crate.
//!
//! The SDK makes [talc](https://docs.rs/talc) the component's global allocator (a projection
//! allocates for every event; talc is faster than WASI libc's dlmalloc). To set an allocator
//! of your own, depend on the SDK with `default-features = false` (feature `allocator`).
//!
//! # Behavior
//!
//! - **Batches.** The engine hands a projection the events it subscribes to in batches, in
//!   log order. `apply` runs for each event; when the batch ends, the writes it made become
//!   the batch's operations, which the engine writes in the same transaction as the
//!   projection's checkpoint.
//! - **One write per row.** Writes are kept in guest memory during a batch, and each
//!   touched row becomes a single upsert (columns set, or [added to](State::add)) or delete.
//! - **Reads.** [`State::get`] sees committed rows plus the batch's own writes. Rows are cached
//!   across batches (up to [`Projection::CACHE_ROWS`] per table, [`DEFAULT_CACHE_ROWS`] by
//!   default, which bounds the instance's memory); only a row the SDK does not know is read
//!   from the host. State kept in a JSON column and touched by every event is read with
//!   [`State::get_json`] and written with [`State::put_json`]: it stays decoded in the cache
//!   and is serialized once per row and batch.
//! - **Errors.** An [`Error`] from `apply` (a payload of the wrong shape, a value out of
//!   range, a rule of yours) refuses the whole batch: nothing of it is written, and the
//!   engine reports the message with the event's global position. The engine then starts a
//!   new instance, so the SDK never has to undo anything in its cache. A panic, by contrast,
//!   is a trap that kills the instance: return errors instead.
//! - **Determinism.** A component has no clock, randomness, files or network. Replaying the
//!   same events gives the same tables.
//!
//! # Types
//!
//! | Rust | WIT `value` | PostgreSQL |
//! |---|---|---|
//! | `bool` | `boolean` | `boolean` |
//! | `i16`, `i32`, `i64` (and `u8`, `u16`, `u32`) | `int(s64)` | `smallint`, `integer`, `bigint` |
//! | [`Cents`] | `numeric(string)`, e.g. `"12.30"` | `numeric(p, 2)` |
//! | [`Value::Numeric`] (any exact decimal text) | `numeric(string)` | `numeric` |
//! | `f64` | `float(f64)` | `real`, `double precision` |
//! | `String`, `&str` | `text(string)` | `text`, `varchar` |
//! | [`Json<T>`] to read, [`Value::json`] to write (or [`State::get_json`] / [`State::put_json`]) | `json(string)` | `json`, `jsonb` |
//! | [`Uuid`] | `uuid(string)`, hyphenated | `uuid` |
//! | [`Timestamp`] | `timestamp(s64)`, µs since the Unix epoch | `timestamptz` |
//! | [`Date`] | `date(s32)`, days since 1970-01-01 | `date` |
//! | `Option<T>` (`None`) | `null` | `NULL` |
//!
//! Write with `Into<Value>` (`row.set("total", cents)`), read with [`Row::get`]
//! (`row.get::<Cents>("total")?`).

#![deny(missing_docs)]

// Lets the generated bindings name this crate the way user crates do.
extern crate self as refract_sdk;

mod bytes;
mod decimal;
mod decoded;
mod error;
mod event;
#[cfg(target_arch = "wasm32")]
mod guest;
pub mod log;
mod money;
mod op;
#[cfg(any(target_arch = "wasm32", test))]
mod packed;
mod projection;
mod row;
mod runner;
mod state;
pub mod testing;
mod time;
mod uuid;
mod value;

pub use error::{Error, EventRef, ProjectionError};
pub use event::Event;
pub use money::Cents;
pub use op::{ColumnUpdate, Merge, Op};
pub use projection::{DEFAULT_CACHE_ROWS, Description, Projection, Subscription, Table};
pub use row::{Key, Row};
pub use state::State;
pub use time::{Date, Timestamp};
pub use uuid::Uuid;
pub use value::{FromValue, Json, Value};

/// Exports a [`Projection`] as the component's `projection` interface:
/// `refract_sdk::export!(MyProjection);` once, at the root of the crate.
///
/// It expands to nothing in native builds, so the crate's tests run without wasm.
#[macro_export]
macro_rules! export {
    ($projection:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct RefractComponent;

            impl $crate::__private::Guest for RefractComponent {
                fn describe() -> $crate::__private::wit::Description {
                    $crate::__private::describe::<$projection>()
                }

                fn apply(
                    events: ::std::vec::Vec<$crate::__private::wit::Event>,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<$crate::__private::wit::Op>,
                    $crate::__private::wit::ProjectionError,
                > {
                    $crate::__private::apply::<$projection>(events)
                }

                fn apply_packed(
                    events: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::__private::wit::ProjectionError> {
                    $crate::__private::apply_packed::<$projection>(events)
                }
            }

            $crate::__private::bindings::__export_projector!(RefractComponent with_types_in $crate::__private::bindings);
        };
    };
}

/// What [`export!`] expands to needs; not part of the API.
#[doc(hidden)]
#[cfg(target_arch = "wasm32")]
pub mod __private {
    pub use crate::guest::bindings::refract::projection::types as wit;
    pub use crate::guest::{Guest, apply, apply_packed, bindings, describe};
    pub use wit_bindgen;
}
