//! Translating a batch's write operations into few set-based statements.
//!
//! Operations of the same shape (same table, same columns, same merge rules) become one
//! statement over `unnest` of text arrays: one multi-row upsert or delete instead of one
//! statement per row. What order can change is kept: writes to one row stay in order, and a
//! raw SQL statement sees everything before it and nothing after (see [`Segment`]).

use std::collections::HashMap;
use std::error::Error;

use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};

use super::tables::{Tables, quote_ident};
use super::value::{ValueError, describe, fits, to_text};
use crate::wasm::types::{ColumnUpdate, ColumnValue, Merge, Op, Value};

/// A statement ready to run: SQL text written by the engine, and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SQL text.
    pub sql: String,
    /// The parameters, in order.
    pub params: Vec<Param>,
}

/// A statement parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// A column of values, bound as `text[]` and cast to the column's type in SQL.
    Column(Vec<Option<String>>),
    /// One value sent in PostgreSQL's text format, so that the server parses it as whatever
    /// type the statement gives the parameter (`$1` compared with a `uuid` column is a `uuid`).
    Scalar(Option<String>),
}

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Param::Column(values) => values.to_sql(ty, out),
            Param::Scalar(Some(text)) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            Param::Scalar(None) => Ok(IsNull::Yes),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        match self {
            Param::Column(_) => Format::Binary,
            Param::Scalar(_) => Format::Text,
        }
    }

    to_sql_checked!();
}

/// An operation the engine refuses before it reaches the database.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The table is not one of the projection's own.
    #[error("operation {index}: table {table:?} is not a table of this projection")]
    UnknownTable {
        /// Index of the operation in the batch.
        index: usize,
        /// The table named.
        table: String,
    },
    /// The column does not exist in the table.
    #[error("operation {index}: table {table:?} has no column {column:?}")]
    UnknownColumn {
        /// Index of the operation in the batch.
        index: usize,
        /// The table named.
        table: String,
        /// The column named.
        column: String,
    },
    /// An upsert or delete without a key.
    #[error("operation {index}: the key of a write to {table:?} is empty")]
    EmptyKey {
        /// Index of the operation in the batch.
        index: usize,
        /// The table named.
        table: String,
    },
    /// A column named twice in one operation.
    #[error("operation {index}: column {column:?} appears twice")]
    DuplicateColumn {
        /// Index of the operation in the batch.
        index: usize,
        /// The column named twice.
        column: String,
    },
    /// A raw SQL statement that would end the batch's transaction or change the session.
    #[error("operation {index}: {keyword} is not allowed in a projection's SQL")]
    Forbidden {
        /// Index of the operation in the batch.
        index: usize,
        /// The statement's first keyword.
        keyword: String,
    },
    /// A value of a type its column cannot take.
    #[error("operation {index}: column {column:?} of table {table:?} is {column_type}, but the value is {value}")]
    Type {
        /// Index of the operation in the batch.
        index: usize,
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The column's type.
        column_type: String,
        /// The value, described (kind and content).
        value: String,
    },
    /// A value PostgreSQL would refuse.
    #[error("operation {index}, column {column:?}: {error}")]
    Value {
        /// Index of the operation in the batch.
        index: usize,
        /// The column.
        column: String,
        /// What is wrong with the value.
        error: ValueError,
    },
}

/// What makes two upserts or deletes mergeable into one statement.
#[derive(Debug, PartialEq, Eq)]
enum Shape {
    Upsert {
        table: String,
        key: Vec<String>,
        columns: Vec<(String, MergeRule)>,
    },
    /// Upserts of rows known not to exist: inserted, without looking for them first.
    Insert {
        table: String,
        key: Vec<String>,
        columns: Vec<String>,
    },
    Delete {
        table: String,
        key: Vec<String>,
    },
}

