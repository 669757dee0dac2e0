//! A deterministic log of the order domain (`shared/ORDER_DOMAIN.md`), corner cases included.
//!
//! Orders arrive at random over several UTC days; each one lives for minutes to days, so many
//! are in progress at once and the log interleaves them by time, as a real log does. Every
//! choice comes from one seeded ChaCha generator: the same configuration yields the same
//! events, byte for byte.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use chrono::{DateTime, TimeZone as _, Utc};
use rand::{Rng as _, RngCore, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use uuid::Uuid;

/// The event types of the domain, plus the one no projection knows.
pub mod types {
    /// First event of an order.
    pub const ORDER_CREATED: &str = "OrderCreated";
    /// A line added (or its quantity increased).
    pub const ITEM_ADDED: &str = "ItemAdded";
    /// A line removed.
    pub const ITEM_REMOVED: &str = "ItemRemoved";
    /// New delivery address.
    pub const SHIPPING_ADDRESS_UPDATED: &str = "ShippingAddressUpdated";
    /// Order confirmed.
    pub const ORDER_CONFIRMED: &str = "OrderConfirmed";
    /// Order cancelled.
    pub const ORDER_CANCELLED: &str = "OrderCancelled";
    /// Order handed to a carrier.
    pub const ORDER_SHIPPED: &str = "OrderShipped";
    /// A type the order projections do not handle and must ignore.
    pub const UNKNOWN: &str = "OrderNoteAdded";
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderConfig {
    /// Number of orders (streams).
    pub orders: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// When the first order may arrive.
    pub start: DateTime<Utc>,
    /// Over how many days orders arrive (their later events may run past it).
    pub days: u32,
}

impl Default for OrderConfig {
    fn default() -> Self {
        OrderConfig { orders: 1_000, seed: 1, start: Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap(), days: 7 }
    }
}

/// One generated event, in the shape of an `events` row.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedEvent {
    /// `order-<uuid>`.
    pub stream_id: String,
    /// Version within the stream, from 1.
    pub version: i64,
    /// The event's id.
    pub event_id: Uuid,
    /// One of [`types`].
    pub event_type: &'static str,
    /// The payload.
    pub data: Value,
    /// `correlation_id` (the order's), `causation_id` (the previous event's id, if any) and
    /// `actor_id` (the customer).
    pub metadata: Value,
    /// The recorded time; non-decreasing along the log.
    pub timestamp: DateTime<Utc>,
}

/// The events of [`OrderConfig::orders`] orders, in time order. A pure iterator: no I/O.
pub struct OrderGenerator {
    config: OrderConfig,
    rng: ChaCha8Rng,
    catalog: Vec<i64>,
    started: u64,
    next_arrival_ms: f64,
    mean_arrival_gap_ms: f64,
    /// Due events as (time, tie-breaker, slot in `orders`).
    due: BinaryHeap<Reverse<(i64, u64, usize)>>,
    sequence: u64,
    orders: Vec<Option<Order>>,
    free_slots: Vec<usize>,
}

struct Order {
    stream_id: String,
    correlation_id: String,
    actor_id: String,
    version: i64,
    last_event_id: Option<Uuid>,
    plan: VecDeque<(&'static str, Value)>,
}

const PRODUCTS: usize = 400;
const MS_PER_MINUTE: f64 = 60_000.0;

impl OrderGenerator {
    /// A generator for `config`.
    pub fn new(config: OrderConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let catalog = (0..PRODUCTS).map(|_| rng.random_range(50..=25_000)).collect();
        let span_ms = f64::from(config.days.max(1)) * 24.0 * 60.0 * MS_PER_MINUTE;
        let mean_arrival_gap_ms = span_ms / config.orders.max(1) as f64;
        OrderGenerator {
            config,
            rng,
            catalog,
            started: 0,
            next_arrival_ms: 0.0,
            mean_arrival_gap_ms,
            due: BinaryHeap::new(),
            sequence: 0,
            orders: Vec::new(),
            free_slots: Vec::new(),
        }
    }

    fn schedule(&mut self, at_ms: i64, slot: usize) {
        self.sequence += 1;
        self.due.push(Reverse((at_ms, self.sequence, slot)));
    }

    /// Milliseconds from an exponential distribution with the given mean.
    fn exponential(&mut self, mean_ms: f64) -> f64 {
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        -u.ln() * mean_ms
    }

    /// A version 7 UUID: time-ordered, as many producers use now, so that the indexes on
    /// `event_id` and `stream_id` grow at their end instead of at random places.
    fn uuid_v7(&mut self, at_ms: i64) -> Uuid {
        let mut random = [0u8; 10];
        self.rng.fill_bytes(&mut random);
        let millis = (self.config.start.timestamp_millis() + at_ms).max(0) as u64;
        uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
    }

    fn start_order(&mut self) {
        let at_ms = self.next_arrival_ms.round() as i64;
        self.next_arrival_ms += self.exponential(self.mean_arrival_gap_ms);
        self.started += 1;
        let order_id = self.uuid_v7(at_ms);
        let customers = (self.config.orders / 3).max(1);
        let customer = self.rng.random_range(0..customers);
        let customer_id = customer_uuid(self.config.seed, customer);
        let plan = self.plan(order_id, customer_id);
        let order = Order {
            stream_id: format!("order-{order_id}"),
            correlation_id: order_id.to_string(),
            actor_id: customer_id.to_string(),
            version: 0,
            last_event_id: None,
            plan,
        };
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.orders[slot] = Some(order);
                slot
            }
            None => {
                self.orders.push(Some(order));
                self.orders.len() - 1
            }
        };
        self.schedule(at_ms, slot);
    }

    fn item_added(&mut self, product: usize, reprice: bool) -> (&'static str, Value) {
        let mut cents = self.catalog[product];
        if reprice {
            cents = (cents + self.rng.random_range(-200..=200)).max(1);
        }
        let quantity = if self.rng.random_bool(0.8) { 1 } else { self.rng.random_range(2..=5) };
        (types::ITEM_ADDED, json!({ "product_id": sku(product), "quantity": quantity, "price": price(cents) }))
    }

    fn address(&mut self) -> (&'static str, Value) {
        const STREETS: [&str; 6] = ["Main St", "High St", "Station Rd", "Rue de la Paix", "Hauptstraße", "Via Roma"];
        const CITIES: [(&str, &str); 6] =
            [("Lyon", "FR"), ("Leeds", "GB"), ("Graz", "AT"), ("Turin", "IT"), ("Porto", "PT"), ("Austin", "US")];
        let street = format!("{} {}", self.rng.random_range(1..300), STREETS[self.rng.random_range(0..STREETS.len())]);
        let (city, country) = CITIES[self.rng.random_range(0..CITIES.len())];
        (types::SHIPPING_ADDRESS_UPDATED, json!({ "address": { "street": street, "city": city, "country": country } }))
    }

    /// The events of one order, from the rare and odd to the common.
    fn plan(&mut self, order_id: Uuid, customer_id: Uuid) -> VecDeque<(&'static str, Value)> {
        let mut plan = VecDeque::new();
        let mut lines: Vec<usize> = Vec::new();
        // A rare stream whose first event is not OrderCreated (a producer bug, or a migration).
        if self.rng.random_bool(0.002) {
            let product = self.rng.random_range(0..PRODUCTS);
            plan.push_back(self.item_added(product, false));
        }
        plan.push_back((types::ORDER_CREATED, json!({ "order_id": order_id, "customer_id": customer_id })));
        for _ in 0..self.rng.random_range(1..=6) {
            if !lines.is_empty() && self.rng.random_bool(0.1) {
                // The same product again: its quantity grows, its first price stays.
                let product = lines[self.rng.random_range(0..lines.len())];
                let reprice = self.rng.random_bool(0.5);
                plan.push_back(self.item_added(product, reprice));
            } else {
                let product = self.rng.random_range(0..PRODUCTS);
                lines.push(product);
                plan.push_back(self.item_added(product, false));
            }
            if self.rng.random_bool(0.06) {
                let line = self.rng.random_range(0..lines.len());
                let product = lines.swap_remove(line);
                plan.push_back((types::ITEM_REMOVED, json!({ "product_id": sku(product) })));
            }
        }
        if self.rng.random_bool(0.02) {
            // A product that is not in the order: removing it changes nothing.
            let absent = (0..PRODUCTS).find(|p| !lines.contains(p)).unwrap_or(0);
            plan.push_back((types::ITEM_REMOVED, json!({ "product_id": sku(absent) })));
        }
        if self.rng.random_bool(0.3) {
            plan.push_back(self.address());
        }
        if self.rng.random_bool(0.01) {
            plan.push_back((types::UNKNOWN, json!({ "note": "leave at the door" })));
        }
        let outcome: f64 = self.rng.random();
        if outcome < 0.10 {
            plan.push_back((types::ORDER_CANCELLED, json!({ "reason": "customer request" })));
        } else if outcome >= 0.25 {
            plan.push_back((types::ORDER_CONFIRMED, json!({})));
            if self.rng.random_bool(0.03) {
                plan.push_back((types::ORDER_CONFIRMED, json!({})));
            }
            if self.rng.random_bool(0.02) {
                let product = self.rng.random_range(0..PRODUCTS);
                plan.push_back(self.item_added(product, false));
            }
            let after: f64 = self.rng.random();
            if after < 0.08 {
                plan.push_back((types::ORDER_CANCELLED, json!({ "reason": "payment failed" })));
            } else if after < 0.75 {
                let tracking = format!("TRK{:010}", self.rng.random_range(0..10_000_000_000u64));
                let carrier = ["DHL", "UPS", "La Poste", "Royal Mail"][self.rng.random_range(0..4)];
                plan.push_back((types::ORDER_SHIPPED, json!({ "carrier": carrier, "tracking_number": tracking })));
            }
        }
        // Otherwise the order stays a draft (abandoned cart).
        plan
    }

    /// How long after the previous event of its order an event of `event_type` comes.
    fn gap_before(&mut self, event_type: &str) -> i64 {
        let mean_minutes = match event_type {
            types::ORDER_CONFIRMED => 30.0,
            types::ORDER_SHIPPED => 18.0 * 60.0,
            types::ORDER_CANCELLED => 6.0 * 60.0,
            _ => 4.0,
        };
        1_000 + self.exponential(mean_minutes * MS_PER_MINUTE).round() as i64
    }
}

