//! The concurrent-writer workload of the gap test.
//!
//! Several writers, each on a connection of its own, append order-domain events with plain
//! SQL `INSERT`s of the ADR-002 columns, the way any application would: lock the stream's
//! `streams` row `FOR UPDATE`, take the next version, insert, bump the version. Each
//! transaction then sleeps a random while before it commits, holding the `global_position`
//! values it took, so transactions commit out of position order; some are rolled back on
//! purpose, leaving holes in the positions. Several writers touch the same streams.
//!
//! What the writers do is decided by the seed alone ([`Workload::plan`]); when they do it,
//! and so which versions their events get, is up to the scheduler.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use rand::seq::IndexedRandom as _;
use rand::{Rng, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use tokio::task::JoinSet;
use tokio_postgres::{Client, NoTls, Transaction};
use uuid::Uuid;

use crate::reference::qualified;

/// The shape of a workload; [`Workload::default`] is the gap test's.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Concurrent writers, each with a connection of its own.
    pub writers: usize,
    /// Orders each writer creates (and mostly writes to); others write to them too.
    pub orders_per_writer: usize,
    /// Share of transactions rolled back on purpose, from 0 to 1.
    pub rollback_ratio: f64,
    /// Longest sleep of a transaction between its inserts and its `COMMIT`.
    pub max_sleep: Duration,
    /// Decides every action of every writer.
    pub seed: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            writers: 8,
            orders_per_writer: 40,
            rollback_ratio: 0.15,
            max_sleep: Duration::from_millis(25),
            seed: 1,
        }
    }
}

/// What a run of the workload wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadReport {
    /// Transactions committed.
    pub committed_transactions: u64,
    /// Transactions rolled back on purpose.
    pub rolled_back_transactions: u64,
    /// Events committed (the rows the `events` table gained).
    pub committed_events: u64,
    /// Events inserted by transactions that were then rolled back.
    pub rolled_back_events: u64,
    /// Committed events by event type.
    pub committed_by_type: BTreeMap<String, u64>,
    /// Streams with at least one committed event.
    pub streams: BTreeSet<String>,
    /// Committed transactions holding a position below one that had already committed (as
    /// the writers saw the order of their commits): the commits a tailer that remembers only
    /// the last position it read would skip.
    pub late_commits: u64,
}

impl WorkloadReport {
    fn absorb(&mut self, other: WorkloadReport) {
        self.committed_transactions += other.committed_transactions;
        self.rolled_back_transactions += other.rolled_back_transactions;
        self.committed_events += other.committed_events;
        self.rolled_back_events += other.rolled_back_events;
        for (event_type, count) in other.committed_by_type {
            *self.committed_by_type.entry(event_type).or_default() += count;
        }
        self.streams.extend(other.streams);
        self.late_commits += other.late_commits;
    }
}

/// A committed transaction: when it committed among all writers' commits, and its lowest
/// and highest `global_position`.
struct Commit {
    sequence: u64,
    positions: (i64, i64),
}

/// Counts the commits that hold a position below one committed before them.
fn late_commits(mut commits: Vec<Commit>) -> u64 {
    commits.sort_by_key(|commit| commit.sequence);
    let mut highest_committed = i64::MIN;
    let mut late = 0;
    for Commit { positions: (lowest, highest), .. } in commits {
        late += u64::from(lowest < highest_committed);
        highest_committed = highest_committed.max(highest);
    }
    late
}

/// One event a writer will append; its version is taken when it is inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEvent {
    /// `events.stream_id`.
    pub stream_id: String,
    /// `events.event_type`.
    pub event_type: &'static str,
    /// `events.data`, JSON text (prices written as exact literals).
    pub data: String,
    /// `events.metadata`, JSON text, or NULL.
    pub metadata: Option<String>,
    /// `events.timestamp`; `None` leaves it to the column's default, `now()`.
    pub timestamp: Option<DateTime<Utc>>,
}

/// One transaction a writer will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTransaction {
    /// Its events, in order (events of one stream keep this order).
    pub events: Vec<PlannedEvent>,
    /// How long it sleeps after its inserts, holding its positions and stream locks.
    pub sleep: Duration,
    /// Whether it commits; otherwise it rolls back.
    pub commit: bool,
}

