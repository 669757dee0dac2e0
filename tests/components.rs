//! The example projections as WebAssembly components, run by the engine's wasmtime runtime
//! (`refract::wasm`) over the fixtures of every rule of `ORDER_DOMAIN.md`: the rows must be
//! the hand-written ones and the same as the native run of the same code. Also `refract new`:
//! a scaffolded crate must pass its own tests and build to a component the runtime loads.
//!
//! The returned operations are applied to an in-memory model of the tables written here,
//! independently of the SDK's own merge code; no database is involved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use order_domain::fixtures::{self, Fixture, OrderSummaryRow, RevenueRow};
use order_summary::OrderSummary;
use refract::wasm::types::{self as wit, ColumnValue, Merge, Op};
use refract::wasm::{Instance, Limits, Projector, RowSource, Runtime};
use refract_sdk::testing::Harness;
use refract_sdk::{Cents, Key, Projection, Row, Value};
use revenue_by_day::RevenueByDay;

/// Rows by table and key, in the SDK's value types (so numerics compare by value).
type Tables = BTreeMap<String, BTreeMap<Key, Row>>;

/// The model of the projection's tables, shared with the instance's `get-row`.
#[derive(Clone)]
struct Model(Arc<Mutex<Tables>>);

impl RowSource for Model {
    fn get_row(&mut self, table: &str, key: &[ColumnValue]) -> Result<Option<Vec<ColumnValue>>, String> {
        let tables = self.0.lock().unwrap();
        let rows = tables.get(table).ok_or_else(|| format!("relation \"{table}\" does not exist"))?;
        Ok(rows.get(&key_from_wit(key)).map(|row| {
            row.columns()
                .map(|(column, value)| ColumnValue { column: column.to_owned(), value: value_to_wit(value) })
                .collect()
        }))
    }
}

impl Model {
    /// Empty tables of the projection `description` describes.
    fn new(description: &refract_sdk::Description) -> Model {
        let tables = description.tables.iter().map(|table| (table.name.clone(), BTreeMap::new())).collect();
        Model(Arc::new(Mutex::new(tables)))
    }

    /// Applies a batch's operations with the merge rules of the WIT contract.
    fn apply(&self, ops: Vec<Op>) {
        let mut tables = self.0.lock().unwrap();
        for op in ops {
            match op {
                Op::Upsert(upsert) => {
                    let key = key_from_wit(&upsert.key);
                    let rows = tables.get_mut(&upsert.table).expect("an upsert of a declared table");
                    let stored = rows.get(&key).cloned();
                    let mut row = stored.clone().unwrap_or_else(|| key_row(&upsert.key));
                    for update in upsert.columns {
                        let new = value_from_wit(update.value);
                        let old = stored.as_ref().and_then(|row| row.value(&update.column).cloned());
                        let value = match (update.merge, old) {
                            (Merge::Set, _) | (_, None) => new,
                            (Merge::Add, Some(old)) => add(old, new),
                            (Merge::KeepIfPresent, Some(Value::Null)) => new,
                            (Merge::KeepIfPresent, Some(old)) => old,
                        };
                        row.set(&update.column, value);
                    }
                    rows.insert(key, row);
                }
                Op::Delete(delete) => {
                    let rows = tables.get_mut(&delete.table).expect("a delete of a declared table");
                    rows.remove(&key_from_wit(&delete.key));
                }
                Op::Sql(statement) => {
                    panic!("the example projections emit no SQL: {}", statement.sql)
                }
            }
        }
    }

    fn rows(&self, table: &str) -> Vec<Row> {
        self.0.lock().unwrap()[table].values().cloned().collect()
    }
}

/// `COALESCE(old, 0) + new` for the integer and money columns of the examples.
fn add(old: Value, new: Value) -> Value {
    match (old, new) {
        (Value::Null, new) => new,
        (Value::Int(a), Value::Int(b)) => Value::Int(a + b),
        (Value::Numeric(a), Value::Numeric(b)) => {
            let cents = |text: &str| text.parse::<Cents>().expect("a money amount").cents();
            Value::Numeric(Cents::new(cents(&a) + cents(&b)).to_string())
        }
        (old, new) => panic!("cannot add {new:?} to {old:?}"),
    }
}

