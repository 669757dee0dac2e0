//! Event sequences for the rules of `ORDER_DOMAIN.md`, each with the rows both read models
//! must hold afterwards, written by hand from the specification (and from the reference
//! model's decisions on what it leaves open), never computed by the projections' code.
//!
//! The projections' native tests and the engine's component tests run the same fixtures.

use std::collections::BTreeMap;

use refract_sdk::{Cents, Date, Error, Event, Row, Timestamp, Uuid};

pub mod spec;

/// Events and the read models they lead to.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// A short name, for messages.
    pub name: &'static str,
    /// The rule it pins, in the words of the specification.
    pub rule: &'static str,
    /// The log, in order: positions from 1, versions from 1 per stream.
    pub events: Vec<Event>,
    /// `order_summary` afterwards, ordered by `order_id`.
    pub order_summary: Vec<OrderSummaryRow>,
    /// `revenue_by_day` afterwards, ordered by `day`.
    pub revenue_by_day: Vec<RevenueRow>,
}

/// A row of `order_summary`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrderSummaryRow {
    /// `order_id`.
    pub order_id: Uuid,
    /// `customer_id`.
    pub customer_id: Uuid,
    /// `status`.
    pub status: String,
    /// `total`.
    pub total: Cents,
    /// `item_count`.
    pub item_count: i64,
    /// `version`.
    pub version: i64,
    /// `updated_at`.
    pub updated_at: Timestamp,
}

impl OrderSummaryRow {
    /// Reads a row of the table; an error names what is missing or of the wrong type.
    pub fn from_row(row: &Row) -> Result<OrderSummaryRow, Error> {
        Ok(OrderSummaryRow {
            order_id: row.get("order_id")?,
            customer_id: row.get("customer_id")?,
            status: row.get("status")?,
            total: row.get("total")?,
            item_count: row.get("item_count")?,
            version: row.get("version")?,
            updated_at: row.get("updated_at")?,
        })
    }
}

/// A row of `revenue_by_day`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RevenueRow {
    /// `day`.
    pub day: Date,
    /// `orders`.
    pub orders: i64,
    /// `revenue`.
    pub revenue: Cents,
}

impl RevenueRow {
    /// Reads a row of the table; an error names what is missing or of the wrong type.
    pub fn from_row(row: &Row) -> Result<RevenueRow, Error> {
        Ok(RevenueRow { day: row.get("day")?, orders: row.get("orders")?, revenue: row.get("revenue")? })
    }
}

/// Every fixture.
pub fn all() -> Vec<Fixture> {
    vec![
        created(),
        exact_cents(),
        same_product_keeps_first_price(),
        item_removed_drops_the_line(),
        item_removed_of_an_absent_product(),
        events_before_created_are_ignored(),
        latest_status_wins(),
        address_and_unknown_types_are_ignored(),
        second_confirmation_changes_nothing(),
        cancel_after_confirm(),
        utc_day_boundaries(),
        reconfirm_after_cancel(),
        shipped_then_cancelled(),
        repeated_order_created(),
        other_streams_are_ignored(),
    ]
}

/// The UUID of order `n` (its stream is `order-<uuid>`).
pub fn order(n: u32) -> Uuid {
    uuid(0x0d, n)
}

/// The UUID of customer `n`.
pub fn customer(n: u32) -> Uuid {
    uuid(0xc0, n)
}

fn uuid(kind: u8, n: u32) -> Uuid {
    format!("{kind:08x}-0000-4000-8000-{n:012x}").parse().expect("a well-formed UUID")
}

/// A log being written: positions and stream versions are assigned in order.
#[derive(Default)]
struct Log {
    events: Vec<Event>,
    versions: BTreeMap<String, i64>,
}

