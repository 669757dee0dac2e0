//! The projection's tables as `apply` sees them: read through a cache, written in memory,
//! and turned into one write per touched row at the end of each batch.

use std::collections::HashMap;
use std::mem;

use foldhash::fast::FixedState;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::decoded::Decoded;
use crate::op::{ColumnUpdate, Merge, Op, upsert_row};
use crate::{Description, Error, Json, Key, Row, Value, bytes};

/// Reads committed rows: the host's `get-row` in a component, in-memory tables in tests.
pub(crate) trait RowSource {
    /// The committed row of `table` with `key`, or `None`; an error is the host's message.
    fn get_row(&mut self, table: &str, key: &Key) -> Result<Option<Row>, String>;
}

/// The projection's tables during a batch.
///
/// - [`get`](State::get) reads a row: from the cache when the SDK knows it, otherwise from
///   the host (committed state, plus whatever this batch already wrote to it).
/// - [`put`](State::put) writes columns of a row, [`add`](State::add) adds to a counter
///   column, [`delete`](State::delete) deletes a row. Neither reads anything.
///
/// Writes stay in guest memory until the batch ends; then each touched row becomes one
/// operation (an upsert whose columns are set or added to, or a delete; a row deleted and
/// written again in one batch gives a delete followed by an upsert), in the order the rows
/// were first written.
///
/// Rows stay cached across batches: the host applies every batch a projection returns, or
/// throws the instance away. The cache holds about [`Projection::CACHE_ROWS`] rows per table
/// between batches (and the rows of the batch in flight on top); the rows used least
/// recently are dropped first, and only when no write of theirs is pending.
///
/// [`Projection::CACHE_ROWS`]: crate::Projection::CACHE_ROWS
pub struct State {
    /// The declared tables' names; `caches` holds their rows, in the same order.
    names: Vec<String>,
    caches: Vec<TableCache>,
    /// Rows with pending writes, in the order they were first written.
    dirty: Vec<(usize, Key)>,
    capacity: usize,
    source: Box<dyn RowSource>,
}

impl State {
    pub(crate) fn new(description: &Description, capacity: usize, source: Box<dyn RowSource>) -> State {
        let names: Vec<String> = description.tables.iter().map(|table| table.name.clone()).collect();
        let caches = names.iter().map(|_| TableCache::default()).collect();
        State { names, caches, dirty: Vec::new(), capacity, source }
    }

    /// The row of `table` with `key`, as this batch sees it (committed state plus the batch's
    /// own writes so far); `None` when there is no such row.
    ///
    /// A row the SDK knows comes from its cache; any other is read from the host. The row is
    /// lent, not copied: read what you need from it before the next write.
    pub fn get(&mut self, table: &str, key: impl Into<Key>) -> Result<Option<&Row>, Error> {
        let index = self.table_index(table)?;
        let key = key.into();
        let name = &self.names[index];
        let entry = self.caches[index].entry(&key);
        if let Known::Unknown = entry.row {
            let stored = self.source.get_row(name, &key).map_err(|message| Error::ReadRow {
                table: name.clone(),
                key: key.to_string(),
                message,
            })?;
            entry.row = entry.write.apply_to(stored, &key)?;
        }
        entry.settle()?;
        Ok(match &entry.row {
            Known::Present(row) => Some(row),
            Known::Absent | Known::Unknown => None,
        })
    }