fn key_from_wit(key: &[ColumnValue]) -> Key {
    let mut columns = key.iter().map(|column| (column.column.as_str(), value_from_wit(column.value.clone())));
    let (first, value) = columns.next().expect("a key has a column");
    columns.fold(Key::new(first, value), |key, (column, value)| key.and(column, value))
}

fn key_row(key: &[ColumnValue]) -> Row {
    key.iter().map(|column| (column.column.clone(), value_from_wit(column.value.clone()))).collect()
}

fn value_from_wit(value: wit::Value) -> Value {
    match value {
        wit::Value::Null => Value::Null,
        wit::Value::Boolean(b) => Value::Bool(b),
        wit::Value::Int(i) => Value::Int(i),
        wit::Value::Numeric(text) => Value::Numeric(text),
        wit::Value::Float(f) => Value::Float(f),
        wit::Value::Text(text) => Value::Text(text),
        wit::Value::Json(text) => Value::Json(text),
        wit::Value::Uuid(text) => Value::Uuid(text),
        wit::Value::Timestamp(micros) => Value::Timestamp(micros),
        wit::Value::Date(days) => Value::Date(days),
    }
}

fn value_to_wit(value: &Value) -> wit::Value {
    match value.clone() {
        Value::Null => wit::Value::Null,
        Value::Bool(b) => wit::Value::Boolean(b),
        Value::Int(i) => wit::Value::Int(i),
        Value::Numeric(text) => wit::Value::Numeric(text),
        Value::Float(f) => wit::Value::Float(f),
        Value::Text(text) => wit::Value::Text(text),
        Value::Json(text) => wit::Value::Json(text),
        Value::Uuid(text) => wit::Value::Uuid(text),
        Value::Timestamp(micros) => wit::Value::Timestamp(micros),
        Value::Date(days) => wit::Value::Date(days),
        other => panic!("a value kind the WIT contract does not know: {other:?}"),
    }
}

fn event_to_wit(event: &refract_sdk::Event) -> wit::Event {
    wit::Event {
        global_position: event.global_position(),
        stream_id: event.stream_id().to_owned(),
        stream_version: event.stream_version(),
        event_id: event.event_id().to_owned(),
        event_type: event.event_type().to_owned(),
        data: event.data_bytes().to_vec(),
        metadata: event.metadata_bytes().to_vec(),
        timestamp: event.timestamp().micros(),
    }
}

fn load(path: &str) -> Projector {
    let runtime = Runtime::new().expect("a wasm runtime");
    runtime.load_file(Path::new(path)).unwrap_or_else(|error| panic!("cannot load {path}: {error}"))
}

/// A new instance of `projector` whose `get-row` reads `model`.
fn instantiate(projector: &Projector, name: &str, model: &Model) -> Instance {
    projector.instantiate(name, &Limits::default(), Box::new(model.clone())).expect("an instance")
}