/// Unit prices as JSON literals: exact decimals that binary floating point cannot hold,
/// integers, one or two decimals, an exponent form.
const PRICES: [&str; 11] = ["9.99", "10", "0.1", "0.01", "19.90", "1234.5", "3", "0.5", "249.99", "1e1", "2.50"];
/// Products; a small set so that orders add the same product again.
const PRODUCTS: [&str; 7] = ["sku-1", "sku-2", "sku-3", "sku-4", "gift card «été»", "sku \"quoted\"", "sku-7"];
const CARRIERS: [&str; 3] = ["dhl", "ups", "posten"];
const CUSTOMERS: usize = 25;
/// Where the writers' clocks start: orders then spread over several UTC days.
const EPOCH: &str = "2024-03-01T00:00:00Z";

impl Workload {
    /// What each writer will do, decided by the seed alone: one list of transactions per
    /// writer.
    pub fn plan(&self) -> Vec<Vec<PlannedTransaction>> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let orders: Vec<Uuid> = (0..self.writers * self.orders_per_writer).map(|_| random_uuid(&mut rng)).collect();
        let customers: Vec<Uuid> = (0..CUSTOMERS).map(|_| random_uuid(&mut rng)).collect();
        let world = World { orders: &orders, customers: &customers };
        (0..self.writers)
            .map(|writer| {
                let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
                rng.set_stream(writer as u64 + 1);
                let own = &orders[writer * self.orders_per_writer..][..self.orders_per_writer];
                self.plan_writer(writer, own, &world, &mut rng)
            })
            .collect()
    }

    fn plan_writer(
        &self,
        writer: usize,
        own: &[Uuid],
        world: &World<'_>,
        rng: &mut ChaCha8Rng,
    ) -> Vec<PlannedTransaction> {
        let writer_id = format!("writer-{writer}");
        let mut scripts: Vec<Vec<PlannedEvent>> = own
            .iter()
            .map(|order| {
                let mut script = order_script(*order, world, rng);
                script.reverse(); // popped from the end
                script
            })
            .collect();
        let mut transactions = Vec::new();
        while !scripts.is_empty() {
            let mut events = Vec::new();
            for _ in 0..rng.random_range(1..=3) {
                if scripts.is_empty() {
                    break;
                }
                // Interleave this writer's orders, so that many streams are open at once.
                let index = rng.random_range(0..scripts.len());
                events.extend(scripts[index].pop());
                if scripts[index].is_empty() {
                    scripts.swap_remove(index);
                }
            }
            if rng.random_bool(0.25) {
                let order = world.orders.choose(rng).expect("orders");
                events.push(foreign_event(*order, rng));
            }
            if rng.random_bool(0.04) {
                events.push(other_category_event(rng));
            }
            for event in &mut events {
                if rng.random_bool(0.5) {
                    event.metadata = Some(metadata(&writer_id, rng));
                }
            }
            transactions.push(PlannedTransaction {
                events,
                sleep: self.max_sleep.mul_f64(rng.random::<f64>()),
                commit: !rng.random_bool(self.rollback_ratio),
            });
        }
        transactions
    }

    /// Runs the writers against the event store in `schema` of the database at `url` and
    /// reports what they committed and rolled back.
    pub async fn run(&self, url: &str, schema: &str) -> anyhow::Result<WorkloadReport> {
        let commit_order = Arc::new(AtomicU64::new(0));
        let mut writers = JoinSet::new();
        for (writer, plan) in self.plan().into_iter().enumerate() {
            let (client, connection) =
                tokio_postgres::connect(url, NoTls).await.with_context(|| format!("connecting writer {writer}"))?;
            tokio::spawn(connection);
            let tables = Tables::new(schema);
            let commit_order = Arc::clone(&commit_order);
            writers.spawn(async move {
                run_writer(client, &tables, plan, &commit_order).await.with_context(|| format!("writer {writer}"))
            });
        }
        let mut report = WorkloadReport::default();
        let mut commits = Vec::new();
        while let Some(outcome) = writers.join_next().await {
            let (writer_report, writer_commits) = outcome.context("a writer panicked")??;
            report.absorb(writer_report);
            commits.extend(writer_commits);
        }
        report.late_commits = late_commits(commits);
        Ok(report)
    }
}

struct World<'a> {
    orders: &'a [Uuid],
    customers: &'a [Uuid],
}

