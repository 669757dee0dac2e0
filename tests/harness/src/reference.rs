//! An independent model of the two read models of the order domain (`ORDER_DOMAIN.md`):
//! the yardstick that the engine's `order_summary` and `revenue_by_day` are compared with.
//!
//! It is written from the specification alone, without looking at the projections, and it
//! works differently from them: it sees all committed events at once, groups them per stream
//! and folds each stream in version order. Money is kept in integer cents and parsed from
//! the JSON text of the event, never through `f64`.
//!
//! # Decisions on what the specification leaves open
//!
//! The projections must decide these the same way; each is pinned by a unit test below.
//!
//! 1. **Re-confirmation after a cancellation counts again.** The spec says a second
//!    `OrderConfirmed` of an order that is "already confirmed and not cancelled" changes
//!    nothing; an order that was confirmed and then cancelled is not such an order, so a later
//!    `OrderConfirmed` counts it again, on the UTC day of that new event, with the order's
//!    total at that new moment. (The old day keeps its row, with the order taken out.)
//! 2. **Only `OrderCancelled` takes an order out of revenue.** `OrderShipped` (or a repeated
//!    `OrderCreated`) does not: a confirmed, shipped order confirmed again changes nothing, and a
//!    shipped order cancelled later is taken out of its confirmation day.
//! 3. **A cancellation that does not follow a counted confirmation** (never confirmed, or
//!    already cancelled) changes nothing in `revenue_by_day`.
//! 4. **A confirmation that counts nothing creates no row.** A `revenue_by_day` row is created
//!    by a counting `OrderConfirmed` only; a repeated confirmation on another day creates none.
//! 5. **Revenue uses the total at confirmation.** Items added or removed after the counting
//!    confirmation change `order_summary.total` but not `revenue_by_day`; a later
//!    cancellation subtracts the total recorded at confirmation, from the confirmation day.
//! 6. **Events before `OrderCreated` are ignored by both read models** (not only by
//!    `order_summary`): before it the order does not exist, so an early `OrderConfirmed`
//!    counts nothing and an early `ItemAdded` adds no line.
//! 7. **A repeated `OrderCreated`** (outside the domain: the spec calls it the first event of
//!    a stream; the workload never writes one) is applied to the letter of the columns' rules:
//!    `customer_id` from it, `status` back to `draft`, lines kept, `version`/`updated_at`
//!    advance; `revenue_by_day` unchanged (decision 2).
//! 8. **Order streams are recognised by their id** `order-<uuid>` (category `order`, the part
//!    before the first `-`, as the WIT contract defines categories); events of other
//!    categories are ignored. The order id comes from the stream id; `data.order_id` is not
//!    read.
//! 9. **Only the fields the read models use are read**, extra fields are allowed:
//!    `customer_id` (a UUID string), `product_id` (a string), `quantity` (an integer > 0),
//!    `price` (a JSON number ≥ 0, a whole number of cents: `9.99`, `10`, `0.1`, `9.990`,
//!    `1e1` are fine, `9.999` is not). `OrderConfirmed`, `OrderCancelled`, `OrderShipped`,
//!    `ShippingAddressUpdated` and unknown types are not parsed at all.
//! 10. **Events outside the domain have no expected outcome**: a malformed handled event, an
//!     `order-` stream whose id is not a UUID, two events with one version in a stream, or an
//!     order total beyond `numeric(12,2)`. [`compute`] reports them as [`InvalidEvent`]
//!     instead of guessing what a projection should make of them.

use std::collections::BTreeMap;
use std::fmt::{Debug, Display};

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_postgres::Client;
use uuid::Uuid;

/// One committed event, as the reference model needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefEvent {
    /// `events.stream_id`, e.g. `order-3f1c…`.
    pub stream_id: String,
    /// `events.version`: the event's version within its stream.
    pub version: i64,
    /// `events.event_type`.
    pub event_type: String,
    /// `events.data` as JSON text. Text, not a parsed value, so that prices stay exact.
    pub data: String,
    /// `events.timestamp`.
    pub timestamp: DateTime<Utc>,
}

/// The content of both read models: what the engine's tables must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// `order_summary.order_summary`, by `order_id`.
    pub order_summary: BTreeMap<Uuid, OrderSummaryRow>,
    /// `revenue_by_day.revenue_by_day`, by `day`.
    pub revenue_by_day: BTreeMap<NaiveDate, RevenueRow>,
}

