//! What the engine knows of a projection's tables: their columns and column types.

use std::collections::BTreeMap;

use tokio_postgres::GenericClient;

/// The tables of one projection schema, read from the catalog.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tables {
    schema: String,
    tables: BTreeMap<String, BTreeMap<String, String>>,
}

impl Tables {
    /// Reads the tables of `schema` and their columns' types from the catalog.
    pub async fn load(
        client: &impl GenericClient,
        schema: &str,
    ) -> Result<Self, tokio_postgres::Error> {
        let rows = client
            .query(
                "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod)
                   FROM pg_attribute a
                   JOIN pg_class c ON c.oid = a.attrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped",
                &[&schema],
            )
            .await?;
        let mut tables: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for row in rows {
            tables
                .entry(row.get(0))
                .or_default()
                .insert(row.get(1), row.get(2));
        }
        Ok(Tables {
            schema: schema.to_owned(),
            tables,
        })
    }

    /// Tables as given, for tests and tools that know them without a catalog.
    pub fn from_columns<'a>(
        schema: &str,
        tables: impl IntoIterator<Item = (&'a str, Vec<(&'a str, &'a str)>)>,
    ) -> Self {
        let tables = tables
            .into_iter()
            .map(|(t, cols)| {
                (
                    t.to_owned(),
                    cols.into_iter()
                        .map(|(c, ty)| (c.to_owned(), ty.to_owned()))
                        .collect(),
                )
            })
            .collect();
        Tables {
            schema: schema.to_owned(),
            tables,
        }
    }

    /// The schema these tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The SQL type of `table.column` (as `format_type` spells it), if both exist.
    pub fn column_type(&self, table: &str, column: &str) -> Option<&str> {
        self.tables.get(table)?.get(column).map(String::as_str)
    }

    /// The columns of `table` with their SQL types, by name.
    pub fn columns(&self, table: &str) -> impl Iterator<Item = (&str, &str)> {
        self.tables
            .get(table)
            .into_iter()
            .flatten()
            .map(|(c, t)| (c.as_str(), t.as_str()))
    }

    /// Whether `table` exists.
    pub fn contains(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    /// The names of the tables.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }
}

/// `name` as a quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
