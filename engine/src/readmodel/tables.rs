//! What the engine knows of a projection's tables: columns, types, keys and constraints.

use std::collections::BTreeMap;

use tokio_postgres::GenericClient;

/// The tables of one projection schema, read from the catalog.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tables {
    schema: String,
    /// Column types by table and column, without type modifiers (`numeric`, not
    /// `numeric(12,2)`): values are cast to the base type, and assignment to the column then
    /// rounds or refuses them (a cast to `varchar(5)` would silently truncate).
    tables: BTreeMap<String, BTreeMap<String, String>>,
    /// Primary key columns by table, sorted by name.
    primary_keys: BTreeMap<String, Vec<String>>,
    /// Whether writes to different rows may depend on each other's order: foreign keys,
    /// unique constraints besides the primary key, or triggers.
    order_sensitive: bool,
}

impl Tables {
    /// Reads the tables of `schema` from the catalog.
    pub async fn load(client: &impl GenericClient, schema: &str) -> Result<Self, tokio_postgres::Error> {
        let columns = client
            .query(
                "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, NULL)
                   FROM pg_attribute a
                   JOIN pg_class c ON c.oid = a.attrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped",
                &[&schema],
            )
            .await?;
        let mut tables: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for row in columns {
            tables.entry(row.get(0)).or_default().insert(row.get(1), row.get(2));
        }
        let keys = client
            .query(
                "SELECT c.relname::text, a.attname::text
                   FROM pg_index i
                   JOIN pg_class c ON c.oid = i.indrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
                  WHERE n.nspname = $1 AND i.indisprimary",
                &[&schema],
            )
            .await?;
        let mut primary_keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in keys {
            primary_keys.entry(row.get(0)).or_default().push(row.get(1));
        }
        primary_keys.values_mut().for_each(|k| k.sort());
        let order_sensitive: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_constraint k JOIN pg_class c ON c.oid IN (k.conrelid, k.confrelid)
                                  JOIN pg_namespace n ON n.oid = c.relnamespace
                                 WHERE n.nspname = $1 AND k.contype = 'f')
                     OR EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
                                  JOIN pg_namespace n ON n.oid = c.relnamespace
                                 WHERE n.nspname = $1 AND i.indisunique AND NOT i.indisprimary)
                     OR EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                                  JOIN pg_namespace n ON n.oid = c.relnamespace
                                 WHERE n.nspname = $1 AND NOT t.tgisinternal)",
                &[&schema],
            )
            .await?
            .get(0);
        Ok(Tables { schema: schema.to_owned(), tables, primary_keys, order_sensitive })
    }

    /// Tables as given (no constraints besides the primary keys), for tests and tools that
    /// know them without a catalog.
    pub fn from_columns<'a>(
        schema: &str,
        tables: impl IntoIterator<Item = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>)>,
    ) -> Self {
        let mut result = Tables { schema: schema.to_owned(), ..Tables::default() };
        for (table, key, columns) in tables {
            let mut key: Vec<String> = key.into_iter().map(str::to_owned).collect();
            key.sort();
            result.primary_keys.insert(table.to_owned(), key);
            result
                .tables
                .insert(table.to_owned(), columns.into_iter().map(|(c, t)| (c.to_owned(), t.to_owned())).collect());
        }
        result
    }

    /// The schema these tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The SQL type of `table.column`, without modifiers, if both exist.
    pub fn column_type(&self, table: &str, column: &str) -> Option<&str> {
        self.tables.get(table)?.get(column).map(String::as_str)
    }

    /// The columns of `table` with their SQL types, by name.
    pub fn columns(&self, table: &str) -> impl Iterator<Item = (&str, &str)> {
        self.tables.get(table).into_iter().flatten().map(|(c, t)| (c.as_str(), t.as_str()))
    }

    /// Whether `columns` (sorted by name) are exactly the primary key of `table`.
    pub fn is_primary_key(&self, table: &str, columns: &[&str]) -> bool {
        self.primary_keys.get(table).is_some_and(|key| key.iter().map(String::as_str).eq(columns.iter().copied()))
    }

    /// Whether writes to different rows may depend on each other's order (foreign keys,
    /// unique constraints besides primary keys, triggers), so that they must not be regrouped.
    pub fn order_sensitive(&self) -> bool {
        self.order_sensitive
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