/// A row of `order_summary` (its key, `order_id`, is the map key of [`Expected`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSummaryRow {
    /// `customer_id`.
    pub customer_id: Uuid,
    /// `status`: `draft`, `confirmed`, `cancelled` or `shipped`. Text rather than an enum so
    /// that a read model holding anything else can still be shown in a diff.
    pub status: String,
    /// `total` in cents.
    pub total_cents: i64,
    /// `item_count`.
    pub item_count: i64,
    /// `version`: stream version of the last event applied.
    pub version: i64,
    /// `updated_at`: timestamp of the last event applied.
    pub updated_at: DateTime<Utc>,
}

/// A row of `revenue_by_day` (its key, `day`, is the map key of [`Expected`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevenueRow {
    /// `orders`: orders confirmed that day and not cancelled since.
    pub orders: i64,
    /// `revenue` in cents.
    pub revenue_cents: i64,
}

/// An event for which the specification defines no outcome (decision 10).
#[derive(Debug, thiserror::Error)]
#[error("event {stream_id} v{version} ({event_type}): {problem}")]
pub struct InvalidEvent {
    /// The event's stream.
    pub stream_id: String,
    /// The event's version.
    pub version: i64,
    /// The event's type.
    pub event_type: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Computes both read models from committed events, given in any order.
pub fn compute(events: impl IntoIterator<Item = RefEvent>) -> Result<Expected, InvalidEvent> {
    let mut streams: BTreeMap<String, Vec<RefEvent>> = BTreeMap::new();
    for event in events {
        streams.entry(event.stream_id.clone()).or_default().push(event);
    }
    let mut expected = Expected::default();
    for (stream_id, mut events) in streams {
        events.sort_by_key(|event| event.version);
        if let Some(pair) = events.windows(2).find(|pair| pair[0].version == pair[1].version) {
            return Err(invalid(&pair[1], "a second event with this version in its stream"));
        }
        let Some(order_id) = order_id(&stream_id).map_err(|problem| invalid(&events[0], problem))? else {
            continue;
        };
        let mut order: Option<Order> = None;
        for event in &events {
            apply(&mut order, event, &mut expected.revenue_by_day).map_err(|problem| invalid(event, problem))?;
        }
        if let Some(order) = order {
            expected.order_summary.insert(order_id, order.row());
        }
    }
    Ok(expected)
}

/// The order id of an order stream; `None` for a stream of another category.
fn order_id(stream_id: &str) -> Result<Option<Uuid>, String> {
    match stream_id.split_once('-') {
        Some(("order", id)) => {
            Uuid::parse_str(id).map(Some).map_err(|error| format!("order stream id is not `order-<uuid>`: {error}"))
        }
        _ => Ok(None),
    }
}

fn invalid(event: &RefEvent, problem: impl Into<String>) -> InvalidEvent {
    InvalidEvent {
        stream_id: event.stream_id.clone(),
        version: event.version,
        event_type: event.event_type.clone(),
        problem: problem.into(),
    }
}

/// The largest `total` that `numeric(12,2)` can hold, in cents.
const MAX_TOTAL_CENTS: i64 = 999_999_999_999;

/// The state of one order while its stream is folded.
struct Order {
    customer_id: Uuid,
    status: &'static str,
    /// Lines by product id.
    lines: BTreeMap<String, Line>,
    version: i64,
    updated_at: DateTime<Utc>,
    /// Where the order counts in `revenue_by_day`: set by a counting confirmation, taken by
    /// a cancellation.
    counted: Option<Confirmation>,
}

struct Line {
    quantity: i64,
    unit_price_cents: i64,
}

struct Confirmation {
    day: NaiveDate,
    total_cents: i64,
}

impl Order {
    fn total_cents(&self) -> i64 {
        // Bounded by MAX_TOTAL_CENTS on every change of the lines.
        self.lines.values().map(|line| line.quantity * line.unit_price_cents).sum()
    }

    fn row(&self) -> OrderSummaryRow {
        OrderSummaryRow {
            customer_id: self.customer_id,
            status: self.status.to_owned(),
            total_cents: self.total_cents(),
            item_count: self.lines.values().map(|line| line.quantity).sum(),
            version: self.version,
            updated_at: self.updated_at,
        }
    }

    fn add_item(&mut self, item: ItemAdded<'_>) -> Result<(), String> {
        if item.quantity <= 0 {
            return Err(format!("quantity {} is not > 0", item.quantity));
        }
        let price_text = item.price.get();
        let unit_price_cents = parse_cents(price_text).map_err(|problem| format!("price `{price_text}`: {problem}"))?;
        if unit_price_cents < 0 {
            return Err(format!("price `{price_text}` is negative"));
        }
        // The first unit price recorded for a line stays.
        let line = self.lines.entry(item.product_id).or_insert(Line { quantity: 0, unit_price_cents });
        line.quantity = line.quantity.checked_add(item.quantity).ok_or("quantity overflows")?;
        let total = self.lines.values().try_fold(0_i64, |total, line| {
            line.quantity
                .checked_mul(line.unit_price_cents)
                .and_then(|value| total.checked_add(value))
                .filter(|total| *total <= MAX_TOTAL_CENTS)
        });
        match total {
            Some(_) => Ok(()),
            None => Err("order total exceeds numeric(12,2)".to_owned()),
        }
    }
}

#[derive(Deserialize)]
struct OrderCreated {
    customer_id: Uuid,
}

#[derive(Deserialize)]
struct ItemAdded<'a> {
    product_id: String,
    quantity: i64,
    #[serde(borrow)]
    price: &'a RawValue,
}