/// Each example projection's component file, with the description of its native code.
fn components() -> [(&'static str, refract_sdk::Description); 2] {
    [
        (refract_projection_artifacts::ORDER_SUMMARY, OrderSummary::describe()),
        (refract_projection_artifacts::REVENUE_BY_DAY, RevenueByDay::describe()),
    ]
}

/// How a fixture's events reach the component.
#[derive(Debug, Clone, Copy)]
struct Feed {
    batch_size: usize,
    /// A new instance for every batch, as after an engine restart: an empty cache.
    new_instance_per_batch: bool,
    /// Drop the events the projection does not subscribe to, as the host does in SQL.
    filter: bool,
}

const FEEDS: &[Feed] = &[
    Feed { batch_size: usize::MAX, new_instance_per_batch: false, filter: true },
    Feed { batch_size: 1, new_instance_per_batch: false, filter: true },
    Feed { batch_size: 3, new_instance_per_batch: true, filter: true },
    Feed { batch_size: usize::MAX, new_instance_per_batch: false, filter: false },
];

/// Runs `fixture` through a component of `P`, returning the model of its tables.
fn run_component<P: Projection>(projector: &Projector, fixture: &Fixture, feed: Feed) -> Model {
    let description = P::describe();
    let model = Model::new(&description);
    let events: Vec<wit::Event> = fixture
        .events
        .iter()
        .filter(|event| !feed.filter || description.subscription.matches(event))
        .map(event_to_wit)
        .collect();
    let mut instance = instantiate(projector, &description.name, &model);
    for batch in events.chunks(feed.batch_size.min(events.len().max(1))) {
        let ops = instance
            .apply(batch)
            .unwrap_or_else(|error| panic!("{}: the component failed: {error}", fixture.name))
            .unwrap_or_else(|error| panic!("{}: the projection refused a batch: {error:?}", fixture.name));
        model.apply(ops);
        if feed.new_instance_per_batch {
            instance = instantiate(projector, &description.name, &model);
        }
    }
    model
}

/// Every table of `P` after the native run of `fixture` in one batch.
fn run_native<P: Projection>(fixture: &Fixture) -> BTreeMap<String, Vec<Row>> {
    let mut harness = Harness::<P>::new();
    harness.apply(fixture.events.clone()).unwrap_or_else(|error| panic!("{}: {error}", fixture.name));
    harness.description().tables.iter().map(|table| (table.name.clone(), harness.rows(&table.name))).collect()
}

/// Checks `P`'s component against every fixture: `expected(fixture)` from the fixture's
/// hand-written rows, `read(rows)` turns rows of the read-model table into the same form.
fn check_fixtures<P: Projection, T: PartialEq + std::fmt::Debug>(
    path: &str,
    table: &str,
    expected: impl Fn(&Fixture) -> Vec<T>,
    read: impl Fn(&Row) -> T,
) {
    let projector = load(path);
    for fixture in fixtures::all() {
        let native = run_native::<P>(&fixture);
        for &feed in FEEDS {
            let model = run_component::<P>(&projector, &fixture, feed);
            let context = format!("fixture {} ({}), {feed:?}", fixture.name, fixture.rule);
            let rows: Vec<T> = model.rows(table).iter().map(&read).collect();
            assert_eq!(rows, expected(&fixture), "{context}: hand-written rows");
            for (name, native_rows) in &native {
                assert_eq!(&model.rows(name), native_rows, "{context}: table {name}, native run");
            }
        }
    }
}

#[test]
fn order_summary_component_matches_the_fixtures_and_the_native_run() {
    check_fixtures::<OrderSummary, _>(
        refract_projection_artifacts::ORDER_SUMMARY,
        order_summary::ORDER_SUMMARY,
        |fixture| fixture.order_summary.clone(),
        |row| OrderSummaryRow::from_row(row).unwrap(),
    );
}

#[test]
fn revenue_by_day_component_matches_the_fixtures_and_the_native_run() {
    check_fixtures::<RevenueByDay, _>(
        refract_projection_artifacts::REVENUE_BY_DAY,
        revenue_by_day::REVENUE_BY_DAY,
        |fixture| fixture.revenue_by_day.clone(),
        |row| RevenueRow::from_row(row).unwrap(),
    );
}

#[test]
fn components_describe_themselves_as_their_native_code_does() {
    for (path, native) in components() {
        let mut instance = instantiate(&load(path), &native.name, &Model::new(&native));
        let description = instance.describe().unwrap();
        assert_eq!(description.name, native.name);
        assert_eq!(description.version, native.version);
        assert_eq!(description.subscription.event_types, native.subscription.event_types);
        assert_eq!(description.subscription.categories, vec!["order".to_owned()]);
        let tables: Vec<_> = description.tables.iter().map(|table| (table.name.clone(), table.ddl.clone())).collect();
        let expected: Vec<_> = native.tables.iter().map(|table| (table.name.clone(), table.ddl.clone())).collect();
        assert_eq!(tables, expected);
    }
    assert_eq!(
        refract_projection_artifacts::all().iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        ["order_summary", "revenue_by_day"]
    );
}

#[test]
fn a_payload_of_the_wrong_shape_is_a_typed_error_naming_the_event_not_a_trap() {
    let events: Vec<wit::Event> = fixtures::wrong_shape().iter().map(event_to_wit).collect();
    for (path, description) in components() {
        let name = &description.name;
        let mut instance = instantiate(&load(path), name, &Model::new(&description));
        let refused = instance.apply(&events).expect("no trap: the projection's own error");
        let error = refused.expect_err("the batch is refused");
        assert_eq!(error.global_position, Some(2), "{name}");
        assert!(
            error.message.starts_with("event 2 (ItemAdded, id e0000000-0000-4000-8000-000000000002"),
            "{name}: {}",
            error.message
        );
        assert!(
            error.message.contains("data is not a valid ItemAdded: invalid type: string \"two\""),
            "{name}: {}",
            error.message
        );
        // The instance survived its own error: it still answers.
        assert_eq!(&instance.describe().unwrap().name, name);
    }
}

/// A target dir shared by every run of the scaffold test, so that only the first one
/// compiles the SDK's dependencies.
fn scaffold_target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/scaffold-tests")
}