impl Log {
    fn append(&mut self, stream_id: &str, event_type: &str, data: &str, at: &str) -> &mut Log {
        let position = self.events.len() as i64 + 1;
        let version = self.versions.entry(stream_id.to_owned()).or_default();
        *version += 1;
        let event = Event::new(stream_id, event_type, data)
            .with_position(position)
            .with_version(*version)
            .with_id(format!("e0000000-0000-4000-8000-{position:012x}"))
            .with_timestamp(ts(at))
            .with_metadata(r#"{"correlation_id": "c1", "schema_version": 1}"#);
        self.events.push(event);
        self
    }

    fn order(&mut self, n: u32, event_type: &str, data: &str, at: &str) -> &mut Log {
        self.append(&format!("order-{}", order(n)), event_type, data, at)
    }

    fn created(&mut self, n: u32, customer_n: u32, at: &str) -> &mut Log {
        let data = format!(r#"{{"order_id": "{}", "customer_id": "{}"}}"#, order(n), customer(customer_n));
        self.order(n, "OrderCreated", &data, at)
    }

    /// `price` is the JSON number exactly as written to `events.data`.
    fn item(&mut self, n: u32, product: &str, quantity: i64, price: &str, at: &str) -> &mut Log {
        let data = format!(r#"{{"product_id": "{product}", "quantity": {quantity}, "price": {price}}}"#);
        self.order(n, "ItemAdded", &data, at)
    }

    fn removed(&mut self, n: u32, product: &str, at: &str) -> &mut Log {
        self.order(n, "ItemRemoved", &format!(r#"{{"product_id": "{product}"}}"#), at)
    }

    fn confirmed(&mut self, n: u32, at: &str) -> &mut Log {
        self.order(n, "OrderConfirmed", "{}", at)
    }

    fn cancelled(&mut self, n: u32, at: &str) -> &mut Log {
        self.order(n, "OrderCancelled", r#"{"reason": "changed my mind"}"#, at)
    }

    fn shipped(&mut self, n: u32, at: &str) -> &mut Log {
        self.order(n, "OrderShipped", r#"{"carrier": "DHL", "tracking_number": "1Z999"}"#, at)
    }

    fn take(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

fn ts(text: &str) -> Timestamp {
    text.parse().expect("a fixture timestamp")
}

fn cents(text: &str) -> Cents {
    text.parse().expect("a fixture amount")
}

/// An expected `order_summary` row.
fn summary(
    n: u32,
    customer_n: u32,
    status: &str,
    total: &str,
    item_count: i64,
    version: i64,
    at: &str,
) -> OrderSummaryRow {
    OrderSummaryRow {
        order_id: order(n),
        customer_id: customer(customer_n),
        status: status.to_owned(),
        total: cents(total),
        item_count,
        version,
        updated_at: ts(at),
    }
}

/// An expected `revenue_by_day` row.
fn revenue(day: &str, orders: i64, total: &str) -> RevenueRow {
    RevenueRow { day: day.parse().expect("a fixture day"), orders, revenue: cents(total) }
}

/// The fixture `created`; its [`Fixture::rule`] says what it pins.
pub fn created() -> Fixture {
    let mut log = Log::default();
    log.created(1, 1, "2024-05-01T09:00:00Z");
    Fixture {
        name: "created",
        rule: "OrderCreated makes a draft order with no lines",
        events: log.take(),
        order_summary: vec![summary(1, 1, "draft", "0.00", 0, 1, "2024-05-01T09:00:00Z")],
        revenue_by_day: vec![],
    }
}

/// The fixture `exact_cents`; its [`Fixture::rule`] says what it pins.
pub fn exact_cents() -> Fixture {
    let mut log = Log::default();
    log.created(1, 1, "2024-05-01T09:00:00Z")
        .item(1, "p1", 3, "0.1", "2024-05-01T09:01:00Z")
        .item(1, "p2", 1, "0.2", "2024-05-01T09:02:00Z")
        .item(1, "p3", 3, "9.99", "2024-05-01T09:03:00Z")
        .item(1, "p4", 1, "10", "2024-05-01T09:04:00Z")
        .item(1, "p5", 2, "1e1", "2024-05-01T09:05:00Z")
        .item(1, "p6", 1, "9.990", "2024-05-01T09:06:00Z")
        .confirmed(1, "2024-05-01T09:07:00Z");
    Fixture {
        name: "exact_cents",
        rule: "total is Σ quantity × unit price, exact to the cent: 0.30 + 0.20 + 29.97 + 10.00 + 20.00 + 9.99",
        events: log.take(),
        order_summary: vec![summary(1, 1, "confirmed", "70.46", 11, 8, "2024-05-01T09:07:00Z")],
        revenue_by_day: vec![revenue("2024-05-01", 1, "70.46")],
    }
}

/// The fixture `same_product_keeps_first_price`; its [`Fixture::rule`] says what it pins.
pub fn same_product_keeps_first_price() -> Fixture {
    let mut log = Log::default();
    log.created(1, 1, "2024-05-01T09:00:00Z")
        .item(1, "p1", 1, "5.00", "2024-05-01T09:01:00Z")
        .item(1, "p1", 2, "7.00", "2024-05-01T09:02:00Z")
        .confirmed(1, "2024-05-01T09:03:00Z");
    Fixture {
        name: "same_product_keeps_first_price",
        rule: "ItemAdded for a product already in the order adds to its quantity and keeps the first unit price",
        events: log.take(),
        order_summary: vec![summary(1, 1, "confirmed", "15.00", 3, 4, "2024-05-01T09:03:00Z")],
        revenue_by_day: vec![revenue("2024-05-01", 1, "15.00")],
    }
}

/// The fixture `item_removed_drops_the_line`; its [`Fixture::rule`] says what it pins.
pub fn item_removed_drops_the_line() -> Fixture {
    let mut log = Log::default();
    log.created(1, 1, "2024-05-01T09:00:00Z")
        .item(1, "p1", 2, "3.50", "2024-05-01T09:01:00Z")
        .item(1, "p2", 1, "1.25", "2024-05-01T09:02:00Z")
        .item(1, "p1", 1, "3.50", "2024-05-01T09:03:00Z")
        .removed(1, "p1", "2024-05-01T09:04:00Z")
        .confirmed(1, "2024-05-01T09:05:00Z");
    Fixture {
        name: "item_removed_drops_the_line",
        rule: "ItemRemoved drops the whole line, all 3 of p1, not only the last quantity added",
        events: log.take(),
        order_summary: vec![summary(1, 1, "confirmed", "1.25", 1, 6, "2024-05-01T09:05:00Z")],
        revenue_by_day: vec![revenue("2024-05-01", 1, "1.25")],
    }
}

/// The fixture `item_removed_of_an_absent_product`; its [`Fixture::rule`] says what it pins.
pub fn item_removed_of_an_absent_product() -> Fixture {
    let mut log = Log::default();
    log.created(1, 1, "2024-05-01T09:00:00Z")
        .item(1, "p1", 1, "2.00", "2024-05-01T09:01:00Z")
        .removed(1, "p9", "2024-05-01T09:02:00Z")
        .removed(1, "p1", "2024-05-01T09:03:00Z")
        .removed(1, "p1", "2024-05-01T09:04:00Z");
    Fixture {
        name: "item_removed_of_an_absent_product",
        rule: "ItemRemoved of a product not in the order changes nothing but version and updated_at",
        events: log.take(),
        order_summary: vec![summary(1, 1, "draft", "0.00", 0, 5, "2024-05-01T09:04:00Z")],
        revenue_by_day: vec![],
    }
}

/// The fixture `events_before_created_are_ignored`; its [`Fixture::rule`] says what it pins.
pub fn events_before_created_are_ignored() -> Fixture {
    let mut log = Log::default();
    log.item(1, "p1", 1, "1.00", "2024-05-01T09:00:00Z")
        .confirmed(1, "2024-05-01T09:01:00Z")
        .removed(1, "p1", "2024-05-01T09:02:00Z")
        .created(1, 1, "2024-05-01T09:03:00Z")
        .item(1, "p2", 2, "2.00", "2024-05-01T09:04:00Z");
    // Another order whose OrderCreated never comes.
    log.item(2, "p1", 1, "1.00", "2024-05-01T09:05:00Z").confirmed(2, "2024-05-01T09:06:00Z");
    Fixture {
        name: "events_before_created_are_ignored",
        rule: "events of a stream before its OrderCreated are ignored, by both read models",
        events: log.take(),
        order_summary: vec![summary(1, 1, "draft", "4.00", 2, 5, "2024-05-01T09:04:00Z")],
        revenue_by_day: vec![],
    }
}

/// The fixture `latest_status_wins`; its [`Fixture::rule`] says what it pins.
pub fn latest_status_wins() -> Fixture {
    let mut log = Log::default();
    log.created(1, 1, "2024-05-01T09:00:00Z")
        .created(2, 2, "2024-05-01T09:00:01Z")
        .created(3, 3, "2024-05-01T09:00:02Z")
        .item(1, "p1", 1, "10.00", "2024-05-01T09:01:00Z")
        .item(2, "p1", 1, "5.00", "2024-05-01T09:01:01Z")
        .item(3, "p1", 1, "7.00", "2024-05-01T09:01:02Z")
        .confirmed(1, "2024-05-01T10:00:00Z")
        .confirmed(2, "2024-05-01T10:00:01Z")
        .cancelled(3, "2024-05-01T10:00:02Z")
        .shipped(1, "2024-05-02T08:00:00Z")
        .cancelled(2, "2024-05-02T08:00:01Z")
        .confirmed(3, "2024-05-03T08:00:02Z");
    Fixture {
        name: "latest_status_wins",
        rule: "the latest of OrderConfirmed, OrderCancelled, OrderShipped sets the status; shipping keeps \
               revenue, cancelling takes it out, a cancellation without confirmation changes no revenue",
        events: log.take(),
        order_summary: vec![
            summary(1, 1, "shipped", "10.00", 1, 4, "2024-05-02T08:00:00Z"),
            summary(2, 2, "cancelled", "5.00", 1, 4, "2024-05-02T08:00:01Z"),
            summary(3, 3, "confirmed", "7.00", 1, 4, "2024-05-03T08:00:02Z"),
        ],
        revenue_by_day: vec![revenue("2024-05-01", 1, "10.00"), revenue("2024-05-03", 1, "7.00")],
    }
}

/// The fixture `address_and_unknown_types_are_ignored`; its [`Fixture::rule`] says what it pins.
pub fn address_and_unknown_types_are_ignored() -> Fixture {
    let mut log = Log::default();
    log.created(1, 1, "2024-05-01T09:00:00Z")
        .item(1, "p1", 1, "1.00", "2024-05-01T09:01:00Z")
        .order(
            1,
            "ShippingAddressUpdated",
            r#"{"address": {"street": "1 Main St", "city": "Oslo", "country": "NO"}}"#,
            "2024-05-01T09:02:00Z",
        )
        .order(1, "CouponApplied", r#"{"code": "X"}"#, "2024-05-01T09:03:00Z");
    Fixture {
        name: "address_and_unknown_types_are_ignored",
        rule: "ShippingAddressUpdated and unknown types change nothing, not even version and updated_at",
        events: log.take(),
        order_summary: vec![summary(1, 1, "draft", "1.00", 1, 2, "2024-05-01T09:01:00Z")],
        revenue_by_day: vec![],
    }
}

/// The fixture `second_confirmation_changes_nothing`; its [`Fixture::rule`] says what it pins.
pub fn second_confirmation_changes_nothing() -> Fixture {
    let mut log = Log::default();
    log.created(1, 1, "2024-05-01T09:00:00Z")
        .item(1, "p1", 1, "20.00", "2024-05-01T09:01:00Z")
        .confirmed(1, "2024-05-01T10:00:00Z")
        .item(1, "p2", 1, "5.00", "2024-05-01T11:00:00Z")
        .confirmed(1, "2024-05-02T10:00:00Z");
    Fixture {
        name: "second_confirmation_changes_nothing",
        rule: "a second OrderConfirmed of a confirmed order changes no revenue and creates no row; \
               an ItemAdded after confirmation still adds the item",
        events: log.take(),
        order_summary: vec![summary(1, 1, "confirmed", "25.00", 2, 5, "2024-05-02T10:00:00Z")],
        revenue_by_day: vec![revenue("2024-05-01", 1, "20.00")],
    }
}

/// The fixture `cancel_after_confirm`; its [`Fixture::rule`] says what it pins.
pub fn cancel_after_confirm() -> Fixture {
    let mut log = Log::default();
    log.created(1, 1, "2024-05-01T09:00:00Z")
        .created(2, 2, "2024-05-01T09:00:01Z")
        .item(1, "p1", 2, "10.00", "2024-05-01T09:01:00Z")
        .item(2, "p1", 1, "3.00", "2024-05-01T09:01:01Z")
        .confirmed(1, "2024-05-01T10:00:00Z")
        .confirmed(2, "2024-05-01T10:00:01Z")
        .item(1, "p2", 1, "1.00", "2024-05-01T12:00:00Z")
        .cancelled(1, "2024-05-02T09:00:00Z")
        .created(3, 1, "2024-05-03T09:00:00Z")
        .item(3, "p1", 1, "4.00", "2024-05-03T09:01:00Z")
        .confirmed(3, "2024-05-03T10:00:00Z")
        .cancelled(3, "2024-05-03T11:00:00Z");
    Fixture {
        name: "cancel_after_confirm",
        rule: "OrderCancelled after OrderConfirmed takes the order out of its confirmation day with its total \
               at confirmation; a day whose orders fall to 0 keeps its row with revenue 0.00",
        events: log.take(),
        order_summary: vec![
            summary(1, 1, "cancelled", "21.00", 3, 5, "2024-05-02T09:00:00Z"),
            summary(2, 2, "confirmed", "3.00", 1, 3, "2024-05-01T10:00:01Z"),
            summary(3, 1, "cancelled", "4.00", 1, 4, "2024-05-03T11:00:00Z"),
        ],
        revenue_by_day: vec![revenue("2024-05-01", 1, "3.00"), revenue("2024-05-03", 0, "0.00")],
    }
}

/// The fixture `utc_day_boundaries`; its [`Fixture::rule`] says what it pins.
pub fn utc_day_boundaries() -> Fixture {
    let mut log = Log::default();
    log.created(1, 1, "2024-04-30T20:00:00Z")
        .created(2, 2, "2024-04-30T20:00:01Z")
        .created(3, 3, "2024-04-30T20:00:02Z")
        .item(1, "p1", 1, "1.10", "2024-04-30T20:01:00Z")
        .item(2, "p1", 1, "2.20", "2024-04-30T20:01:01Z")
        .item(3, "p1", 1, "3.30", "2024-04-30T20:01:02Z")
        .confirmed(1, "2024-05-01T00:00:00Z")
        .confirmed(2, "2024-05-01T23:59:59.999999Z")
        .confirmed(3, "2024-05-02T00:00:00Z");
    Fixture {
        name: "utc_day_boundaries",
        rule: "the day is the UTC date of the OrderConfirmed event's timestamp",
        events: log.take(),
        order_summary: vec![
            summary(1, 1, "confirmed", "1.10", 1, 3, "2024-05-01T00:00:00Z"),
            summary(2, 2, "confirmed", "2.20", 1, 3, "2024-05-01T23:59:59.999999Z"),
            summary(3, 3, "confirmed", "3.30", 1, 3, "2024-05-02T00:00:00Z"),
        ],
        revenue_by_day: vec![revenue("2024-05-01", 2, "3.30"), revenue("2024-05-02", 1, "3.30")],
    }
}

/// The fixture `reconfirm_after_cancel`; its [`Fixture::rule`] says what it pins.
pub fn reconfirm_after_cancel() -> Fixture {
    let mut log = Log::default();
    log.created(1, 1, "2024-05-01T09:00:00Z")
        .item(1, "p1", 1, "10.00", "2024-05-01T09:01:00Z")
        .confirmed(1, "2024-05-01T10:00:00Z")
        .cancelled(1, "2024-05-02T10:00:00Z")
        .item(1, "p2", 1, "5.00", "2024-05-03T09:00:00Z")
        .confirmed(1, "2024-05-03T10:00:00Z");
    Fixture {
        name: "reconfirm_after_cancel",
        rule: "a confirmation after a cancellation counts again, on its own day, with the total at that moment",
        events: log.take(),
        order_summary: vec![summary(1, 1, "confirmed", "15.00", 2, 6, "2024-05-03T10:00:00Z")],
        revenue_by_day: vec![revenue("2024-05-01", 0, "0.00"), revenue("2024-05-03", 1, "15.00")],
    }
}

/// The fixture `shipped_then_cancelled`; its [`Fixture::rule`] says what it pins.
pub fn shipped_then_cancelled() -> Fixture {
    let mut log = Log::default();
    log.created(1, 1, "2024-05-01T09:00:00Z")
        .item(1, "p1", 1, "8.00", "2024-05-01T09:01:00Z")
        .confirmed(1, "2024-05-01T10:00:00Z")
        .shipped(1, "2024-05-02T10:00:00Z")
        .confirmed(1, "2024-05-03T10:00:00Z")
        .cancelled(1, "2024-05-04T10:00:00Z")
        .cancelled(1, "2024-05-05T10:00:00Z");
    Fixture {
        name: "shipped_then_cancelled",
        rule: "only OrderCancelled takes an order out of revenue; a repeated cancellation changes nothing",
        events: log.take(),
        order_summary: vec![summary(1, 1, "cancelled", "8.00", 1, 7, "2024-05-05T10:00:00Z")],
        revenue_by_day: vec![revenue("2024-05-01", 0, "0.00")],
    }
}

/// The fixture `repeated_order_created`; its [`Fixture::rule`] says what it pins.
pub fn repeated_order_created() -> Fixture {
    let mut log = Log::default();
    log.created(1, 1, "2024-05-01T09:00:00Z")
        .item(1, "p1", 1, "3.00", "2024-05-01T09:01:00Z")
        .confirmed(1, "2024-05-01T10:00:00Z")
        .created(1, 2, "2024-05-02T09:00:00Z");
    Fixture {
        name: "repeated_order_created",
        rule: "a repeated OrderCreated sets customer_id and status draft, keeps the lines, and leaves revenue alone",
        events: log.take(),
        order_summary: vec![summary(1, 2, "draft", "3.00", 1, 4, "2024-05-02T09:00:00Z")],
        revenue_by_day: vec![revenue("2024-05-01", 1, "3.00")],
    }
}

/// The fixture `other_streams_are_ignored`; its [`Fixture::rule`] says what it pins.
pub fn other_streams_are_ignored() -> Fixture {
    let mut log = Log::default();
    let created = format!(r#"{{"order_id": "{}", "customer_id": "{}"}}"#, order(1), customer(1));
    for stream in [format!("customer-{}", order(1)), format!("orders-{}", order(1)), "order".to_owned()] {
        log.append(&stream, "OrderCreated", &created, "2024-05-01T09:00:00Z")
            .append(
                &stream,
                "ItemAdded",
                r#"{"product_id": "p1", "quantity": 1, "price": 1.00}"#,
                "2024-05-01T09:01:00Z",
            )
            .append(&stream, "OrderConfirmed", "{}", "2024-05-01T09:02:00Z");
    }
    Fixture {
        name: "other_streams_are_ignored",
        rule: "only streams `order-<uuid>` are orders",
        events: log.take(),
        order_summary: vec![],
        revenue_by_day: vec![],
    }
}

/// A log whose event at position 2 is an `ItemAdded` whose data has the wrong shape
/// (`quantity` is a string): applying it must fail with an error naming that event.
pub fn wrong_shape() -> Vec<Event> {
    let mut log = Log::default();
    log.created(1, 1, "2024-05-01T09:00:00Z")
        .order(1, "ItemAdded", r#"{"product_id": "p1", "quantity": "two", "price": 1.00}"#, "2024-05-01T09:01:00Z")
        .confirmed(1, "2024-05-01T09:02:00Z");
    log.take()
}

/// A log whose event at position 2 adds an item at 9.999, not a whole number of cents:
/// applying it must fail with an error naming that event.
pub fn fraction_of_a_cent() -> Vec<Event> {
    let mut log = Log::default();
    log.created(1, 1, "2024-05-01T09:00:00Z").item(1, "p1", 1, "9.999", "2024-05-01T09:01:00Z");
    log.take()
}