#[derive(Deserialize)]
struct ItemRemoved {
    product_id: String,
}

fn parse_data<'a, T: Deserialize<'a>>(data: &'a str) -> Result<T, String> {
    serde_json::from_str(data).map_err(|error| format!("data {data}: {error}"))
}

/// Applies one event (of a stream, in version order) to its order, `None` until the
/// order's `OrderCreated`, and to `revenue_by_day`.
fn apply(
    slot: &mut Option<Order>,
    event: &RefEvent,
    revenue_by_day: &mut BTreeMap<NaiveDate, RevenueRow>,
) -> Result<(), String> {
    let order = if event.event_type == "OrderCreated" {
        let created: OrderCreated = parse_data(&event.data)?;
        let order = slot.get_or_insert_with(|| Order {
            customer_id: created.customer_id,
            status: "draft",
            lines: BTreeMap::new(),
            version: event.version,
            updated_at: event.timestamp,
            counted: None,
        });
        order.customer_id = created.customer_id;
        order.status = "draft";
        order
    } else {
        // Before its OrderCreated the order does not exist (decision 6).
        let Some(order) = slot.as_mut() else {
            return Ok(());
        };
        match event.event_type.as_str() {
            "ItemAdded" => order.add_item(parse_data(&event.data)?)?,
            "ItemRemoved" => {
                let removed: ItemRemoved = parse_data(&event.data)?;
                order.lines.remove(&removed.product_id);
            }
            "OrderConfirmed" => {
                order.status = "confirmed";
                if order.counted.is_none() {
                    let confirmation =
                        Confirmation { day: event.timestamp.date_naive(), total_cents: order.total_cents() };
                    let row = revenue_by_day.entry(confirmation.day).or_default();
                    row.orders += 1;
                    row.revenue_cents += confirmation.total_cents;
                    order.counted = Some(confirmation);
                }
            }
            "OrderCancelled" => {
                order.status = "cancelled";
                if let Some(confirmation) = order.counted.take() {
                    let row =
                        revenue_by_day.get_mut(&confirmation.day).expect("a counted confirmation has its day's row");
                    row.orders -= 1;
                    row.revenue_cents -= confirmation.total_cents;
                }
            }
            "OrderShipped" => order.status = "shipped",
            // ShippingAddressUpdated and unknown types: no change, not even the version.
            _ => return Ok(()),
        }
        order
    };
    order.version = event.version;
    order.updated_at = event.timestamp;
    Ok(())
}

/// Parses a decimal number in JSON or PostgreSQL `numeric` text form (`9.99`, `10`, `-0.1`,
/// `9.990`, `1.5e1`) into cents, exactly: an error when it is not a whole number of cents.
fn parse_cents(text: &str) -> Result<i64, &'static str> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().map_err(|_| "not a decimal number")?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let is_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !is_digits(whole) || !is_digits(fraction) || (mantissa.contains('.') && fraction.is_empty())
    {
        return Err("not a decimal number");
    }
    // value = digits × 10^(exponent − fraction length), so cents = digits × 10^shift.
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    let shift = i64::from(exponent) - fraction.len() as i64 + 2;
    let kept = if shift < 0 {
        let cut = usize::try_from(-shift).unwrap_or(usize::MAX);
        let (kept, dropped) = digits.split_at(digits.len().saturating_sub(cut));
        if dropped.bytes().any(|byte| byte != b'0') {
            return Err("not a whole number of cents");
        }
        kept
    } else {
        digits
    };
    if kept.is_empty() {
        return Ok(0);
    }
    let scale = u32::try_from(shift.max(0)).ok().and_then(|shift| 10_i64.checked_pow(shift));
    let cents =
        kept.parse::<i64>().ok().zip(scale).and_then(|(kept, scale)| kept.checked_mul(scale)).ok_or("out of range")?;
    Ok(if negative { -cents } else { cents })
}