    /// The JSON column `column` of the row of `table` with `key`, read into a `T`; `None` when
    /// there is no such row, an error when the column does not hold a `T`.
    ///
    /// For state a projection keeps in a `json`/`jsonb` column and reads for every event: the
    /// value stays decoded in the cache (as long as its row), so reading it again costs no
    /// parsing. Clone it to change it, and write it back with [`put_json`](State::put_json).
    pub fn get_json<T: DeserializeOwned + Serialize + 'static>(
        &mut self,
        table: &str,
        key: impl Into<Key>,
        column: &str,
    ) -> Result<Option<&T>, Error> {
        let index = self.table_index(table)?;
        let key = key.into();
        let decoded = |entry: &Entry| entry.decoded.as_ref().and_then(|decoded| decoded.get::<T>(column)).is_some();
        if !decoded(self.caches[index].entry(&key)) {
            let Some(row) = self.get(table, key.clone())? else {
                return Ok(None);
            };
            let Json(value) = row.get::<Json<T>>(column)?;
            self.caches[index].entry(&key).decoded = Some(Decoded::new(column, value, false));
        }
        Ok(self.caches[index].entry(&key).decoded.as_ref().and_then(|decoded| decoded.get(column)))
    }

    /// Writes `value` as JSON to column `column` of the row of `table` with `key` (inserting
    /// the row if there is none, as [`put`](State::put) does), keeping it decoded for
    /// [`get_json`](State::get_json). It is serialized once, when the batch ends or when the
    /// row is read whole with [`get`](State::get), however often it is written.
    ///
    /// `get_json` then returns `value` itself, not what its JSON reads back as, so give a type
    /// that reads back exactly (no `skip_serializing` fields, no `f64`s that do not round-trip):
    /// otherwise what a read sees would depend on whether the row was still cached. A value that
    /// cannot be serialized fails the batch when it ends, without naming an event.
    pub fn put_json<T: Serialize + 'static>(
        &mut self,
        table: &str,
        key: impl Into<Key>,
        column: &str,
        value: T,
    ) -> Result<(), Error> {
        let key = key.into();
        if key.contains(column) {
            return Err(Error::Value(format!("`{column}` is a key column of `{table}`: it cannot hold JSON state")));
        }
        // Until it is serialized, the row and its pending write hold a placeholder.
        let index = self.write(table, key.clone(), vec![(column.to_owned(), Change::Set(Value::Null))])?;
        let entry = self.caches[index].entry(&key);
        // Another column kept decoded gives way, its value serialized.
        entry.settle()?;
        entry.decoded = Some(Decoded::new(column, value, true));
        Ok(())
    }

    /// Writes the columns of `row` to the row of `table` with `key`: inserts it, or updates
    /// these columns and keeps the others. Key columns in `row` are ignored.
    ///
    /// Give every column the table needs on insert (`NOT NULL` ones); a column left out
    /// keeps its stored value, or gets its default on insert.
    pub fn put(&mut self, table: &str, key: impl Into<Key>, row: Row) -> Result<(), Error> {
        let key = key.into();
        let changes = row
            .into_columns()
            .into_iter()
            .filter(|(column, _)| !key.contains(column))
            .map(|(column, value)| (column, Change::Set(value)))
            .collect();
        self.write(table, key, changes).map(drop)
    }

    /// Adds `amount` to `column` of the row of `table` with `key`, without reading it:
    /// `COALESCE(column, 0) + amount`, or `amount` when the row is inserted. For counters
    /// and sums; integers add to `int` columns, [`Cents`](crate::Cents) and other decimals
    /// to `numeric` ones.
    pub fn add(
        &mut self,
        table: &str,
        key: impl Into<Key>,
        column: &str,
        amount: impl Into<Value>,
    ) -> Result<(), Error> {
        self.write(table, key.into(), vec![(column.to_owned(), Change::Add(amount.into()))]).map(drop)
    }

    /// Deletes the row of `table` with `key`, if there is one.
    pub fn delete(&mut self, table: &str, key: impl Into<Key>) -> Result<(), Error> {
        let index = self.table_index(table)?;
        let key = key.into();
        let entry = self.caches[index].entry(&key);
        let was_clean = entry.write.is_clean();
        entry.row = Known::Absent;
        entry.write = Write { delete: true, changes: Vec::new() };
        entry.decoded = None;
        if was_clean {
            self.dirty.push((index, key));
        }
        Ok(())
    }

    /// Records `changes` of the row of `table` with `key`; the table's index.
    fn write(&mut self, table: &str, key: Key, changes: Vec<(String, Change)>) -> Result<usize, Error> {
        let index = self.table_index(table)?;
        let entry = self.caches[index].entry(&key);
        // A decoded column written otherwise is decoded no more; an addition to it needs its text.
        let overwritten = entry.decoded.as_ref().and_then(|decoded| {
            changes.iter().find(|(column, _)| bytes::equal(column, decoded.column())).map(|(_, change)| change)
        });
        if let Some(change) = overwritten {
            if matches!(change, Change::Add(_)) {
                entry.settle()?;
            }
            entry.decoded = None;
        }
        let was_clean = entry.write.is_clean();
        // Keep a cached row current; a row never read stays unknown, at no cost.
        let stored = match mem::take(&mut entry.row) {
            Known::Unknown => None,
            Known::Absent => Some(None),
            Known::Present(row) => Some(Some(row)),
        };
        if let Some(stored) = stored {
            entry.row = Known::Present(changed(stored, &key, &changes)?);
        }
        for (column, change) in changes {
            entry.write.combine(column, change)?;
        }
        if was_clean {
            self.dirty.push((index, key));
        }
        Ok(index)
    }

    /// Ends the batch: the pending writes as operations, and the cache trimmed to its bound.
    pub(crate) fn flush(&mut self) -> Result<Vec<Op>, Error> {
        let mut ops = Vec::with_capacity(self.dirty.len());
        for (index, key) in self.dirty.drain(..) {
            let (cache, table) = (&mut self.caches[index], &self.names[index]);
            let Some(entry) = cache.hot.get_mut(&key) else {
                continue;
            };
            entry.settle()?;
            let write = mem::take(&mut entry.write);
            // Nothing worth keeping is known about a row that was written without being read.
            if let Known::Unknown = entry.row {
                cache.hot.remove(&key);
            }
            if write.delete {
                ops.push(Op::Delete { table: table.clone(), key: key.clone() });
            }
            if !write.changes.is_empty() {
                let columns = write.changes.into_iter().map(|(column, change)| change.into_update(column)).collect();
                ops.push(Op::Upsert { table: table.clone(), key, columns });
            }
        }
        for cache in &mut self.caches {
            cache.trim(self.capacity);
        }
        Ok(ops)
    }

    fn table_index(&self, table: &str) -> Result<usize, Error> {
        self.names
            .iter()
            .position(|name| bytes::equal(name, table))
            .ok_or_else(|| Error::UnknownTable { table: table.to_owned(), declared: self.names.join(", ") })
    }
}

