//! Running a projection natively, without wasm and without a database.
//!
//! [`Harness`] runs a projection's code as the engine would run the component: it filters
//! events by the projection's subscription, applies them in batches through the same
//! [`State`](crate::State) (cache, coalescing and all), and applies the returned operations
//! to in-memory tables with the host's merge rules.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::rc::Rc;

use crate::op::{ColumnUpdate, upsert_row};
use crate::runner::Runner;
use crate::state::RowSource;
use crate::{Description, Event, Key, Op, Projection, ProjectionError, Row};

type Tables = BTreeMap<String, BTreeMap<Key, Row>>;

/// A projection running over in-memory tables.
///
/// ```
/// # use refract_sdk::{Description, Error, Event, Projection, State};
/// # struct Counter;
/// # impl Projection for Counter {
/// #     fn describe() -> Description {
/// #         Description::new("counts", "1.0.0").table("counts", "CREATE TABLE counts (event_type text PRIMARY KEY, n bigint NOT NULL)")
/// #     }
/// #     fn apply(event: &Event, state: &mut State) -> Result<(), Error> {
/// #         state.add("counts", ("event_type", event.event_type()), "n", 1)
/// #     }
/// # }
/// use refract_sdk::testing::Harness;
///
/// let mut harness = Harness::<Counter>::new();
/// harness.apply([Event::new("order-1", "OrderCreated", "{}")]).unwrap();
/// harness.restart(); // a new instance: empty cache, same tables
/// harness.apply([Event::new("order-1", "OrderConfirmed", "{}"), Event::new("order-2", "OrderCreated", "{}")]).unwrap();
/// let row = harness.row("counts", ("event_type", "OrderCreated")).unwrap();
/// assert_eq!(row.get::<i64>("n").unwrap(), 2);
/// ```
pub struct Harness<P: Projection> {
    description: Description,
    tables: Rc<RefCell<Tables>>,
    runner: Runner,
    projection: PhantomData<fn() -> P>,
}

impl<P: Projection> Default for Harness<P> {
    fn default() -> Self {
        Harness::new()
    }
}

impl<P: Projection> Harness<P> {
    /// A new instance of `P` over empty tables.
    pub fn new() -> Self {
        let description = P::describe();
        let tables = description.tables.iter().map(|table| (table.name.clone(), BTreeMap::new())).collect();
        Harness {
            description,
            tables: Rc::new(RefCell::new(tables)),
            runner: Runner::default(),
            projection: PhantomData,
        }
    }

    /// What the projection says about itself.
    pub fn description(&self) -> &Description {
        &self.description
    }

    /// Applies `events` as one batch, after dropping those the projection does not
    /// subscribe to (as the host does), and writes the resulting operations, which it also
    /// returns, to the tables. On an error nothing is written and the instance is replaced,
    /// as the engine does.
    pub fn apply(&mut self, events: impl IntoIterator<Item = Event>) -> Result<Vec<Op>, ProjectionError> {
        let subscription = &self.description.subscription;
        let events: Vec<Event> = events.into_iter().filter(|event| subscription.matches(event)).collect();
        let tables = Rc::clone(&self.tables);
        let result = self.runner.apply::<P>(events, || Box::new(MemoryRows(tables)));
        let ops = result.inspect_err(|_| self.runner.reset())?;
        self.write(&ops)?;
        Ok(ops)
    }

    /// Starts a new instance over the same tables, as after a restart of the engine: the
    /// cache is empty and rows are read back from the tables.
    pub fn restart(&mut self) {
        self.runner.reset();
    }

    /// The row of `table` with `key`, if there is one.
    pub fn row(&self, table: &str, key: impl Into<Key>) -> Option<Row> {
        self.tables.borrow().get(table)?.get(&key.into()).cloned()
    }

    /// All rows of `table`, ordered by key. Empty for a table the projection does not have.
    pub fn rows(&self, table: &str) -> Vec<Row> {
        self.tables.borrow().get(table).map(|rows| rows.values().cloned().collect()).unwrap_or_default()
    }

    /// Writes `ops` all or nothing, as the host's transaction would.
    fn write(&mut self, ops: &[Op]) -> Result<(), ProjectionError> {
        let mut tables = self.tables.borrow_mut();
        // The batch's rows as they change, applied to the tables only once every op is valid.
        let mut changed: BTreeMap<(String, Key), Option<Row>> = BTreeMap::new();
        for op in ops {
            let refused = |message: String| ProjectionError {
                message: format!("the host refuses {op:?}: {message}"),
                global_position: None,
            };
            let rows = tables.get(op.table()).ok_or_else(|| refused("no such table".into()))?;
            let (table, key, row) = match op {
                Op::Delete { table, key } => (table, key, None),
                Op::Upsert { table, key, columns } => {
                    let slot = (table.clone(), key.clone());
                    let stored = changed.get(&slot).cloned().unwrap_or_else(|| rows.get(key).cloned());
                    (
                        table,
                        key,
                        Some(
                            upsert_row(stored, key, columns.iter().map(ColumnUpdate::parts))
                                .map_err(|error| refused(error.to_string()))?,
                        ),
                    )
                }
            };
            changed.insert((table.clone(), key.clone()), row);
        }
        for ((table, key), row) in changed {
            let rows = tables.entry(table).or_default();
            match row {
                Some(row) => rows.insert(key, row),
                None => rows.remove(&key),
            };
        }
        Ok(())
    }
}

/// The harness's tables as the host's `get-row` sees them.
struct MemoryRows(Rc<RefCell<Tables>>);

impl RowSource for MemoryRows {
    fn get_row(&mut self, table: &str, key: &Key) -> Result<Option<Row>, String> {
        let tables = self.0.borrow();
        let rows = tables.get(table).ok_or_else(|| format!("relation \"{table}\" does not exist"))?;
        Ok(rows.get(key).cloned())
    }
}