/// Computes both read models from the committed events of the `events` table in `schema`.
pub async fn expected_from_db(client: &Client, schema: &str) -> anyhow::Result<Expected> {
    let sql =
        format!("SELECT stream_id, version, event_type, data::text, timestamp FROM {}", qualified(schema, "events"));
    let rows = client
        .query_raw(&sql, std::iter::empty::<&str>())
        .await
        .with_context(|| format!("reading the events of schema {schema}"))?;
    let events: Vec<RefEvent> = rows
        .map_ok(|row| RefEvent {
            stream_id: row.get(0),
            version: row.get(1),
            event_type: row.get(2),
            data: row.get(3),
            timestamp: row.get(4),
        })
        .try_collect()
        .await
        .with_context(|| format!("reading the events of schema {schema}"))?;
    Ok(compute(events)?)
}

/// Reads what the engine wrote: `order_summary.order_summary` and
/// `revenue_by_day.revenue_by_day`, numerics converted to cents exactly.
pub async fn actual_from_db(client: &Client) -> anyhow::Result<Expected> {
    let mut actual =
        Expected { order_summary: order_summary_from(client, "order_summary").await?, ..Default::default() };
    let rows = client
        .query("SELECT day, orders::bigint, revenue::text FROM revenue_by_day.revenue_by_day", &[])
        .await
        .context("reading revenue_by_day.revenue_by_day")?;
    for row in rows {
        let day: NaiveDate = row.get(0);
        let revenue: String = row.get(2);
        let revenue_cents = cents_of_numeric(&revenue).with_context(|| format!("revenue_by_day row {day}"))?;
        actual.revenue_by_day.insert(day, RevenueRow { orders: row.get(1), revenue_cents });
    }
    Ok(actual)
}

/// Reads the `order_summary` table of `schema` (a projection's stable schema, or one that
/// `refract rebuild --into` built), numerics converted to cents exactly.
pub async fn order_summary_from(client: &Client, schema: &str) -> anyhow::Result<BTreeMap<Uuid, OrderSummaryRow>> {
    let table = qualified(schema, "order_summary");
    let sql = format!(
        "SELECT order_id, customer_id, status, total::text, item_count::bigint, version, updated_at FROM {table}"
    );
    let rows = client.query(&sql, &[]).await.with_context(|| format!("reading {table}"))?;
    let mut summaries = BTreeMap::new();
    for row in rows {
        let order_id: Uuid = row.get(0);
        let total: String = row.get(3);
        let summary = OrderSummaryRow {
            customer_id: row.get(1),
            status: row.get(2),
            total_cents: cents_of_numeric(&total).with_context(|| format!("order_summary row {order_id}"))?,
            item_count: row.get(4),
            version: row.get(5),
            updated_at: row.get(6),
        };
        summaries.insert(order_id, summary);
    }
    Ok(summaries)
}

fn cents_of_numeric(text: &str) -> anyhow::Result<i64> {
    parse_cents(text).map_err(|problem| anyhow::anyhow!("numeric `{text}`: {problem}"))
}

/// `schema.table`, each part quoted as an SQL identifier.
pub(crate) fn qualified(schema: &str, table: &str) -> String {
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    format!("{}.{}", quote(schema), quote(table))
}

/// How many differing keys of each table a failure message shows.
const SHOWN_DIFFERENCES: usize = 10;

/// Panics with a readable diff (row counts, and the first differing keys of each table)
/// when `actual` differs from `expected`.
#[track_caller]
pub fn assert_same(expected: &Expected, actual: &Expected) {
    if let Some(report) = differences(expected, actual) {
        panic!("read models differ from the reference model\n{report}");
    }
}

/// Describes how `actual` differs from `expected`; `None` when it does not.
fn differences(expected: &Expected, actual: &Expected) -> Option<String> {
    let report: Vec<String> = [
        diff_table("order_summary", &expected.order_summary, &actual.order_summary),
        diff_table("revenue_by_day", &expected.revenue_by_day, &actual.revenue_by_day),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!report.is_empty()).then(|| report.join("\n"))
}