/// The cached rows of one table, in two generations: rows used since the last rotation
/// (`hot`) and rows used in the generation before (`cold`). Using a cold row moves it back
/// to `hot`; a rotation drops `cold`. That approximates least-recently-used eviction at the
/// cost of one map move per rotation.
///
/// The maps hash with a fixed seed: the cache behaves the same in every run, and needs no
/// randomness from the host.
#[derive(Default)]
struct TableCache {
    hot: HashMap<Key, Entry, FixedState>,
    cold: HashMap<Key, Entry, FixedState>,
}

impl TableCache {
    fn entry(&mut self, key: &Key) -> &mut Entry {
        let cold = &mut self.cold;
        self.hot.entry(key.clone()).or_insert_with(|| cold.remove(key).unwrap_or_default())
    }

    /// Between batches, where no write is pending: keeps at most `capacity` rows.
    fn trim(&mut self, capacity: usize) {
        if self.hot.len() > capacity / 2 {
            self.cold = mem::take(&mut self.hot);
            if self.cold.len() > capacity {
                // One batch touched more rows than the whole cache may hold.
                self.cold.clear();
            }
        }
    }
}

/// The row after `changes`, given the stored one (`None`: the row is inserted).
fn changed(stored: Option<Row>, key: &Key, changes: &[(String, Change)]) -> Result<Row, Error> {
    upsert_row(stored, key, changes.iter().map(|(column, change)| change.parts(column)))
}

/// What the SDK knows about one row.
#[derive(Default)]
struct Entry {
    /// The row as the current batch sees it.
    row: Known,
    /// Writes of the current batch, not yet returned to the host.
    write: Write,
    /// One JSON column kept decoded (`get_json`, `put_json`); only for a row that exists.
    decoded: Option<Decoded>,
}

impl Entry {
    /// Serializes a decoded value written since the row and its pending write last held its
    /// text, into both.
    fn settle(&mut self) -> Result<(), Error> {
        let Some(decoded) = self.decoded.as_mut().filter(|decoded| decoded.pending) else {
            return Ok(());
        };
        let value = decoded.to_value()?;
        if let Known::Present(row) = &mut self.row {
            row.set(decoded.column(), value.clone());
        }
        if let Some((_, change)) =
            self.write.changes.iter_mut().find(|(column, _)| bytes::equal(column, decoded.column()))
        {
            *change = Change::Set(value);
        }
        decoded.pending = false;
        Ok(())
    }
}

