//! The `revenue_by_day` projection: per UTC day, the orders confirmed that day and not
//! cancelled since, and the sum of their totals at confirmation, exactly as
//! `ORDER_DOMAIN.md` defines it.
//!
//! A cancellation must take an order out of the day it was counted on, with the total it
//! was counted with, so the projection keeps per-order state of its own in `order_state`:
//! the order's lines (to know its total when it is confirmed) and where it is counted.
//! A row of `order_state` also says that the order's `OrderCreated` has been seen: events
//! before it are ignored.
//!
//! Rules the specification leaves open follow the reference model of the tests: a
//! confirmation counts unless the order is counted already (so a confirmation after a
//! cancellation counts again, on its own day); only a cancellation takes an order out; a
//! confirmation that counts nothing creates no row; a repeated `OrderCreated` changes
//! nothing here.

use order_domain::{
    ITEM_ADDED, ITEM_REMOVED, ItemRemoved, Lines, ORDER_CANCELLED, ORDER_CONFIRMED, ORDER_CREATED, order_id,
};
use refract_sdk::{Cents, Date, Description, Error, Event, Key, Projection, Row, State, Value};

/// The read model.
pub const REVENUE_BY_DAY: &str = "revenue_by_day";
/// Per-order state.
pub const ORDER_STATE: &str = "order_state";

/// The `revenue_by_day` projection.
pub struct RevenueByDay;

impl Projection for RevenueByDay {
    fn describe() -> Description {
        Description::new("revenue_by_day", env!("CARGO_PKG_VERSION"))
            .event_types([ORDER_CREATED, ITEM_ADDED, ITEM_REMOVED, ORDER_CONFIRMED, ORDER_CANCELLED])
            .categories(["order"])
            .table(
                REVENUE_BY_DAY,
                "CREATE TABLE revenue_by_day (
                    day date PRIMARY KEY,
                    orders integer NOT NULL,
                    revenue numeric(14,2) NOT NULL
                )",
            )
            .table(
                ORDER_STATE,
                "CREATE TABLE order_state (
                    order_id uuid PRIMARY KEY,
                    lines jsonb NOT NULL,
                    counted_day date,
                    counted_total numeric(12,2)
                )",
            )
    }

    fn apply(event: &Event, state: &mut State) -> Result<(), Error> {
        let Some(order_id) = order_id(event)? else {
            return Ok(());
        };
        let key = Key::new("order_id", order_id);
        let Some(order) = state.get(ORDER_STATE, key.clone())? else {
            if event.event_type() == ORDER_CREATED {
                let order = Row::new()
                    .with("lines", Lines::default().to_value()?)
                    .with("counted_day", Value::Null)
                    .with("counted_total", Value::Null);
                state.put(ORDER_STATE, key, order)?;
            }
            // Before its OrderCreated the order does not exist.
            return Ok(());
        };
        let counted_day: Option<Date> = order.get("counted_day")?;
        let change = match event.event_type() {
            ITEM_ADDED => {
                let mut lines = Lines::read(order, "lines")?;
                lines.add(event.data()?)?;
                Row::new().with("lines", lines.to_value()?)
            }
            ITEM_REMOVED => {
                let mut lines = Lines::read(order, "lines")?;
                let removed: ItemRemoved = event.data()?;
                if lines.remove(&removed.product_id).is_none() {
                    return Ok(());
                }
                Row::new().with("lines", lines.to_value()?)
            }
            ORDER_CONFIRMED if counted_day.is_none() => {
                let day = event.timestamp().date();
                let total = Lines::read(order, "lines")?.total()?;
                count(state, day, 1, total)?;
                Row::new().with("counted_day", day).with("counted_total", total)
            }
            ORDER_CANCELLED => {
                let Some(day) = counted_day else {
                    return Ok(());
                };
                let total: Cents = order.get("counted_total")?;
                count(state, day, -1, -total)?;
                Row::new().with("counted_day", Value::Null).with("counted_total", Value::Null)
            }
            // A repeated OrderCreated or OrderConfirmed, and types not subscribed to.
            _ => return Ok(()),
        };
        state.put(ORDER_STATE, key, change)
    }
}

/// Adds `orders` orders worth `revenue` to `day`, without reading the day's row.
fn count(state: &mut State, day: Date, orders: i32, revenue: Cents) -> Result<(), Error> {
    state.add(REVENUE_BY_DAY, ("day", day), "orders", orders)?;
    state.add(REVENUE_BY_DAY, ("day", day), "revenue", revenue)
}

refract_sdk::export!(RevenueByDay);
