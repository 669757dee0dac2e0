//! The guest's `get-row`: reading a row of the projection's own tables from PostgreSQL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::writer::Fence;
use super::written::WrittenKeys;
use crate::readmodel::{Param, Tables, quote_ident, to_text};
use crate::wasm::RowSource;
use crate::wasm::types::{ColumnValue, Value};

/// How a column's text output becomes a typed value.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Int,
    Numeric,
    Float,
    Boolean,
    Uuid,
    Json,
    Timestamp,
    Date,
    Text,
}

impl Kind {
    fn of(sql_type: &str) -> Kind {
        match sql_type {
            "smallint" | "integer" | "bigint" => Kind::Int,
            "real" | "double precision" => Kind::Float,
            "boolean" => Kind::Boolean,
            "uuid" => Kind::Uuid,
            "json" | "jsonb" => Kind::Json,
            "date" => Kind::Date,
            t if t.starts_with("numeric") => Kind::Numeric,
            t if t.starts_with("timestamp") => Kind::Timestamp,
            _ => Kind::Text,
        }
    }

    /// The select expression giving the column as text that [`Kind::value`] can parse.
    fn select(self, column: &str) -> String {
        match self {
            Kind::Timestamp => format!("(extract(epoch from {column}) * 1000000)::bigint::text"),
            Kind::Date => format!("({column} - date '1970-01-01')::text"),
            _ => format!("{column}::text"),
        }
    }

    fn value(self, text: Option<String>) -> Result<Value, String> {
        let Some(text) = text else {
            return Ok(Value::Null);
        };
        let bad = |e: &dyn std::fmt::Display| format!("cannot read {text:?}: {e}");
        Ok(match self {
            Kind::Int => Value::Int(text.parse().map_err(|e| bad(&e))?),
            Kind::Float => Value::Float(text.parse().map_err(|e| bad(&e))?),
            Kind::Boolean => Value::Boolean(text == "true"),
            Kind::Timestamp => Value::Timestamp(text.parse().map_err(|e| bad(&e))?),
            Kind::Date => Value::Date(text.parse().map_err(|e| bad(&e))?),
            Kind::Numeric => Value::Numeric(text),
            Kind::Uuid => Value::Uuid(text),
            Kind::Json => Value::Json(text),
            Kind::Text => Value::Text(text),
        })
    }
}

/// A read of one table by one set of key columns: its SQL, the columns it returns, and the
/// statement once prepared on the connection (a read then takes one round trip, not two).
#[derive(Debug)]
struct RowQuery {
    sql: String,
    columns: Vec<(String, Kind)>,
    prepared: Option<tokio_postgres::Statement>,
}

/// Reads rows for a guest over a connection of its own; runs on the guest's thread and blocks
/// it while the query runs. Earlier batches of the projection may still be committing while
/// the guest applies the next one: a read that must query a row one of them may write first
/// waits on the writer's [`Fence`] until every batch announced to it has committed, so it sees
/// the state the batch builds on. (`written` learns a batch's rows before they commit, see
/// [`WrittenKeys::in_flight`].)
pub struct DbRows {
    client: Arc<Client>,
    handle: Handle,
    tables: Tables,
    written: Arc<Mutex<WrittenKeys>>,
    /// Set when a read failed for a reason that is not the guest's (a lost connection, a
    /// writer that stopped before the batches the read waited for committed).
    lost: Arc<AtomicBool>,
    /// The writer whose batches a read waits for; `None`: nothing is ever pending.
    fence: Option<Fence>,
    /// Select statements by (table, key columns).
    queries: HashMap<(String, Vec<String>), RowQuery>,
}

impl DbRows {
    /// Reads from `tables` (of one projection schema) over `client`, blocking on `handle`;
    /// rows that `written` knows cannot exist are answered without a query.
    pub fn new(client: Arc<Client>, handle: Handle, tables: Tables, written: Arc<Mutex<WrittenKeys>>) -> Self {
        DbRows {
            client,
            handle,
            tables,
            written,
            lost: Arc::new(AtomicBool::new(false)),
            fence: None,
            queries: HashMap::new(),
        }
    }

