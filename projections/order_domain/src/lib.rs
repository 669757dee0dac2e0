//! The order domain of `ORDER_DOMAIN.md`, shared by the example projections: the events as
//! Rust types and the lines of an order.
//!
//! Real systems share their event types the same way: one crate of event definitions, used
//! by every projection that reads them.

mod events;
#[cfg(feature = "fixtures")]
pub mod fixtures;
mod lines;

pub use events::{
    ITEM_ADDED, ITEM_REMOVED, ItemAdded, ItemRemoved, ORDER_CANCELLED, ORDER_CONFIRMED, ORDER_CREATED, ORDER_SHIPPED,
    OrderCreated, order_id,
};
pub use lines::{Line, Lines};