impl Iterator for OrderGenerator {
    type Item = GeneratedEvent;

    fn next(&mut self) -> Option<GeneratedEvent> {
        loop {
            let next_due = self.due.peek().map(|Reverse((at, _, _))| *at as f64);
            if self.started < self.config.orders && next_due.is_none_or(|at| self.next_arrival_ms <= at) {
                self.start_order();
                continue;
            }
            let Reverse((at_ms, _, slot)) = self.due.pop()?;
            let event_id = self.uuid_v7(at_ms);
            let order = self.orders[slot].as_mut()?;
            let (event_type, data) = order.plan.pop_front()?;
            order.version += 1;
            let mut metadata = json!({ "correlation_id": order.correlation_id, "actor_id": order.actor_id });
            if let Some(cause) = order.last_event_id.replace(event_id) {
                metadata["causation_id"] = json!(cause);
            }
            let event = GeneratedEvent {
                stream_id: order.stream_id.clone(),
                version: order.version,
                event_id,
                event_type,
                data,
                metadata,
                timestamp: self.config.start + chrono::Duration::milliseconds(at_ms),
            };
            match order.plan.front().map(|(next, _)| *next) {
                Some(next) => {
                    let gap = self.gap_before(next);
                    self.schedule(at_ms + gap, slot);
                }
                None => {
                    self.orders[slot] = None;
                    self.free_slots.push(slot);
                }
            }
            return Some(event);
        }
    }
}

