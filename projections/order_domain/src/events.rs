//! The events of an order stream, as `events.data` holds them.

use refract_sdk::{Cents, Error, Event, Uuid};
use serde::Deserialize;

/// `OrderCreated`: the first event of an order stream.
pub const ORDER_CREATED: &str = "OrderCreated";
/// `ItemAdded`.
pub const ITEM_ADDED: &str = "ItemAdded";
/// `ItemRemoved`.
pub const ITEM_REMOVED: &str = "ItemRemoved";
/// `OrderConfirmed`.
pub const ORDER_CONFIRMED: &str = "OrderConfirmed";
/// `OrderCancelled`.
pub const ORDER_CANCELLED: &str = "OrderCancelled";
/// `OrderShipped`.
pub const ORDER_SHIPPED: &str = "OrderShipped";

/// The data of `OrderCreated`. Its `order_id` is not read: the stream id says which order
/// it is.
#[derive(Debug, Deserialize)]
pub struct OrderCreated {
    /// The customer.
    pub customer_id: Uuid,
}

/// The data of `ItemAdded`.
#[derive(Debug, Deserialize)]
pub struct ItemAdded {
    /// The product.
    pub product_id: String,
    /// How many, > 0.
    pub quantity: i64,
    /// Unit price, a JSON number with at most 2 decimal places.
    pub price: Cents,
}

/// The data of `ItemRemoved`.
#[derive(Debug, Deserialize)]
pub struct ItemRemoved {
    /// The product whose line is removed.
    pub product_id: String,
}

/// The order an event belongs to: the UUID of its `order-<uuid>` stream. `None` for a
/// stream of another category; an error for an `order-` stream whose id is not a UUID.
pub fn order_id(event: &Event) -> Result<Option<Uuid>, Error> {
    match event.stream_id().split_once('-') {
        Some(("order", id)) => id.parse().map(Some),
        _ => Ok(None),
    }
}
