//! Installing a projection in the database: its schema, its tables, its checkpoint.

use tokio_postgres::Client;

use super::loader::Loaded;
use crate::readmodel::quote_ident;

/// Why a projection could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The schema exists but Refract did not create it.
    #[error("schema {0:?} exists but is not a Refract projection; drop or rename it, or rename the projection")]
    ForeignSchema(String),
    /// The name is reserved.
    #[error("projection name {0:?} is reserved (the event store's schema or a system schema)")]
    Reserved(String),
    /// The projection's DDL failed.
    #[error("creating the tables of {name}: {}", crate::db::describe(.error))]
    Ddl {
        /// The projection.
        name: String,
        /// PostgreSQL's error.
        error: tokio_postgres::Error,
    },
    /// Anything else the database said.
    #[error("{}", crate::db::describe(.0))]
    Db(#[from] tokio_postgres::Error),
}

/// What [`install`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// The same component was installed already; its read model and checkpoint stay.
    Unchanged,
    /// A new projection: schema and tables created, checkpoint at the start.
    Created,
    /// A different component of the same name was installed: its read model was dropped and
    /// is rebuilt from the start of the log.
    Replaced,
}

/// Makes the database hold `loaded`'s schema, tables, registry entry and checkpoint, in one
/// transaction. The caller owns the projection (holds its lock).
pub async fn install(client: &mut Client, store_schema: &str, loaded: &Loaded) -> Result<Installed, InstallError> {
    let name = loaded.name();
    if name == store_schema || name == "public" || name.starts_with("pg_") || name == "information_schema" {
        return Err(InstallError::Reserved(name.to_owned()));
    }
    let store = quote_ident(store_schema);
    let schema = quote_ident(name);
    let tx = client.transaction().await?;
    let installed: Option<String> = tx
        .query_opt(
            &format!("SELECT content_hash FROM {store}.refract_projections WHERE name = $1 FOR UPDATE"),
            &[&name],
        )
        .await?
        .map(|row| row.get(0));
    let outcome = match installed {
        Some(hash) if hash == loaded.content_hash => return Ok(Installed::Unchanged),
        Some(_) => {
            tx.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
            Installed::Replaced
        }
        None => {
            let exists = tx.query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&name]).await?.is_some();
            if exists {
                return Err(InstallError::ForeignSchema(name.to_owned()));
            }
            Installed::Created
        }
    };
    tx.batch_execute(&format!("CREATE SCHEMA {schema}; SET LOCAL search_path TO {schema}")).await?;
    for table in &loaded.description.tables {
        tx.batch_execute(&table.ddl).await.map_err(|error| InstallError::Ddl { name: name.to_owned(), error })?;
    }
    let description = serde_json::json!({
        "version": loaded.description.version,
        "tables": loaded.description.tables.iter().map(|t| &t.name).collect::<Vec<_>>(),
        "event_types": loaded.description.subscription.event_types,
        "categories": loaded.description.subscription.categories,
    });
    tx.execute(
        &format!(
            "INSERT INTO {store}.refract_projections (name, content_hash, module_version, description)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET content_hash = EXCLUDED.content_hash,
                 module_version = EXCLUDED.module_version, description = EXCLUDED.description, installed_at = now()"
        ),
        &[&name, &loaded.content_hash, &loaded.description.version, &description],
    )
    .await?;
    tx.execute(
        &format!(
            "INSERT INTO {store}.checkpoints (projection_name, position, transaction_id) VALUES ($1, 0, '0')
             ON CONFLICT (projection_name) DO UPDATE SET position = 0, transaction_id = '0', updated_at = now()"
        ),
        &[&name],
    )
    .await?;
    tx.commit().await?;
    Ok(outcome)
}