#[derive(Default)]
enum Known {
    /// Not read: the committed row may or may not exist.
    #[default]
    Unknown,
    Absent,
    Present(Row),
}

/// The pending writes of one row: a delete first, if any, then column changes.
#[derive(Default)]
struct Write {
    delete: bool,
    changes: Vec<(String, Change)>,
}

enum Change {
    Set(Value),
    Add(Value),
}

impl Change {
    fn into_update(self, column: String) -> ColumnUpdate {
        let (value, merge) = match self {
            Change::Set(value) => (value, Merge::Set),
            Change::Add(value) => (value, Merge::Add),
        };
        ColumnUpdate { column, value, merge }
    }

    fn parts<'a>(&'a self, column: &'a str) -> (&'a str, &'a Value, Merge) {
        match self {
            Change::Set(value) => (column, value, Merge::Set),
            Change::Add(value) => (column, value, Merge::Add),
        }
    }
}

impl Write {
    fn is_clean(&self) -> bool {
        !self.delete && self.changes.is_empty()
    }

    /// Folds a later change of `column` into the pending ones, so that the single upsert
    /// emitted has the effect of both.
    fn combine(&mut self, column: String, change: Change) -> Result<(), Error> {
        let Some((_, pending)) = self.changes.iter_mut().find(|(name, _)| bytes::equal(name, &column)) else {
            self.changes.push((column, change));
            return Ok(());
        };
        *pending = match (&*pending, change) {
            (_, Change::Set(value)) => Change::Set(value),
            (Change::Set(old), Change::Add(amount)) => Change::Set(old.checked_add(&amount)?),
            (Change::Add(old), Change::Add(amount)) => Change::Add(old.checked_add(&amount)?),
        };
        Ok(())
    }