/// The id of customer number `n`: the same for every order of that customer, without keeping
/// a table of them (SplitMix64 finalisers of the seed and the number).
fn customer_uuid(seed: u64, n: u64) -> Uuid {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let high = mix(seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let low = mix(high ^ n);
    uuid::Builder::from_random_bytes(((u128::from(high) << 64) | u128::from(low)).to_be_bytes()).into_uuid()
}

fn sku(product: usize) -> String {
    format!("sku-{product:04}")
}

/// A unit price of `cents` as a JSON number with at most two decimals (`999` → `9.99`).
fn price(cents: i64) -> Value {
    // The shortest representation of cents / 100 has at most two decimals.
    json!(cents as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn generate(orders: u64, seed: u64) -> Vec<GeneratedEvent> {
        OrderGenerator::new(OrderConfig { orders, seed, ..OrderConfig::default() }).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_log_and_another_seed_another() {
        assert_eq!(generate(300, 9), generate(300, 9));
        assert_ne!(generate(300, 9), generate(300, 10));
    }

    #[test]
    fn streams_are_complete_and_numbered_without_holes() {
        let events = generate(2_000, 3);
        let mut versions: HashMap<&str, i64> = HashMap::new();
        for event in &events {
            let last = versions.entry(&event.stream_id).or_default();
            assert_eq!(event.version, *last + 1, "{} jumps from {last}", event.stream_id);
            *last = event.version;
            assert!(event.stream_id.starts_with("order-") && Uuid::parse_str(&event.stream_id[6..]).is_ok());
            assert!(event.data.is_object());
        }
        assert_eq!(versions.len(), 2_000);
        assert_eq!(events.iter().map(|e| e.event_id).collect::<HashSet<_>>().len(), events.len());
        assert!(events.windows(2).all(|w| w[0].timestamp <= w[1].timestamp), "time order");
        let days: HashSet<_> = events.iter().map(|e| e.timestamp.date_naive()).collect();
        assert!(days.len() >= 7, "spread over {} days", days.len());
    }

    #[test]
    fn every_event_type_and_corner_case_occurs() {
        let events = generate(5_000, 1);
        let mut by_stream: HashMap<&str, Vec<&GeneratedEvent>> = HashMap::new();
        for event in &events {
            by_stream.entry(&event.stream_id).or_default().push(event);
        }
        let count = |pred: &dyn Fn(&[&GeneratedEvent]) -> bool| by_stream.values().filter(|s| pred(s)).count();
        let types_in = |s: &[&GeneratedEvent]| s.iter().map(|e| e.event_type).collect::<Vec<_>>();
        let position = |s: &[&GeneratedEvent], t: &str| s.iter().position(|e| e.event_type == t);
        let product = |e: &GeneratedEvent| e.data["product_id"].as_str().map(str::to_owned);

        for t in [
            types::ORDER_CREATED,
            types::ITEM_ADDED,
            types::ITEM_REMOVED,
            types::SHIPPING_ADDRESS_UPDATED,
            types::ORDER_CONFIRMED,
            types::ORDER_CANCELLED,
            types::ORDER_SHIPPED,
            types::UNKNOWN,
        ] {
            assert!(events.iter().any(|e| e.event_type == t), "no {t}");
        }
        let readded = count(&|s| {
            let added: Vec<_> =
                s.iter().filter(|e| e.event_type == types::ITEM_ADDED).filter_map(|e| product(e)).collect();
            added.len() > added.iter().collect::<HashSet<_>>().len()
        });
        let removed_absent = count(&|s| {
            let mut lines = HashSet::new();
            s.iter().any(|e| match e.event_type {
                types::ITEM_ADDED => {
                    lines.insert(product(e));
                    false
                }
                types::ITEM_REMOVED => !lines.remove(&product(e)),
                _ => false,
            })
        });
        let cancelled_after_confirm = count(
            &|s| matches!((position(s, types::ORDER_CONFIRMED), position(s, types::ORDER_CANCELLED)), (Some(c), Some(x)) if c < x),
        );
        let confirmed_twice = count(&|s| types_in(s).iter().filter(|t| **t == types::ORDER_CONFIRMED).count() == 2);
        let not_created_first = count(&|s| s[0].event_type != types::ORDER_CREATED);
        for (case, n) in [
            ("ItemAdded of a product already in the order", readded),
            ("ItemRemoved of a product not in the order", removed_absent),
            ("OrderCancelled after OrderConfirmed", cancelled_after_confirm),
            ("OrderConfirmed twice", confirmed_twice),
            ("a stream whose first event is not OrderCreated", not_created_first),
        ] {
            assert!(n > 0, "no stream with {case}");
        }
    }

    #[test]
    fn prices_have_at_most_two_decimals_and_quantities_are_positive() {
        for event in generate(1_000, 4).iter().filter(|e| e.event_type == types::ITEM_ADDED) {
            let price = event.data["price"].to_string();
            let decimals = price.split_once('.').map_or(0, |(_, d)| d.len());
            assert!(decimals <= 2 && !price.contains('e'), "price {price}");
            assert!(event.data["quantity"].as_i64().is_some_and(|q| q > 0));
        }
    }

    #[test]
    fn many_orders_are_in_progress_at_once() {
        let events = generate(3_000, 2);
        let last: HashMap<&str, usize> = events.iter().enumerate().map(|(i, e)| (e.stream_id.as_str(), i)).collect();
        let (mut open, mut most) = (HashSet::new(), 0);
        for (i, event) in events.iter().enumerate() {
            open.insert(event.stream_id.as_str());
            most = most.max(open.len());
            if last[event.stream_id.as_str()] == i {
                open.remove(event.stream_id.as_str());
            }
        }
        assert!(most >= 100, "at most {most} orders open at once");
    }
}
