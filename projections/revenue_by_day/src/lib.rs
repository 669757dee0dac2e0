//! The `revenue_by_day` projection: per UTC day, the orders confirmed that day and not
//! cancelled since, and the sum of their totals at confirmation, exactly as
//! `ORDER_DOMAIN.md` defines it.
//!
//! A cancellation must take an order out of the day it was counted on, with the total it
//! was counted with, so the projection keeps per-order state of its own in `order_state`:
//! the order's lines (to know its total when it is confirmed) and where it is counted, as one
//! JSON document that the SDK keeps decoded between events ([`State::get_json`]).
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
use refract_sdk::{Cents, Date, Description, Error, Event, Key, Projection, State};
use serde::{Deserialize, Serialize};

/// The read model.
pub const REVENUE_BY_DAY: &str = "revenue_by_day";
/// Per-order state.
pub const ORDER_STATE: &str = "order_state";

/// What the projection keeps of an order, in `order_state.state`:
/// `{"lines": {"p1": {"quantity": 2, "unit_price": "9.99"}}, "counted": {"day": 19845, "total": "19.98"}}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OrderState {
    lines: Lines,
    /// Where the order is counted, if it is.
    counted: Option<Counted>,
}

/// The day an order is counted on and the total it was counted with.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Counted {
    /// Days since 1970-01-01 (UTC).
    day: i32,
    total: Cents,
}

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
            .table(ORDER_STATE, "CREATE TABLE order_state (order_id uuid PRIMARY KEY, state jsonb NOT NULL)")
    }

    fn apply(event: &Event, state: &mut State) -> Result<(), Error> {
        let Some(order_id) = order_id(event)? else {
            return Ok(());
        };
        let key = Key::new("order_id", order_id);
        let Some(order) = state.get_json::<OrderState>(ORDER_STATE, key.clone(), "state")? else {
            if event.event_type() == ORDER_CREATED {
                state.put_json(ORDER_STATE, key, "state", OrderState::default())?;
            }
            // Before its OrderCreated the order does not exist.
            return Ok(());
        };
        let mut order = order.clone();
        match event.event_type() {
            ITEM_ADDED => order.lines.add(event.data()?)?,
            ITEM_REMOVED => {
                let removed: ItemRemoved = event.data()?;
                if order.lines.remove(&removed.product_id).is_none() {
                    return Ok(());
                }
            }
            ORDER_CONFIRMED if order.counted.is_none() => {
                let counted = Counted { day: event.timestamp().date().days(), total: order.lines.total()? };
                count(state, counted, 1)?;
                order.counted = Some(counted);
            }
            ORDER_CANCELLED => {
                let Some(counted) = order.counted.take() else {
                    return Ok(());
                };
                count(state, counted, -1)?;
            }
            // A repeated OrderCreated or OrderConfirmed, and types not subscribed to.
            _ => return Ok(()),
        }
        state.put_json(ORDER_STATE, key, "state", order)
    }
}

/// Adds (`sign` 1) or takes out (-1) an order counted as `counted`, without reading the day's row.
fn count(state: &mut State, counted: Counted, sign: i32) -> Result<(), Error> {
    let day = ("day", Date::from_days(counted.day));
    state.add(REVENUE_BY_DAY, day, "orders", sign)?;
    state.add(REVENUE_BY_DAY, day, "revenue", if sign < 0 { -counted.total } else { counted.total })
}

refract_sdk::export!(RevenueByDay);