    /// The row after these writes, given the committed one.
    fn apply_to(&self, stored: Option<Row>, key: &Key) -> Result<Known, Error> {
        let base = if self.delete { None } else { stored };
        if self.changes.is_empty() {
            return Ok(base.map_or(Known::Absent, Known::Present));
        }
        changed(base, key, &self.changes).map(Known::Present)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use serde::Deserialize;

    use super::*;
    use crate::testing::Harness;
    use crate::{Event, Projection};

    /// A projection driven by its events: each one is a command on table `kv`
    /// (`k text PRIMARY KEY, n bigint, s text`), and `get` copies what it reads into `seen`.
    struct Script;

    #[derive(Deserialize)]
    struct Command {
        k: String,
        #[serde(default)]
        n: i64,
    }

    impl Projection for Script {
        const CACHE_ROWS: usize = 4;

        fn describe() -> Description {
            Description::new("script", "1")
                .table("kv", "CREATE TABLE kv (k text PRIMARY KEY, n bigint, s text)")
                .table("seen", "CREATE TABLE seen (at bigint PRIMARY KEY, n bigint)")
        }

        fn apply(event: &Event, state: &mut State) -> Result<(), Error> {
            let Command { k, n } = event.data()?;
            let key = Key::new("k", k);
            match event.event_type() {
                "put" => state.put("kv", key, Row::new().with("n", n).with("s", "put")),
                "add" => state.add("kv", key, "n", n),
                "delete" => state.delete("kv", key),
                "get" => {
                    let n = state.get("kv", key)?.map(|row| row.get::<Option<i64>>("n")).transpose()?.flatten();
                    state.put("seen", ("at", event.global_position()), Row::new().with("n", n))
                }
                "typo" => state.put("kv_typo", key, Row::new()),
                other => Err(Error::msg(format!("unknown command {other}"))),
            }
        }
    }

    fn events(commands: &[(&str, &str, i64)]) -> Vec<Event> {
        commands
            .iter()
            .enumerate()
            .map(|(i, (command, k, n))| {
                Event::new("s", *command, format!(r#"{{"k":"{k}","n":{n}}}"#)).with_position(i as i64 + 1)
            })
            .collect()
    }

    fn n_of(harness: &Harness<Script>, k: &str) -> Option<Option<i64>> {
        harness.row("kv", ("k", k)).map(|row| row.get("n").unwrap())
    }

    fn seen<P: Projection>(harness: &Harness<P>, at: i64) -> Option<i64> {
        harness.row("seen", ("at", at)).expect("a seen row").get("n").unwrap()
    }

    #[test]
    fn a_batch_emits_one_upsert_per_touched_row() {
        let mut harness = Harness::<Script>::new();
        let ops = harness
            .apply(events(&[("put", "a", 1), ("add", "a", 2), ("add", "b", 5), ("add", "a", 3), ("add", "b", 1)]))
            .unwrap();
        let update = |column: &str, value: Value, merge| ColumnUpdate { column: column.into(), value, merge };
        assert_eq!(
            ops,
            vec![
                Op::Upsert {
                    table: "kv".into(),
                    key: Key::new("k", "a"),
                    columns: vec![
                        update("n", Value::Int(6), Merge::Set),
                        update("s", Value::Text("put".into()), Merge::Set)
                    ],
                },
                Op::Upsert {
                    table: "kv".into(),
                    key: Key::new("k", "b"),
                    columns: vec![update("n", Value::Int(6), Merge::Add)]
                },
            ]
        );
        assert_eq!(n_of(&harness, "a"), Some(Some(6)));
        assert_eq!(n_of(&harness, "b"), Some(Some(6)));
    }

    #[test]
    fn reads_see_committed_rows_plus_the_batchs_own_writes() {
        let mut harness = Harness::<Script>::new();
        harness.apply(events(&[("put", "a", 10)])).unwrap();
        harness.restart();
        // Blind adds, then a read: the committed 10 plus the pending 1 + 2.
        harness.apply(events(&[("add", "a", 1), ("add", "a", 2), ("get", "a", 0), ("get", "zz", 0)])).unwrap();
        assert_eq!(seen(&harness, 3), Some(13));
        assert_eq!(seen(&harness, 4), None);
        assert_eq!(n_of(&harness, "a"), Some(Some(13)));
    }

    #[test]
    fn a_row_deleted_and_written_again_gives_a_delete_then_an_upsert() {
        let mut harness = Harness::<Script>::new();
        harness.apply(events(&[("put", "a", 10)])).unwrap();
        let ops =
            harness.apply(events(&[("add", "a", 1), ("delete", "a", 0), ("add", "a", 7), ("get", "a", 0)])).unwrap();
        assert!(matches!(ops.as_slice(), [Op::Delete { .. }, Op::Upsert { .. }, Op::Upsert { .. }]), "{ops:?}");
        assert_eq!(seen(&harness, 4), Some(7));
        // `s` was not written after the delete: the re-created row does not have it.
        assert_eq!(harness.row("kv", ("k", "a")), Some(Row::new().with("k", "a").with("n", 7)));
        let ops = harness.apply(events(&[("delete", "a", 0), ("delete", "nothing", 0)])).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(n_of(&harness, "a"), None);
    }

    #[test]
    fn every_batch_split_and_restart_gives_the_same_tables() {
        let script = events(&[
            ("put", "a", 1),
            ("add", "a", 2),
            ("add", "b", 3),
            ("get", "a", 0),
            ("delete", "a", 0),
            ("get", "a", 0),
            ("add", "a", 4),
            ("put", "c", 1),
            ("add", "c", -1),
            ("get", "c", 0),
            ("put", "d", 1),
            ("put", "e", 1),
            ("put", "f", 1),
            ("get", "b", 0),
        ]);
        assert_same_tables_whatever_the_batches::<Script>(&script, &["kv", "seen"]);
    }

    /// Applies `script` in batches of every size, with and without a new instance after each
    /// batch, and compares `tables` with those of one batch.
    fn assert_same_tables_whatever_the_batches<P: Projection>(script: &[Event], tables: &[&str]) {
        let mut whole = Harness::<P>::new();
        whole.apply(script.to_vec()).unwrap();
        for size in 1..script.len() {
            for restart in [false, true] {
                let mut split = Harness::<P>::new();
                for batch in script.chunks(size) {
                    split.apply(batch.to_vec()).unwrap();
                    if restart {
                        split.restart();
                    }
                }
                for table in tables {
                    assert_eq!(split.rows(table), whole.rows(table), "{table}: batches of {size}, restart {restart}");
                }
            }
        }
    }

    #[test]
    fn an_error_writes_nothing_and_names_the_event() {
        let mut harness = Harness::<Script>::new();
        harness.apply(events(&[("put", "a", 1)])).unwrap();
        let error = harness.apply(events(&[("add", "a", 1), ("typo", "a", 0)])).unwrap_err();
        assert_eq!(error.global_position, Some(2));
        assert_eq!(
            error.message,
            "event 2 (typo, id , stream s, version 1): table `kv_typo` is not one of the projection's tables (kv, seen)"
        );
        assert_eq!(n_of(&harness, "a"), Some(Some(1)));
        // The next batch runs on a fresh instance that reads the committed row back.
        harness.apply(events(&[("add", "a", 1), ("get", "a", 0)])).unwrap();
        assert_eq!(seen(&harness, 2), Some(2));
    }

    /// Counts the host reads.
    struct Counting {
        reads: Rc<Cell<usize>>,
    }

    impl RowSource for Counting {
        fn get_row(&mut self, _: &str, key: &Key) -> Result<Option<Row>, String> {
            self.reads.set(self.reads.get() + 1);
            Ok(Some(key.to_row().with("n", 0)))
        }
    }

    #[test]
    fn rows_are_read_from_the_host_only_on_a_miss_and_the_cache_stays_bounded() {
        let reads = Rc::new(Cell::new(0));
        let mut state = State::new(&Script::describe(), 4, Box::new(Counting { reads: Rc::clone(&reads) }));
        let get = |state: &mut State, k: &str| state.get("kv", ("k", k)).unwrap().unwrap().get::<i64>("n").unwrap();
        assert_eq!(get(&mut state, "a"), 0);
        state.add("kv", ("k", "a"), "n", 5).unwrap();
        assert_eq!(get(&mut state, "a"), 5);
        state.flush().unwrap();
        assert_eq!(get(&mut state, "a"), 5, "the cache assumes the batch was applied");
        assert_eq!(reads.get(), 1);
        // A blind write is not a read, and its row is not kept: the next read asks the host.
        state.add("kv", ("k", "b"), "n", 1).unwrap();
        state.flush().unwrap();
        assert_eq!(reads.get(), 1);
        get(&mut state, "b");
        assert_eq!(reads.get(), 2);
        // Touch many rows: at most 4 stay cached per table between batches.
        for k in 0..20 {
            get(&mut state, &k.to_string());
            state.flush().unwrap();
        }
        let cached = state.caches[0].hot.len() + state.caches[0].cold.len();
        assert!(cached <= 4, "{cached} rows cached");
        let before = reads.get();
        get(&mut state, "19");
        assert_eq!(reads.get(), before, "the row used last is still cached");
        get(&mut state, "0");
        assert_eq!(reads.get(), before + 1, "the row used first was evicted");
    }

    /// A projection keeping a list in a JSON column of `lists` (`k text PRIMARY KEY, items
    /// jsonb, tags jsonb, n bigint`), read and written decoded (`tag` writes the other JSON
    /// column); `sum` and `len` copy what they read into `seen`, `len` through the whole row
    /// (its JSON text).
    struct Lists;

    impl Projection for Lists {
        const CACHE_ROWS: usize = 4;

        fn describe() -> Description {
            Description::new("lists", "1")
                .table("lists", "CREATE TABLE lists (k text PRIMARY KEY, items jsonb, tags jsonb, n bigint)")
                .table("seen", "CREATE TABLE seen (at bigint PRIMARY KEY, n bigint)")
        }

        fn apply(event: &Event, state: &mut State) -> Result<(), Error> {
            let Command { k, n } = event.data()?;
            let key = Key::new("k", k);
            let seen = |state: &mut State, n: Option<i64>| {
                state.put("seen", ("at", event.global_position()), Row::new().with("n", n))
            };
            match event.event_type() {
                "push" => {
                    let items = state.get_json::<Vec<i64>>("lists", key.clone(), "items")?;
                    let mut items = items.cloned().unwrap_or_default();
                    items.push(n);
                    state.put_json("lists", key, "items", items)
                }
                "sum" => {
                    let sum = state.get_json::<Vec<i64>>("lists", key, "items")?.map(|items| items.iter().sum());
                    seen(state, sum)
                }
                "len" => {
                    let items = state.get("lists", key)?.map(|row| row.get::<Json<Vec<i64>>>("items")).transpose()?;
                    seen(state, items.map(|Json(items)| items.len() as i64))
                }
                "tag" => state.put_json("lists", key, "tags", [n]),
                "count" => state.add("lists", key, "n", n),
                "reset" => state.put("lists", key, Row::new().with("items", Value::json(&[n])?)),
                "delete" => state.delete("lists", key),
                other => Err(Error::msg(format!("unknown command {other}"))),
            }
        }
    }

    fn items_of(harness: &Harness<Lists>, k: &str) -> Option<Vec<i64>> {
        harness.row("lists", ("k", k)).map(|row| row.get::<Json<Vec<i64>>>("items").unwrap().0)
    }

    /// Reads and writes of a decoded JSON column mixed with every other kind of access.
    fn list_script() -> Vec<Event> {
        events(&[
            ("push", "a", 1),
            ("push", "a", 2),
            ("sum", "a", 0),
            ("count", "a", 5),
            ("len", "a", 0),
            ("push", "a", 3),
            ("sum", "a", 0),
            ("reset", "b", 7),
            ("push", "b", 8),
            ("sum", "b", 0),
            ("delete", "a", 0),
            ("sum", "a", 0),
            ("push", "a", 4),
            ("len", "a", 0),
            ("push", "c", 1),
            ("tag", "c", 5),
            ("push", "c", 2),
            ("push", "d", 1),
            ("push", "e", 1),
            ("reset", "b", 9),
            ("len", "b", 0),
            ("sum", "b", 0),
        ])
    }

    #[test]
    fn json_state_reads_back_what_was_written_and_is_serialized_once_per_row() {
        let mut harness = Harness::<Lists>::new();
        let ops =
            harness.apply(events(&[("push", "a", 1), ("push", "a", 2), ("count", "a", 5), ("push", "a", 3)])).unwrap();
        let update = |column: &str, value: Value, merge| ColumnUpdate { column: column.into(), value, merge };
        assert_eq!(
            ops,
            vec![Op::Upsert {
                table: "lists".into(),
                key: Key::new("k", "a"),
                columns: vec![
                    update("items", Value::Json("[1,2,3]".into()), Merge::Set),
                    update("n", Value::Int(5), Merge::Add)
                ],
            }]
        );
        let mut harness = Harness::<Lists>::new();
        harness.apply(list_script()).unwrap();
        // Written by hand from the script.
        for (at, expected) in [(3, Some(3)), (5, Some(2)), (7, Some(6)), (10, Some(15)), (12, None), (14, Some(1))] {
            assert_eq!(seen(&harness, at), expected, "seen at {at}");
        }
        assert_eq!((seen(&harness, 21), seen(&harness, 22)), (Some(1), Some(9)));
        assert_eq!(items_of(&harness, "a"), Some(vec![4]));
        assert_eq!(harness.row("lists", ("k", "a")).unwrap().value("n"), None, "deleted with its count");
        assert_eq!(items_of(&harness, "b"), Some(vec![9]));
        assert_eq!(items_of(&harness, "e"), Some(vec![1]));
        // Two JSON columns of one row, written in turn.
        assert_eq!(items_of(&harness, "c"), Some(vec![1, 2]));
        let tags = harness.row("lists", ("k", "c")).unwrap().get::<Json<Vec<i64>>>("tags").unwrap().0;
        assert_eq!(tags, vec![5]);
    }

    #[test]
    fn json_state_gives_the_same_tables_whatever_the_batches_and_restarts() {
        assert_same_tables_whatever_the_batches::<Lists>(&list_script(), &["lists", "seen"]);
    }

    #[test]
    fn json_state_of_the_wrong_type_or_in_a_key_column_is_an_error() {
        let mut state = State::new(&Lists::describe(), 4, Box::new(Counting { reads: Rc::new(Cell::new(0)) }));
        state.put("lists", ("k", "x"), Row::new().with("items", Value::json(&"text").unwrap())).unwrap();
        let error = state.get_json::<Vec<i64>>("lists", ("k", "x"), "items").unwrap_err().to_string();
        assert!(error.contains("JSON column does not match Vec<i64>"), "{error}");
        let error = state.put_json("lists", ("k", "x"), "k", vec![1]).unwrap_err().to_string();
        assert!(error.contains("`k` is a key column"), "{error}");
    }
}