impl Shape {
    /// This upsert as an insert, when `new` says its row does not exist.
    fn inserting(self, new: bool) -> Shape {
        match self {
            Shape::Upsert { table, key, columns } if new => {
                Shape::Insert { table, key, columns: columns.into_iter().map(|(name, _)| name).collect() }
            }
            shape => shape,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MergeRule {
    Set,
    Add,
    KeepIfPresent,
}

impl From<Merge> for MergeRule {
    fn from(merge: Merge) -> Self {
        match merge {
            Merge::Set => MergeRule::Set,
            Merge::Add => MergeRule::Add,
            Merge::KeepIfPresent => MergeRule::KeepIfPresent,
        }
    }
}

/// Same-shaped operations gathered into one statement.
struct Run {
    shape: Shape,
    /// One text array per column (key columns first).
    columns: Vec<Vec<Option<String>>>,
}

/// Plans the statements that apply `ops` to the tables in `tables`, in order.
pub fn plan(tables: &Tables, ops: &[Op]) -> Result<Vec<Statement>, PlanError> {
    plan_with_new_rows(tables, ops, &[])
}

/// [`plan`], knowing that the row of upsert `ops[i]` did not exist before the batch where
/// `new[i]` is true (missing entries: false). Such a row's first write in the batch is a plain
/// `INSERT`, which PostgreSQL does without probing the table for the row first: a row that
/// exists after all fails the batch with a unique violation instead of being overwritten. Raw
/// SQL statements in `ops` may write any row, so with one of them nothing counts as new.
pub fn plan_with_new_rows(tables: &Tables, ops: &[Op], new: &[bool]) -> Result<Vec<Statement>, PlanError> {
    let new = if ops.iter().any(|op| matches!(op, Op::Sql(_))) { &[] } else { new };
    let mut statements = Vec::new();
    let mut segment = Segment::default();
    for (index, op) in ops.iter().enumerate() {
        let (shape, values) = match op {
            Op::Upsert(upsert) => upsert_row(tables, index, &upsert.table, &upsert.key, &upsert.columns)?,
            Op::Delete(delete) => delete_row(tables, index, &delete.table, &delete.key)?,
            Op::Sql(statement) => {
                // A raw statement may touch any row: everything before it runs first.
                segment.flush(tables, &mut statements);
                statements.push(raw(index, &statement.sql, &statement.params)?);
                continue;
            }
        };
        if tables.order_sensitive() && segment.last_shape() != Some(&shape) {
            // Constraints or triggers may make writes to different rows depend on each
            // other's order: only consecutive writes of one shape are gathered.
            segment.flush(tables, &mut statements);
        }
        segment.add(tables, shape, values, new.get(index).copied().unwrap_or(false));
    }
    segment.flush(tables, &mut statements);
    Ok(statements)
}

/// Statements a raw SQL operation may not run: they would end or escape the batch's
/// transaction (and with it exactly-once), change the session, or wait for input.
const FORBIDDEN: &[&str] = &[
    "ABORT",
    "BEGIN",
    "CALL",
    "CHECKPOINT",
    "COMMIT",
    "COPY",
    "DISCARD",
    "DO",
    "END",
    "LISTEN",
    "LOAD",
    "LOCK",
    "NOTIFY",
    "PREPARE",
    "RELEASE",
    "RESET",
    "ROLLBACK",
    "SAVEPOINT",
    "SET",
    "START",
    "UNLISTEN",
    "VACUUM",
];

/// The first keyword of `sql`, after white space and comments, in upper case.
fn first_keyword(sql: &str) -> String {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect::<String>().to_ascii_uppercase()
}

fn raw(index: usize, sql: &str, params: &[Value]) -> Result<Statement, PlanError> {
    let keyword = first_keyword(sql);
    if FORBIDDEN.contains(&keyword.as_str()) {
        return Err(PlanError::Forbidden { index, keyword });
    }
    let params = params
        .iter()
        .enumerate()
        .map(|(i, value)| {
            to_text(value).map(Param::Scalar).map_err(|error| PlanError::Value {
                index,
                column: format!("${}", i + 1),
                error,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Statement { sql: sql.to_owned(), params })
}

/// The upserts and deletes between two raw statements. Writes to different rows commute, so
/// they are gathered by shape whatever their order; writes to the same row keep theirs through
/// layers: the n-th write of a row in the segment goes to layer n, and layers run in order.
/// Within a layer a row appears at most once, as one statement may touch a row only once.
#[derive(Default)]
struct Segment {
    /// Writes so far per row: (table, key values).
    writes: HashMap<(String, Vec<Option<String>>), usize, foldhash::fast::RandomState>,
    /// Per layer, one run per shape, in order of first appearance.
    layers: Vec<Vec<Run>>,
    /// The (layer, run) written to last.
    last: Option<(usize, usize)>,
}

impl Segment {
    /// Adds a write of `shape` with `values`; `new`: its row did not exist before the batch.
    fn add(&mut self, tables: &Tables, shape: Shape, values: Vec<Option<String>>, new: bool) {
        let (table, key) = match &shape {
            Shape::Upsert { table, key, .. } | Shape::Insert { table, key, .. } | Shape::Delete { table, key } => {
                (table.clone(), key)
            }
        };
        let identity: Vec<Option<String>> = key
            .iter()
            .zip(&values)
            .map(|(column, value)| canonical(tables.column_type(&table, column).unwrap_or("text"), value))
            .collect();
        let seen = self.writes.entry((table, identity)).or_insert(0);
        let layer = *seen;
        *seen += 1;
        // Only the row's first write in the batch finds it absent.
        let shape = shape.inserting(new && layer == 0);
        if self.layers.len() <= layer {
            self.layers.push(Vec::new());
        }
        let runs = &mut self.layers[layer];
        let position = runs.iter().position(|r| r.shape == shape).unwrap_or_else(|| {
            runs.push(Run { columns: vec![Vec::new(); values.len()], shape });
            runs.len() - 1
        });
        self.last = Some((layer, position));
        let run = &mut runs[position];
        for (column, value) in run.columns.iter_mut().zip(values) {
            column.push(value);
        }
    }

    /// The shape of the run written to last, if any.
    fn last_shape(&self) -> Option<&Shape> {
        self.last.and_then(|(layer, run)| self.layers.get(layer)?.get(run)).map(|r| &r.shape)
    }

    fn flush(&mut self, tables: &Tables, statements: &mut Vec<Statement>) {
        statements.extend(self.layers.drain(..).flatten().map(|run| run.finish(tables)));
        self.writes.clear();
    }
}

fn upsert_row(
    tables: &Tables,
    index: usize,
    table: &str,
    key: &[ColumnValue],
    columns: &[ColumnUpdate],
) -> Result<(Shape, Vec<Option<String>>), PlanError> {
    let (key_names, mut values) = key_values(tables, index, table, key)?;
    let mut names = Vec::with_capacity(columns.len());
    for update in columns {
        check_column(tables, index, table, &update.column)?;
        if key_names.contains(&update.column) || names.iter().any(|(n, _)| n == &update.column) {
            return Err(PlanError::DuplicateColumn { index, column: update.column.clone() });
        }
        names.push((update.column.clone(), MergeRule::from(update.merge)));
        values.push(text(tables, index, table, &update.column, &update.value)?);
    }
    Ok((Shape::Upsert { table: table.to_owned(), key: key_names, columns: names }, values))
}

fn delete_row(
    tables: &Tables,
    index: usize,
    table: &str,
    key: &[ColumnValue],
) -> Result<(Shape, Vec<Option<String>>), PlanError> {
    let (key_names, values) = key_values(tables, index, table, key)?;
    Ok((Shape::Delete { table: table.to_owned(), key: key_names }, values))
}

fn key_values(
    tables: &Tables,
    index: usize,
    table: &str,
    key: &[ColumnValue],
) -> Result<(Vec<String>, Vec<Option<String>>), PlanError> {
    if !tables.contains(table) {
        return Err(PlanError::UnknownTable { index, table: table.to_owned() });
    }
    if key.is_empty() {
        return Err(PlanError::EmptyKey { index, table: table.to_owned() });
    }
    // Key columns in name order: the WIT allows any order, and one row must have one identity.
    let mut key: Vec<&ColumnValue> = key.iter().collect();
    key.sort_by(|a, b| a.column.cmp(&b.column));
    let mut names: Vec<String> = Vec::with_capacity(key.len());
    let mut values = Vec::with_capacity(key.len());
    for column in key {
        check_column(tables, index, table, &column.column)?;
        if names.contains(&column.column) {
            return Err(PlanError::DuplicateColumn { index, column: column.column.clone() });
        }
        names.push(column.column.clone());
        values.push(text(tables, index, table, &column.column, &column.value)?);
    }
    Ok((names, values))
}

fn check_column(tables: &Tables, index: usize, table: &str, column: &str) -> Result<(), PlanError> {
    match tables.column_type(table, column) {
        Some(_) => Ok(()),
        None => Err(PlanError::UnknownColumn { index, table: table.to_owned(), column: column.to_owned() }),
    }
}

/// The text input of `value` for `column` of `table` (a column that exists).
fn text(tables: &Tables, index: usize, table: &str, column: &str, value: &Value) -> Result<Option<String>, PlanError> {
    let column_type = tables.column_type(table, column).unwrap_or("text");
    if !fits(column_type, value) {
        return Err(PlanError::Type {
            index,
            table: table.to_owned(),
            column: column.to_owned(),
            column_type: column_type.to_owned(),
            value: describe(value),
        });
    }
    to_text(value).map_err(|error| PlanError::Value { index, column: column.to_owned(), error })
}

impl Run {
    fn finish(self, tables: &Tables) -> Statement {
        let schema = quote_ident(tables.schema());
        let params = self.columns.into_iter().map(Param::Column).collect();
        let sql = match &self.shape {
            Shape::Upsert { table, key, columns } if columns.is_empty() => {
                let names: Vec<&str> = key.iter().map(String::as_str).collect();
                insert(tables, table, &names, " ON CONFLICT DO NOTHING")
            }
            Shape::Insert { table, key, columns } => {
                let names: Vec<&str> = key.iter().chain(columns).map(String::as_str).collect();
                insert(tables, table, &names, "")
            }
            Shape::Upsert { table, key, columns } => {
                // UPDATE the rows that exist, then INSERT the others, in one statement. Not
                // `INSERT … ON CONFLICT DO UPDATE`: PostgreSQL checks NOT NULL on the proposed
                // row before it finds the conflict, so an upsert naming only the columns it
                // changes would fail on an existing row.
                let names: Vec<&str> =
                    key.iter().map(String::as_str).chain(columns.iter().map(|(n, _)| n.as_str())).collect();
                let aliases = (0..names.len()).map(|i| format!("c{i}")).collect::<Vec<_>>().join(", ");
                let sets = columns
                    .iter()
                    .enumerate()
                    .map(|(i, (name, rule))| {
                        let (c, v) = (quote_ident(name), format!("u.c{}", key.len() + i));
                        match rule {
                            MergeRule::Set => format!("{c} = {v}"),
                            MergeRule::Add => format!("{c} = COALESCE(t.{c}, 0) + {v}"),
                            MergeRule::KeepIfPresent => format!("{c} = COALESCE(t.{c}, {v})"),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let matches = |left: &str| {
                    key.iter()
                        .enumerate()
                        .map(|(i, k)| format!("{left}.{} = u.c{i}", quote_ident(k)))
                        .collect::<Vec<_>>()
                        .join(" AND ")
                };
                let returning = key.iter().map(|k| format!("t.{}", quote_ident(k))).collect::<Vec<_>>().join(", ");
                format!(
                    "WITH u ({aliases}) AS (SELECT {casts} FROM {unnest}), \
                     updated AS (UPDATE {schema}.{t} AS t SET {sets} FROM u WHERE {on_t} RETURNING {returning}) \
                     INSERT INTO {schema}.{t} ({cols}) SELECT {aliases} FROM u \
                     WHERE NOT EXISTS (SELECT 1 FROM updated WHERE {on_updated})",
                    t = quote_ident(table),
                    cols = column_list(&names),
                    casts = casts(tables, table, &names),
                    unnest = unnest(&names),
                    on_t = matches("t"),
                    on_updated = matches("updated"),
                )
            }
            Shape::Delete { table, key } => {
                let names: Vec<&str> = key.iter().map(String::as_str).collect();
                let matches = names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        let ty = tables.column_type(table, name).expect("columns were checked");
                        format!("t.{} = u.c{i}::{ty}", quote_ident(name))
                    })
                    .collect::<Vec<_>>()
                    .join(" AND ");
                format!(
                    "DELETE FROM {schema}.{t} AS t USING {unnest} WHERE {matches}",
                    t = quote_ident(table),
                    unnest = unnest(&names)
                )
            }
        };
        Statement { sql, params }
    }
}

/// The identity of a key value (text input of a column of `sql_type`) as PostgreSQL compares it, for the types where text can differ
/// for equal values (`1.50` = `1.5`, upper- and lowercase UUIDs).
pub fn canonical(sql_type: &str, text: &Option<String>) -> Option<String> {
    let text = text.as_deref()?;
    Some(match sql_type {
        "uuid" => uuid::Uuid::parse_str(text).map_or_else(|_| text.to_owned(), |u| u.hyphenated().to_string()),
        "smallint" | "integer" | "bigint" => {
            text.trim().parse::<i64>().map_or_else(|_| text.to_owned(), |i| i.to_string())
        }
        "numeric" => {
            let (negative, digits) = text.trim().strip_prefix('-').map_or((false, text.trim()), |d| (true, d));
            let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
            let (int, frac) = (int.trim_start_matches('0'), frac.trim_end_matches('0'));
            let magnitude = match (int.is_empty(), frac.is_empty()) {
                (true, true) => return Some("0".to_owned()),
                (_, true) => int.to_owned(),
                (true, false) => format!("0.{frac}"),
                (false, false) => format!("{int}.{frac}"),
            };
            if negative { format!("-{magnitude}") } else { magnitude }
        }
        _ => text.to_owned(),
    })
}

/// `"a", "b", …`: the quoted column names.
/// `INSERT` into `table` of the rows of the columns `names` bound as arrays, then `conflict`
/// (an `ON CONFLICT` clause, or nothing).
fn insert(tables: &Tables, table: &str, names: &[&str], conflict: &str) -> String {
    format!(
        "INSERT INTO {schema}.{t} ({cols}) SELECT {casts} FROM {unnest}{conflict}",
        schema = quote_ident(tables.schema()),
        t = quote_ident(table),
        cols = column_list(names),
        casts = casts(tables, table, names),
        unnest = unnest(names),
    )
}

fn column_list(names: &[&str]) -> String {
    names.iter().map(|n| quote_ident(n)).collect::<Vec<_>>().join(", ")
}

/// `unnest($1::text[], $2::text[], …) AS u(c0, c1, …)` for `names`.
fn unnest(names: &[&str]) -> String {
    let arrays = (1..=names.len()).map(|i| format!("${i}::text[]")).collect::<Vec<_>>().join(", ");
    let aliases = (0..names.len()).map(|i| format!("c{i}")).collect::<Vec<_>>().join(", ");
    format!("unnest({arrays}) AS u({aliases})")
}

/// `u.c0::uuid, u.c1::numeric(12,2), …`: each text column cast to its table column's type.
fn casts(tables: &Tables, table: &str, names: &[&str]) -> String {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| format!("u.c{i}::{}", tables.column_type(table, name).expect("columns were checked")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::types::{Delete, Statement as SqlStatement, Upsert};

    fn tables() -> Tables {
        Tables::from_columns(
            "proj",
            [
                ("totals", vec!["id"], vec![("id", "uuid"), ("n", "integer"), ("amount", "numeric")]),
                ("log", vec!["k"], vec![("k", "text")]),
                ("pairs", vec!["a", "b"], vec![("a", "text"), ("b", "numeric"), ("v", "integer")]),
            ],
        )
    }

    fn id(n: u8) -> ColumnValue {
        ColumnValue { column: "id".into(), value: Value::Uuid(format!("00000000-0000-0000-0000-0000000000{n:02}")) }
    }

    fn upsert(n: u8, merge: Merge) -> Op {
        Op::Upsert(Upsert {
            table: "totals".into(),
            key: vec![id(n)],
            columns: vec![ColumnUpdate { column: "n".into(), value: Value::Int(1), merge }],
        })
    }

    #[test]
    fn same_shaped_writes_become_one_statement() {
        let ops: Vec<Op> = (1..=3).map(|n| upsert(n, Merge::Add)).collect();
        let statements = plan(&tables(), &ops).unwrap();
        assert_eq!(statements.len(), 1);
        assert_eq!(
            statements[0].sql,
            "WITH u (c0, c1) AS (SELECT u.c0::uuid, u.c1::integer FROM unnest($1::text[], $2::text[]) AS u(c0, c1)), \
             updated AS (UPDATE \"proj\".\"totals\" AS t SET \"n\" = COALESCE(t.\"n\", 0) + u.c1 FROM u \
             WHERE t.\"id\" = u.c0 RETURNING t.\"id\") \
             INSERT INTO \"proj\".\"totals\" (\"id\", \"n\") SELECT c0, c1 FROM u \
             WHERE NOT EXISTS (SELECT 1 FROM updated WHERE updated.\"id\" = u.c0)"
        );
        assert_eq!(statements[0].params[1], Param::Column(vec![Some("1".into()); 3]));
    }

    #[test]
    fn order_is_kept_across_shapes_and_repeated_keys() {
        let delete = Op::Delete(Delete { table: "totals".into(), key: vec![id(1)] });
        let ops = vec![
            upsert(1, Merge::Set),
            upsert(2, Merge::Set),
            upsert(1, Merge::Set),
            delete,
            upsert(3, Merge::KeepIfPresent),
        ];
        let statements = plan(&tables(), &ops).unwrap();
        let kinds: Vec<(&str, usize)> = statements
            .iter()
            .map(|s| {
                let rows = match &s.params[0] {
                    Param::Column(c) => c.len(),
                    Param::Scalar(_) => 1,
                };
                (&s.sql[..6], rows)
            })
            .collect();
        // Rows 1 and 2 first, row 3 with its merge rule in the same layer; row 1's second
        // write and then its delete after them, in that order.
        assert_eq!(kinds, [("WITH u", 2), ("WITH u", 1), ("WITH u", 1), ("DELETE", 1)]);
        assert!(statements[1].sql.contains("SET \"n\" = COALESCE(t.\"n\", u.c1)"));
        assert_eq!(statements[2].params[0], Param::Column(vec![to_text(&id(1).value).unwrap()]));
    }

    #[test]
    fn a_new_rows_first_write_is_an_insert_and_its_later_ones_upserts() {
        let ops = vec![upsert(1, Merge::Add), upsert(2, Merge::Add), upsert(1, Merge::Add), upsert(3, Merge::Add)];
        let statements = plan_with_new_rows(&tables(), &ops, &[true, false, true]).unwrap();
        let rows = |s: &Statement| match &s.params[0] {
            Param::Column(c) => c.clone(),
            Param::Scalar(_) => unreachable!("upserts bind arrays"),
        };
        let text = |n| to_text(&id(n).value).unwrap();
        assert_eq!(statements.len(), 3, "{statements:#?}");
        assert_eq!(
            statements[0].sql,
            "INSERT INTO \"proj\".\"totals\" (\"id\", \"n\") SELECT u.c0::uuid, u.c1::integer \
             FROM unnest($1::text[], $2::text[]) AS u(c0, c1)"
        );
        assert_eq!(rows(&statements[0]), vec![text(1)]);
        // Row 2 may exist; row 3 has no entry in `new`; row 1's second write finds it written.
        assert!(statements[1].sql.starts_with("WITH u"));
        assert_eq!(rows(&statements[1]), vec![text(2), text(3)]);
        assert!(statements[2].sql.starts_with("WITH u"));
        assert_eq!(rows(&statements[2]), vec![text(1)]);
        // A raw statement may write any row: nothing is new then.
        let raw =
            Op::Sql(SqlStatement { sql: "INSERT INTO totals (id) VALUES (gen_random_uuid())".into(), params: vec![] });
        let statements = plan_with_new_rows(&tables(), &[raw, upsert(1, Merge::Add)], &[false, true]).unwrap();
        assert!(statements.iter().all(|s| !s.sql.starts_with("INSERT INTO \"proj\"")), "{statements:#?}");
    }

    #[test]
    fn interleaved_tables_still_become_one_statement_each() {
        let log = |k: &str| {
            Op::Upsert(Upsert {
                table: "log".into(),
                key: vec![ColumnValue { column: "k".into(), value: Value::Text(k.into()) }],
                columns: vec![],
            })
        };
        let ops = vec![upsert(1, Merge::Set), log("a"), upsert(2, Merge::Set), log("b"), upsert(3, Merge::Set)];
        let statements = plan(&tables(), &ops).unwrap();
        assert_eq!(statements.len(), 2, "{statements:#?}");
    }

    #[test]
    fn one_row_is_one_row_whatever_its_key_order_or_spelling() {
        let pair = |a: &str, b: &str, v: i64, a_first: bool| {
            let (a, b) = (
                ColumnValue { column: "a".into(), value: Value::Text(a.into()) },
                ColumnValue { column: "b".into(), value: Value::Numeric(b.into()) },
            );
            Op::Upsert(Upsert {
                table: "pairs".into(),
                key: if a_first { vec![a, b] } else { vec![b, a] },
                columns: vec![ColumnUpdate { column: "v".into(), value: Value::Int(v), merge: Merge::Set }],
            })
        };
        // Row (x, 1.5) written twice, the second time with its key in the other order and
        // spelled 1.50: two layers, the second write last.
        let ops = [pair("y", "2", 0, false), pair("x", "1.5", 1, true), pair("x", "1.50", 2, false)];
        let statements = plan(&tables(), &ops).unwrap();
        assert_eq!(statements.len(), 2, "{statements:#?}");
        assert_eq!(statements[1].params[2], Param::Column(vec![Some("2".into())]));
        assert!(statements[0].sql.contains("(\"a\", \"b\", \"v\")"), "key columns in name order");
    }

    #[test]
    fn canonical_values_compare_as_postgres_does() {
        let c = |ty: &str, t: &str| canonical(ty, &Some(t.to_owned())).unwrap();
        assert_eq!(c("numeric", "001.500"), "1.5");
        assert_eq!(c("numeric", "-0.0"), "0");
        assert_eq!(c("numeric", "-.25"), "-0.25");
        assert_eq!(c("numeric", "12"), "12");
        assert_eq!(c("uuid", "6F9619FF-8B86-D011-B42D-00C04FC964FF"), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        assert_eq!(c("integer", "007"), "7");
        assert_eq!(c("text", "A "), "A ");
    }

    #[test]
    fn a_raw_statement_sees_every_write_before_it_and_none_after() {
        let raw = Op::Sql(SqlStatement { sql: "SELECT 1".into(), params: vec![] });
        let statements = plan(&tables(), &[upsert(1, Merge::Set), raw, upsert(2, Merge::Set)]).unwrap();
        assert_eq!(statements.iter().map(|s| &s.sql[..6]).collect::<Vec<_>>(), ["WITH u", "SELECT", "WITH u"]);
    }

    #[test]
    fn raw_statements_may_not_end_the_transaction_or_change_the_session() {
        for sql in [
            "COMMIT",
            "  rollback",
            "/* x */ -- y\n Set role postgres",
            "call p()",
            "DO $$ BEGIN COMMIT; END $$",
            "reset role",
        ] {
            let op = Op::Sql(SqlStatement { sql: sql.into(), params: vec![] });
            assert!(matches!(plan(&tables(), &[op]), Err(PlanError::Forbidden { .. })), "{sql}");
        }
        let op = Op::Sql(SqlStatement { sql: "UPDATE log SET k = 'settled'".into(), params: vec![] });
        assert!(plan(&tables(), &[op]).is_ok());
    }

    #[test]
    fn raw_statements_keep_their_text_and_bind_their_values() {
        let op =
            Op::Sql(SqlStatement { sql: "DELETE FROM log WHERE k = $1".into(), params: vec![Value::Text("x".into())] });
        let statements = plan(&tables(), &[upsert(1, Merge::Set), op]).unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[1].sql, "DELETE FROM log WHERE k = $1");
        assert_eq!(statements[1].params, vec![Param::Scalar(Some("x".into()))]);
    }

    #[test]
    fn refuses_what_the_projection_does_not_own() {
        let other = Op::Delete(Delete { table: "events".into(), key: vec![id(1)] });
        assert_eq!(plan(&tables(), &[other]), Err(PlanError::UnknownTable { index: 0, table: "events".into() }));
        let bad_column = Op::Upsert(Upsert {
            table: "totals".into(),
            key: vec![id(1)],
            columns: vec![ColumnUpdate { column: "n; DROP TABLE x".into(), value: Value::Int(1), merge: Merge::Set }],
        });
        assert!(matches!(
            plan(&tables(), &[upsert(1, Merge::Set), bad_column]),
            Err(PlanError::UnknownColumn { index: 1, .. })
        ));
        let no_key = Op::Delete(Delete { table: "totals".into(), key: vec![] });
        assert!(matches!(plan(&tables(), &[no_key]), Err(PlanError::EmptyKey { .. })));
        let bad_value = Op::Upsert(Upsert {
            table: "totals".into(),
            key: vec![ColumnValue { column: "id".into(), value: Value::Uuid("nope".into()) }],
            columns: vec![],
        });
        assert!(matches!(plan(&tables(), &[bad_value]), Err(PlanError::Value { .. })));
        let wrong_type = Op::Upsert(Upsert {
            table: "totals".into(),
            key: vec![id(1)],
            columns: vec![ColumnUpdate { column: "n".into(), value: Value::Text("x".into()), merge: Merge::Set }],
        });
        assert_eq!(
            plan(&tables(), &[wrong_type]).map_err(|e| e.to_string()),
            Err("operation 0: column \"n\" of table \"totals\" is integer, but the value is text \"x\"".into())
        );
    }
}