/// Describes how one table differs; `None` when it does not.
fn diff_table<K: Ord + Display, V: PartialEq + Debug>(
    table: &str,
    expected: &BTreeMap<K, V>,
    actual: &BTreeMap<K, V>,
) -> Option<String> {
    let mut missing = Vec::new();
    let mut differing = Vec::new();
    for (key, want) in expected {
        match actual.get(key) {
            None => missing.push(format!("  missing {key}: expected {want:?}")),
            Some(got) if got != want => {
                differing.push(format!("  differs {key}:\n    expected {want:?}\n    actual   {got:?}"))
            }
            Some(_) => {}
        }
    }
    let unexpected: Vec<String> = actual
        .iter()
        .filter(|(key, _)| !expected.contains_key(key))
        .map(|(key, got)| format!("  unexpected {key}: {got:?}"))
        .collect();
    if missing.is_empty() && differing.is_empty() && unexpected.is_empty() {
        return None;
    }
    let mut report = format!(
        "{table}: expected {} rows, actual {}; {} missing, {} unexpected, {} differing",
        expected.len(),
        actual.len(),
        missing.len(),
        unexpected.len(),
        differing.len()
    );
    for kind in [missing, unexpected, differing] {
        for line in kind.iter().take(SHOWN_DIFFERENCES) {
            report.push('\n');
            report.push_str(line);
        }
        if kind.len() > SHOWN_DIFFERENCES {
            report.push_str(&format!("\n  … and {} more", kind.len() - SHOWN_DIFFERENCES));
        }
    }
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &str = "order-6c0b1d5e-2f3a-4b7c-9d8e-0a1b2c3d4e5f";
    const CUSTOMER: &str = "11111111-2222-4333-8444-555555555555";

    fn order_id() -> Uuid {
        Uuid::parse_str(&ORDER["order-".len()..]).unwrap()
    }

    fn at(timestamp: &str) -> DateTime<Utc> {
        timestamp.parse().unwrap()
    }

    fn day(date: &str) -> NaiveDate {
        date.parse().unwrap()
    }

    /// One event of `stream`; versions are given explicitly so that tests can shuffle them.
    fn event(stream: &str, version: i64, event_type: &str, data: &str, time: &str) -> RefEvent {
        RefEvent {
            stream_id: stream.to_owned(),
            version,
            event_type: event_type.to_owned(),
            data: data.to_owned(),
            timestamp: at(time),
        }
    }

    /// An event of the one test order: its type, its data and its time.
    type OrderEvent = (&'static str, String, &'static str);

    /// Events of the one test order, versions 1, 2, … in the order given.
    fn order_events(events: &[OrderEvent]) -> Vec<RefEvent> {
        events
            .iter()
            .zip(1..)
            .map(|((event_type, data, time), version)| event(ORDER, version, event_type, data, time))
            .collect()
    }

    fn ev(event_type: &'static str, data: &str, time: &'static str) -> OrderEvent {
        (event_type, data.to_owned(), time)
    }

    fn created(time: &'static str) -> OrderEvent {
        let data = format!(r#"{{"order_id": "{}", "customer_id": "{CUSTOMER}"}}"#, order_id());
        ev("OrderCreated", &data, time)
    }

    /// An `ItemAdded`; `price` is the JSON number exactly as written.
    fn item(product: &str, quantity: i64, price: &str, time: &'static str) -> OrderEvent {
        let data = format!(r#"{{"product_id": "{product}", "quantity": {quantity}, "price": {price}}}"#);
        ev("ItemAdded", &data, time)
    }

    fn removed(product: &str, time: &'static str) -> OrderEvent {
        ev("ItemRemoved", &format!(r#"{{"product_id": "{product}"}}"#), time)
    }

    fn confirmed(time: &'static str) -> OrderEvent {
        ev("OrderConfirmed", "{}", time)
    }

    fn cancelled(time: &'static str) -> OrderEvent {
        ev("OrderCancelled", "{}", time)
    }

    fn compute_order(events: &[OrderEvent]) -> Expected {
        compute(order_events(events)).unwrap()
    }

    fn summary(expected: &Expected) -> &OrderSummaryRow {
        assert_eq!(expected.order_summary.len(), 1, "{expected:?}");
        &expected.order_summary[&order_id()]
    }

    fn revenue(rows: &[(&str, i64, i64)]) -> BTreeMap<NaiveDate, RevenueRow> {
        rows.iter().map(|&(date, orders, revenue_cents)| (day(date), RevenueRow { orders, revenue_cents })).collect()
    }

    const T1: &str = "2024-03-01T10:00:00Z";
    const T2: &str = "2024-03-01T11:00:00Z";
    const T3: &str = "2024-03-01T23:59:59.999999Z";
    const T4: &str = "2024-03-02T00:00:00Z";
    const T5: &str = "2024-03-03T08:30:00Z";
    const T6: &str = "2024-03-04T09:00:00Z";
    const T7: &str = "2024-03-05T09:00:00Z";

    #[test]
    fn a_created_order_is_an_empty_draft() {
        let expected = compute_order(&[created(T1)]);
        assert_eq!(
            summary(&expected),
            &OrderSummaryRow {
                customer_id: CUSTOMER.parse().unwrap(),
                status: "draft".to_owned(),
                total_cents: 0,
                item_count: 0,
                version: 1,
                updated_at: at(T1),
            }
        );
        assert!(expected.revenue_by_day.is_empty());
    }

    #[test]
    fn prices_are_exact_to_the_cent() {
        let expected = compute_order(&[
            created(T1),
            item("a", 3, "9.99", T2),
            item("b", 1, "10", T2),
            // 7 × 0.1 is 0.7000000000000001 in floating point.
            item("c", 7, "0.1", T2),
            item("d", 2, "1.5e1", T2),
            item("e", 1, "0.010", T3),
        ]);
        let row = summary(&expected);
        // 29.97 + 10.00 + 0.70 + 30.00 + 0.01
        assert_eq!(row.total_cents, 7068);
        assert_eq!(row.item_count, 14);
        assert_eq!((row.version, row.updated_at), (6, at(T3)));
    }

    #[test]
    fn adding_an_existing_product_adds_quantity_at_the_first_price() {
        let expected = compute_order(&[created(T1), item("a", 2, "5.00", T2), item("a", 1, "7.25", T2)]);
        let row = summary(&expected);
        assert_eq!((row.total_cents, row.item_count), (1500, 3));
    }

    #[test]
    fn removing_drops_the_whole_line_and_a_new_line_takes_the_new_price() {
        let mut events =
            vec![created(T1), item("a", 2, "5", T2), item("b", 1, "3.10", T2), item("a", 1, "9", T2), removed("a", T3)];
        let row = summary(&compute_order(&events)).clone();
        assert_eq!((row.total_cents, row.item_count), (310, 1));
        assert_eq!((row.version, row.updated_at), (5, at(T3)));

        events.push(item("a", 2, "0.5", T4));
        let row = summary(&compute_order(&events)).clone();
        assert_eq!((row.total_cents, row.item_count), (410, 3));
    }

    #[test]
    fn removing_an_absent_product_changes_nothing_but_version_and_updated_at() {
        let expected = compute_order(&[created(T1), item("a", 2, "1.25", T2), removed("zzz", T4)]);
        let row = summary(&expected);
        assert_eq!((row.total_cents, row.item_count), (250, 2));
        assert_eq!((row.version, row.updated_at), (3, at(T4)));
    }

    #[test]
    fn ignored_types_do_not_advance_version_or_updated_at() {
        let expected = compute_order(&[
            created(T1),
            item("a", 1, "2", T2),
            ev(
                "ShippingAddressUpdated",
                r#"{"address": {"street": "1 Main St", "city": "Oslo", "country": "NO"}}"#,
                T3,
            ),
            ev("OrderNoteAdded", r#"{"note": "leave at the door"}"#, T4),
            // Unknown types are not parsed: not even a JSON object is required.
            ev("LegacyThing", "[1, 2, 3]", T5),
        ]);
        let row = summary(&expected);
        assert_eq!((row.version, row.updated_at), (2, at(T2)));
        assert_eq!((row.status.as_str(), row.total_cents), ("draft", 200));
    }

    #[test]
    fn events_before_order_created_are_ignored_by_both_read_models() {
        let expected = compute_order(&[
            item("a", 5, "1", T1),
            confirmed(T2),
            ev("OrderShipped", r#"{"carrier": "dhl", "tracking_number": "1"}"#, T3),
            created(T4),
            item("b", 1, "4", T5),
        ]);
        let row = summary(&expected);
        assert_eq!(row.status, "draft");
        assert_eq!((row.total_cents, row.item_count), (400, 1));
        assert_eq!((row.version, row.updated_at), (5, at(T5)));
        assert!(expected.revenue_by_day.is_empty());
    }

    #[test]
    fn a_stream_without_order_created_has_no_row() {
        let expected = compute_order(&[item("a", 5, "1", T1), confirmed(T2)]);
        assert_eq!(expected, Expected::default());
    }

    #[test]
    fn the_latest_status_event_wins() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[("OrderConfirmed", "{}")], "confirmed"),
            (&[("OrderConfirmed", "{}"), ("OrderShipped", "{}")], "shipped"),
            (&[("OrderShipped", "{}"), ("OrderCancelled", r#"{"reason": "x"}"#)], "cancelled"),
            (&[("OrderCancelled", r#"{"reason": "x"}"#), ("OrderConfirmed", "{}")], "confirmed"),
        ];
        for (status_events, status) in cases {
            let mut events = vec![created(T1)];
            events.extend(status_events.iter().map(|&(event_type, data)| ev(event_type, data, T2)));
            assert_eq!(summary(&compute_order(&events)).status, status, "{events:?}");
        }
    }

    #[test]
    fn revenue_counts_the_total_at_confirmation_on_its_utc_day() {
        let expected = compute_order(&[
            created(T1),
            item("a", 2, "19.99", T2),
            confirmed(T3),
            // After the confirmation: the summary changes, the revenue does not.
            item("b", 1, "5", T4),
            // Already confirmed and not cancelled: changes nothing, creates no row for its day.
            confirmed(T5),
        ]);
        let row = summary(&expected);
        assert_eq!((row.status.as_str(), row.total_cents), ("confirmed", 4498));
        assert_eq!(row.version, 5);
        assert_eq!(expected.revenue_by_day, revenue(&[("2024-03-01", 1, 3998)]));
    }

    #[test]
    fn a_cancellation_takes_the_order_out_of_its_confirmation_day_and_the_row_stays() {
        let expected = compute_order(&[
            created(T1),
            item("a", 3, "2.50", T2),
            confirmed(T2),
            removed("a", T4),
            ev("OrderCancelled", r#"{"reason": "changed mind"}"#, T5),
        ]);
        assert_eq!(summary(&expected).total_cents, 0);
        // 750 at confirmation is subtracted, not the current total of 0.
        assert_eq!(expected.revenue_by_day, revenue(&[("2024-03-01", 0, 0)]));
    }

    #[test]
    fn cancellations_subtract_only_their_own_order() {
        let other = "order-00000000-0000-4000-8000-000000000001";
        let other_created = format!(r#"{{"order_id": "x", "customer_id": "{CUSTOMER}"}}"#);
        let mut events = order_events(&[created(T1), item("a", 1, "12.34", T1), confirmed(T2), cancelled(T6)]);
        events.extend([
            event(other, 1, "OrderCreated", &other_created, T1),
            event(other, 2, "ItemAdded", r#"{"product_id": "a", "quantity": 2, "price": 0.99}"#, T1),
            event(other, 3, "OrderConfirmed", "{}", T3),
        ]);
        let expected = compute(events).unwrap();
        assert_eq!(expected.order_summary.len(), 2);
        assert_eq!(expected.revenue_by_day, revenue(&[("2024-03-01", 1, 198)]));
    }

    #[test]
    fn a_confirmation_after_a_cancellation_counts_again_on_its_own_day() {
        let expected = compute_order(&[
            created(T1),
            item("a", 1, "100", T1),
            confirmed(T2),
            cancelled(T4),
            item("b", 1, "0.01", T5),
            confirmed(T6),
            confirmed(T7),
        ]);
        assert_eq!(expected.revenue_by_day, revenue(&[("2024-03-01", 0, 0), ("2024-03-04", 1, 10001)]));
    }

    #[test]
    fn a_cancellation_without_a_counted_confirmation_changes_no_revenue() {
        let expected = compute_order(&[
            created(T1),
            item("a", 1, "3", T1),
            cancelled(T2),
            confirmed(T4),
            cancelled(T5),
            cancelled(T6),
        ]);
        assert_eq!(summary(&expected).status, "cancelled");
        assert_eq!(expected.revenue_by_day, revenue(&[("2024-03-02", 0, 0)]));
    }

    #[test]
    fn shipping_neither_uncounts_nor_allows_a_second_count() {
        let mut events = vec![
            created(T1),
            item("a", 4, "0.25", T1),
            confirmed(T2),
            ev("OrderShipped", r#"{"carrier": "ups", "tracking_number": "1Z"}"#, T4),
            confirmed(T5),
        ];
        let expected = compute_order(&events);
        assert_eq!(expected.revenue_by_day, revenue(&[("2024-03-01", 1, 100)]));

        events.push(cancelled(T6));
        let expected = compute_order(&events);
        assert_eq!(expected.revenue_by_day, revenue(&[("2024-03-01", 0, 0)]));
    }

    #[test]
    fn a_repeated_order_created_resets_status_and_customer_but_keeps_lines() {
        let new_customer = "99999999-2222-4333-8444-555555555555";
        let again = format!(r#"{{"order_id": "x", "customer_id": "{new_customer}"}}"#);
        let expected = compute_order(&[
            created(T1),
            item("a", 1, "3", T1),
            confirmed(T2),
            ev("OrderCreated", &again, T4),
            confirmed(T5),
        ]);
        let row = summary(&expected);
        assert_eq!(row.customer_id.to_string(), new_customer);
        assert_eq!((row.status.as_str(), row.total_cents, row.version), ("confirmed", 300, 5));
        assert_eq!(expected.revenue_by_day, revenue(&[("2024-03-01", 1, 300)]));
    }

    #[test]
    fn streams_are_applied_in_version_order_whatever_the_input_order() {
        let mut events = order_events(&[created(T1), item("a", 1, "1", T2), confirmed(T3), cancelled(T4)]);
        events.reverse();
        let expected = compute(events).unwrap();
        let row = summary(&expected);
        assert_eq!((row.status.as_str(), row.version), ("cancelled", 4));
        assert_eq!(expected.revenue_by_day, revenue(&[("2024-03-01", 0, 0)]));
    }

    #[test]
    fn streams_of_other_categories_are_ignored() {
        let data = format!(r#"{{"customer_id": "{CUSTOMER}"}}"#);
        let expected = compute([
            event("customer-7", 1, "OrderCreated", &data, T1),
            event("orders-6c0b1d5e-2f3a-4b7c-9d8e-0a1b2c3d4e5f", 1, "OrderCreated", &data, T1),
            event("order", 1, "OrderCreated", &data, T1),
        ])
        .unwrap();
        assert_eq!(expected, Expected::default());
    }

    #[test]
    fn events_outside_the_domain_are_reported() {
        let (kind, data, _) = created(T1);
        let cases = [
            (item("a", 1, "9.999", T2), "cents"),
            (item("a", 0, "1", T2), "quantity 0"),
            (item("a", 1, r#""1.00""#, T2), "price"),
            (item("a", 1, "-1", T2), "negative"),
            (ev("ItemAdded", r#"{"product_id": "a", "quantity": 1.5, "price": 1}"#, T2), "data"),
            (item("a", 1, "1e10", T2), "numeric"),
            (ev("ItemRemoved", r#"{"sku": "a"}"#, T2), "product_id"),
            (ev("OrderCreated", r#"{"customer_id": "bob"}"#, T2), "data"),
        ];
        for (bad, problem) in cases {
            let bad_type = bad.0;
            let error = compute(order_events(&[created(T1), bad])).unwrap_err();
            assert_eq!((error.version, error.event_type.as_str()), (2, bad_type));
            assert!(error.to_string().contains(problem), "{error}");
        }

        let not_a_uuid = compute([event("order-42", 1, "OrderCreated", &data, T1)]).unwrap_err();
        assert!(not_a_uuid.problem.contains("order-<uuid>"), "{not_a_uuid}");

        let twice =
            compute([event(ORDER, 1, kind, &data, T1), event(ORDER, 1, "OrderConfirmed", "{}", T2)]).unwrap_err();
        assert!(twice.problem.contains("second event"), "{twice}");
    }

    #[test]
    fn decimal_text_parses_to_exact_cents() {
        let cases = [
            ("0", Ok(0)),
            ("10", Ok(1000)),
            ("9.99", Ok(999)),
            ("0.1", Ok(10)),
            ("12.30", Ok(1230)),
            ("9.990", Ok(999)),
            ("-3.05", Ok(-305)),
            ("1e1", Ok(1000)),
            ("1.5E-1", Ok(15)),
            ("25e-2", Ok(25)),
            ("0.00000", Ok(0)),
            ("92233720368547758.07", Ok(i64::MAX)),
            ("0.001", Err("not a whole number of cents")),
            ("1e-3", Err("not a whole number of cents")),
            ("92233720368547758.08", Err("out of range")),
            ("1e400", Err("out of range")),
            ("", Err("not a decimal number")),
            ("1.", Err("not a decimal number")),
            (".5", Err("not a decimal number")),
            ("1,5", Err("not a decimal number")),
            ("NaN", Err("not a decimal number")),
        ];
        for (text, cents) in cases {
            assert_eq!(parse_cents(text), cents, "{text}");
        }
    }

    fn one_order(total_cents: i64) -> Expected {
        let mut expected = Expected::default();
        expected.order_summary.insert(
            order_id(),
            OrderSummaryRow {
                customer_id: CUSTOMER.parse().unwrap(),
                status: "confirmed".to_owned(),
                total_cents,
                item_count: 1,
                version: 3,
                updated_at: at(T2),
            },
        );
        expected.revenue_by_day = revenue(&[("2024-03-01", 1, total_cents)]);
        expected
    }

    #[test]
    fn equal_read_models_pass() {
        assert_same(&one_order(100), &one_order(100));
        assert_eq!(differences(&one_order(100), &one_order(100)), None);
    }

    #[test]
    fn a_diff_names_the_differing_keys_and_counts() {
        let mut actual = one_order(101);
        actual.revenue_by_day.clear();
        let message = differences(&one_order(100), &actual).unwrap();
        for needle in [
            "order_summary: expected 1 rows, actual 1; 0 missing, 0 unexpected, 1 differing",
            &format!("differs {}", order_id()),
            "total_cents: 101",
            "revenue_by_day: expected 1 rows, actual 0; 1 missing",
            "missing 2024-03-01",
        ] {
            assert!(message.contains(needle), "{needle:?} not in:\n{message}");
        }
    }
}