    /// Makes a read that must query wait until every batch announced to the writer of `fence`
    /// has committed.
    pub fn fenced(self, fence: Fence) -> Self {
        DbRows { fence: Some(fence), ..self }
    }

    /// A flag that becomes `true` when a read fails for a reason that is not the guest's; the
    /// guest then sees an error for its read, and the engine must not blame the projection.
    pub fn lost(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }

    /// The query reading `table` by the columns of `key`, prepared on first use.
    fn query<'q>(
        queries: &'q mut HashMap<(String, Vec<String>), RowQuery>,
        tables: &Tables,
        table: &str,
        key: &[ColumnValue],
    ) -> Result<&'q mut RowQuery, String> {
        let names: Vec<String> = key.iter().map(|k| k.column.clone()).collect();
        if !tables.contains(table) {
            return Err(format!("table {table:?} is not a table of this projection"));
        }
        for name in &names {
            if tables.column_type(table, name).is_none() {
                return Err(format!("table {table:?} has no column {name:?}"));
            }
        }
        let entry = queries.entry((table.to_owned(), names.clone())).or_insert_with(|| {
            let columns: Vec<(String, Kind)> =
                tables.columns(table).map(|(name, ty)| (name.to_owned(), Kind::of(ty))).collect();
            let select = columns.iter().map(|(n, k)| k.select(&quote_ident(n))).collect::<Vec<_>>().join(", ");
            let filter = names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    format!("{} = ${}::{}", quote_ident(n), i + 1, tables.column_type(table, n).expect("checked above"))
                })
                .collect::<Vec<_>>()
                .join(" AND ");
            let sql =
                format!("SELECT {select} FROM {}.{} WHERE {filter}", quote_ident(tables.schema()), quote_ident(table));
            RowQuery { sql, columns, prepared: None }
        });
        Ok(entry)
    }
}

impl RowSource for DbRows {
    fn get_row(&mut self, table: &str, key: &[ColumnValue]) -> Result<Option<Vec<ColumnValue>>, String> {
        let params: Vec<Param> = key
            .iter()
            .map(|k| to_text(&k.value).map(Param::Scalar).map_err(|e| format!("key column {:?}: {e}", k.column)))
            .collect::<Result<_, _>>()?;
        let query = Self::query(&mut self.queries, &self.tables, table, key)?;
        let may_exist = self.written.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).may_exist(table, key);
        if !may_exist {
            return Ok(None);
        }
        if let Some(fence) = self.fence.as_mut().filter(|fence| fence.pending())
            && self.written.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).in_flight(
                table,
                key,
                fence.committed(),
            )
            && self.handle.block_on(fence.settled()).is_err()
        {
            self.lost.store(true, Ordering::Relaxed);
            return Err(format!(
                "reading {table:?}: the engine could not commit the batches before this one, so the row cannot be read"
            ));
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let client = &self.client;
        let row = self
            .handle
            .block_on(async {
                let statement = match &query.prepared {
                    Some(statement) => statement.clone(),
                    None => query.prepared.insert(client.prepare(&query.sql).await?).clone(),
                };
                client.query_opt(&statement, &refs).await
            })
            .map_err(|e| {
                if super::commit::is_transient(&e) {
                    self.lost.store(true, Ordering::Relaxed);
                }
                format!("reading {table:?}: {}", crate::db::describe(&e))
            })?;
        let Some(row) = row else { return Ok(None) };
        query
            .columns
            .iter()
            .enumerate()
            .map(|(i, (name, kind))| Ok(ColumnValue { column: name.clone(), value: kind.value(row.get(i))? }))
            .collect::<Result<Vec<_>, String>>()
            .map(Some)
    }
}