fn random_uuid(rng: &mut ChaCha8Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

fn order_stream(order: Uuid) -> String {
    format!("order-{order}")
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

fn item_added(product: &str, quantity: u32, price: &str) -> String {
    format!(r#"{{"product_id": {}, "quantity": {quantity}, "price": {price}}}"#, json_string(product))
}

fn item_removed(product: &str) -> String {
    format!(r#"{{"product_id": {}}}"#, json_string(product))
}

fn random_product(rng: &mut ChaCha8Rng) -> &'static str {
    PRODUCTS.choose(rng).expect("products")
}

/// An `ItemAdded` of `product`, mostly a few pieces, now and then many, at a random price.
fn random_item(product: &str, rng: &mut ChaCha8Rng) -> String {
    let quantity = if rng.random_bool(0.1) { rng.random_range(10..=99) } else { rng.random_range(1..=4) };
    item_added(product, quantity, PRICES.choose(rng).expect("prices"))
}

fn metadata(writer: &str, rng: &mut ChaCha8Rng) -> String {
    format!(
        r#"{{"correlation_id": "{}", "causation_id": "{}", "actor_id": "{writer}", "schema_version": 1}}"#,
        random_uuid(rng),
        random_uuid(rng)
    )
}

/// The life of one order as its owner writes it, with the domain's corner cases.
fn order_script(order: Uuid, world: &World<'_>, rng: &mut ChaCha8Rng) -> Vec<PlannedEvent> {
    let stream_id = order_stream(order);
    let mut clock: DateTime<Utc> = epoch() + TimeDelta::minutes(rng.random_range(0..4 * 1440));
    let mut script = Vec::new();
    let mut push = |event_type: &'static str, data: String, rng: &mut ChaCha8Rng| {
        // Steps of up to ten hours cross UTC midnights; now and then the column default.
        clock += TimeDelta::minutes(rng.random_range(1..600));
        let timestamp = (!rng.random_bool(0.1)).then_some(clock);
        script.push(PlannedEvent { stream_id: stream_id.clone(), event_type, data, metadata: None, timestamp });
    };
    // Events recorded before the order's creation: ignored by the read models.
    if rng.random_bool(0.05) {
        push("ItemAdded", random_item(random_product(rng), rng), rng);
    }
    if rng.random_bool(0.03) {
        push("OrderConfirmed", "{}".to_owned(), rng);
    }
    let customer = world.customers.choose(rng).expect("customers");
    push("OrderCreated", format!(r#"{{"order_id": "{order}", "customer_id": "{customer}"}}"#), rng);
    let mut added = Vec::new();
    for _ in 0..rng.random_range(0..=5) {
        let product = random_product(rng);
        added.push(product);
        push("ItemAdded", random_item(product, rng), rng);
    }
    // The same product again, at another price: the first price stays.
    if let Some(&product) = added.first()
        && rng.random_bool(0.3)
    {
        push("ItemAdded", item_added(product, 2, "0.1"), rng);
    }
    if let Some(&product) = added.last()
        && rng.random_bool(0.3)
    {
        push("ItemRemoved", item_removed(product), rng);
    }
    if rng.random_bool(0.15) {
        push("ItemRemoved", item_removed("never-added"), rng);
    }
    if rng.random_bool(0.3) {
        let address = r#"{"address": {"street": "Storgata 1", "city": "Oslo", "country": "NO"}}"#;
        push("ShippingAddressUpdated", address.to_owned(), rng);
    }
    if rng.random_bool(0.1) {
        push("OrderNoteAdded", r#"{"note": "ring twice"}"#.to_owned(), rng);
    }
    if rng.random_bool(0.75) {
        push("OrderConfirmed", "{}".to_owned(), rng);
        if rng.random_bool(0.15) {
            push("OrderConfirmed", "{}".to_owned(), rng);
        }
        if rng.random_bool(0.15) {
            push("ItemAdded", random_item(random_product(rng), rng), rng);
        }
        if rng.random_bool(0.25) {
            push("OrderCancelled", cancelled(), rng);
            if rng.random_bool(0.3) {
                push("ItemAdded", random_item(random_product(rng), rng), rng);
                push("OrderConfirmed", "{}".to_owned(), rng);
            }
        }
        if rng.random_bool(0.4) {
            push("OrderShipped", shipped(rng), rng);
            if rng.random_bool(0.1) {
                push("OrderCancelled", cancelled(), rng);
            }
        }
    } else if rng.random_bool(0.2) {
        push("OrderCancelled", cancelled(), rng);
    }
    script
}

fn epoch() -> DateTime<Utc> {
    EPOCH.parse().expect("EPOCH is a timestamp")
}

fn cancelled() -> String {
    r#"{"reason": "customer changed their mind"}"#.to_owned()
}

fn shipped(rng: &mut ChaCha8Rng) -> String {
    format!(
        r#"{{"carrier": "{}", "tracking_number": "{}"}}"#,
        CARRIERS.choose(rng).expect("carriers"),
        rng.random_range(100_000..999_999)
    )
}

/// An event written by a writer that does not own the order: its place in the stream
/// depends on timing.
fn foreign_event(order: Uuid, rng: &mut ChaCha8Rng) -> PlannedEvent {
    let (event_type, data) = match rng.random_range(0..6) {
        0 | 1 => ("ItemAdded", random_item(random_product(rng), rng)),
        2 => ("ItemRemoved", item_removed(random_product(rng))),
        3 => ("OrderConfirmed", "{}".to_owned()),
        4 => ("OrderCancelled", cancelled()),
        _ => ("OrderShipped", shipped(rng)),
    };
    let timestamp = epoch() + TimeDelta::minutes(rng.random_range(0..6 * 1440));
    PlannedEvent { stream_id: order_stream(order), event_type, data, metadata: None, timestamp: Some(timestamp) }
}

/// An event of another category, which the order read models must ignore.
fn other_category_event(rng: &mut ChaCha8Rng) -> PlannedEvent {
    PlannedEvent {
        stream_id: format!("customer-{}", random_uuid(rng)),
        event_type: "OrderCreated",
        data: format!(r#"{{"customer_id": "{}"}}"#, random_uuid(rng)),
        metadata: None,
        timestamp: None,
    }
}

/// The statements of a writer, qualified with the event store's schema.
struct Tables {
    ensure_stream: String,
    lock_stream: String,
    insert_event: String,
    bump_stream: String,
}

impl Tables {
    fn new(schema: &str) -> Self {
        let streams = qualified(schema, "streams");
        let events = qualified(schema, "events");
        Tables {
            ensure_stream: format!(
                "INSERT INTO {streams} (stream_id, category) VALUES ($1, $2) \
                 ON CONFLICT (stream_id) DO NOTHING"
            ),
            lock_stream: format!("SELECT version FROM {streams} WHERE stream_id = $1 FOR UPDATE"),
            insert_event: format!(
                "INSERT INTO {events} (stream_id, version, event_type, data, metadata, timestamp) \
                 VALUES ($1, $2, $3, $4::text::jsonb, $5::text::jsonb, \
                         coalesce($6::timestamptz, now())) \
                 RETURNING global_position"
            ),
            bump_stream: format!("UPDATE {streams} SET version = $2, updated_at = now() WHERE stream_id = $1"),
        }
    }
}

async fn run_writer(
    mut client: Client,
    tables: &Tables,
    plan: Vec<PlannedTransaction>,
    commit_order: &AtomicU64,
) -> anyhow::Result<(WorkloadReport, Vec<Commit>)> {
    let mut report = WorkloadReport::default();
    let mut commits = Vec::new();
    for planned in plan {
        let transaction = client.transaction().await?;
        let positions = append(&transaction, tables, &planned.events).await?;
        tokio::time::sleep(planned.sleep).await;
        let events = planned.events.len() as u64;
        if planned.commit {
            transaction.commit().await?;
            commits.push(Commit { sequence: commit_order.fetch_add(1, Ordering::SeqCst), positions });
            report.committed_transactions += 1;
            report.committed_events += events;
            for event in &planned.events {
                *report.committed_by_type.entry(event.event_type.to_owned()).or_default() += 1;
                report.streams.insert(event.stream_id.clone());
            }
        } else {
            transaction.rollback().await?;
            report.rolled_back_transactions += 1;
            report.rolled_back_events += events;
        }
    }
    Ok((report, commits))
}

/// Appends `events` as ADR-002 does, stream by stream in stream id order: a fixed lock order,
/// so that writers sharing streams wait for each other but never deadlock. Returns the lowest
/// and highest `global_position` taken.
async fn append(transaction: &Transaction<'_>, tables: &Tables, events: &[PlannedEvent]) -> anyhow::Result<(i64, i64)> {
    let mut positions = (i64::MAX, i64::MIN);
    let mut by_stream: BTreeMap<&str, Vec<&PlannedEvent>> = BTreeMap::new();
    for event in events {
        by_stream.entry(&event.stream_id).or_default().push(event);
    }
    for (stream_id, events) in by_stream {
        let category = refract::store::category(stream_id);
        transaction.execute(&tables.ensure_stream, &[&stream_id, &category]).await?;
        let mut version: i64 = transaction.query_one(&tables.lock_stream, &[&stream_id]).await?.get(0);
        for event in events {
            version += 1;
            let position: i64 = transaction
                .query_one(
                    &tables.insert_event,
                    &[&stream_id, &version, &event.event_type, &event.data, &event.metadata, &event.timestamp],
                )
                .await
                .with_context(|| format!("appending {} v{version}", event.stream_id))?
                .get(0);
            positions = (positions.0.min(position), positions.1.max(position));
        }
        transaction.execute(&tables.bump_stream, &[&stream_id, &version]).await?;
    }
    Ok(positions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::{RefEvent, compute};

    fn small() -> Workload {
        Workload { writers: 8, orders_per_writer: 30, ..Workload::default() }
    }

    #[test]
    fn late_commits_are_those_below_an_earlier_committed_position() {
        let commit = |sequence, positions| Commit { sequence, positions };
        // Committed in the order 3, 0, 1, 2 (by sequence): [5, 6] first, then [1, 2] and
        // [3, 3] are late, [7, 9] is not.
        let commits = vec![commit(3, (7, 9)), commit(1, (1, 2)), commit(0, (5, 6)), commit(2, (3, 3))];
        assert_eq!(late_commits(commits), 2);
        assert_eq!(late_commits(vec![commit(0, (1, 1)), commit(1, (2, 4))]), 0);
    }

    #[test]
    fn a_seed_decides_every_action() {
        assert_eq!(small().plan(), small().plan());
        let other = Workload { seed: 2, ..small() };
        assert_ne!(small().plan(), other.plan());
    }

    #[test]
    fn the_plan_covers_the_corner_cases() {
        let plan = small().plan();
        assert_eq!(plan.len(), 8);
        let transactions: Vec<&PlannedTransaction> = plan.iter().flatten().collect();
        let rolled_back = transactions.iter().filter(|t| !t.commit).count();
        assert!(rolled_back > 0 && rolled_back < transactions.len() / 3, "{rolled_back}");
        assert!(transactions.iter().any(|t| t.events.len() > 1));

        let mut types = BTreeMap::<&str, usize>::new();
        for event in transactions.iter().flat_map(|t| &t.events) {
            *types.entry(event.event_type).or_default() += 1;
        }
        for event_type in [
            "OrderCreated",
            "ItemAdded",
            "ItemRemoved",
            "ShippingAddressUpdated",
            "OrderConfirmed",
            "OrderCancelled",
            "OrderShipped",
            "OrderNoteAdded",
        ] {
            assert!(types.contains_key(event_type), "no {event_type} in {types:?}");
        }
        let created = plan
            .iter()
            .flatten()
            .flat_map(|t| &t.events)
            .filter(|e| e.event_type == "OrderCreated" && e.stream_id.starts_with("order-"))
            .count();
        assert_eq!(created, 8 * 30);
        // Writers share streams: some stream is written by more than one writer.
        let mut writers_of = BTreeMap::<&str, BTreeSet<usize>>::new();
        for (writer, transactions) in plan.iter().enumerate() {
            for event in transactions.iter().flat_map(|t| &t.events) {
                writers_of.entry(&event.stream_id).or_default().insert(writer);
            }
        }
        assert!(writers_of.values().any(|writers| writers.len() > 1));
    }

    #[test]
    fn every_planned_event_is_inside_the_domain_of_the_reference() {
        // Committing everything in plan order, one writer after another, is one possible
        // interleaving; the reference must find nothing invalid in it.
        let mut versions = BTreeMap::<String, i64>::new();
        let events: Vec<RefEvent> = small()
            .plan()
            .into_iter()
            .flatten()
            .flat_map(|t| t.events)
            .map(|event| {
                let version = versions.entry(event.stream_id.clone()).or_default();
                *version += 1;
                RefEvent {
                    stream_id: event.stream_id,
                    version: *version,
                    event_type: event.event_type.to_owned(),
                    data: event.data,
                    timestamp: event.timestamp.unwrap_or_default(),
                }
            })
            .collect();
        let expected = compute(events).unwrap();
        assert!(expected.order_summary.len() > 200);
        assert!(expected.revenue_by_day.len() >= 4, "{:?}", expected.revenue_by_day);
    }
}