fn cargo(args: &[&str], manifest: &Path) -> std::process::Output {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .arg("--manifest-path")
        .arg(manifest)
        .env("CARGO_TARGET_DIR", scaffold_target_dir())
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn refract_new(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_refract")).arg("new").args(args).output().expect("refract runs")
}

#[test]
fn refract_new_scaffolds_a_crate_that_tests_natively_and_builds_a_loadable_component() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("shop_activity");
    let output = refract_new(&["shop_activity", "--path", crate_dir.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("path dependency on"), "{stdout}");
    assert!(crate_dir.join("README.md").exists());

    let manifest = crate_dir.join("Cargo.toml");
    let tests = cargo(&["test"], &manifest);
    let summary = String::from_utf8_lossy(&tests.stdout);
    assert!(summary.contains("test result: ok. 2 passed"), "{summary}");

    cargo(&["build", "--release", "--target", "wasm32-wasip2"], &manifest);
    let wasm = scaffold_target_dir().join("wasm32-wasip2/release/shop_activity.wasm");
    let no_tables = refract_sdk::Description::new("shop_activity", "0.1.0").table("shop_activity", "");
    let mut instance = instantiate(&load(wasm.to_str().unwrap()), "shop_activity", &Model::new(&no_tables));
    assert_eq!(instance.describe().unwrap().name, "shop_activity");
    let item = refract_sdk::Event::new("order-1", "ItemAdded", r#"{"product_id": "p1", "quantity": 2, "price": 1.5}"#);
    let ops = instance.apply(&[event_to_wit(&item)]).unwrap().unwrap();
    assert_eq!(ops.len(), 1, "one upsert for the one row touched: {ops:?}");
}

#[test]
fn refract_new_refuses_bad_names_and_occupied_directories_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["Shop", "shop-activity", "1shop", "self"] {
        let target = dir.path().join("x");
        let output = refract_new(&[bad, "--path", target.to_str().unwrap()]);
        assert!(!output.status.success(), "{bad} was accepted");
        assert!(String::from_utf8_lossy(&output.stderr).contains(&format!("invalid projection name `{bad}`")));
        assert!(!target.exists(), "{bad}: something was written");
    }
    let occupied = dir.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("keep.txt"), "mine").unwrap();
    let output = refract_new(&["shop", "--path", occupied.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already exists and is not an empty directory"));
    assert_eq!(std::fs::read_dir(&occupied).unwrap().count(), 1);
}
