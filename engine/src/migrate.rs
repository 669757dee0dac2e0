//! Schema migrations: the SQL files of `migrations/`, embedded in the binary and applied in
//! order to one schema.
//!
//! A run takes a transaction-scoped advisory lock, so concurrent migrators queue up instead of
//! racing; applies every pending migration in version order; records each one (version, name,
//! SHA-256 of its SQL, time) in `refract_migrations` of the same schema; and commits once, so a
//! failing migration leaves the schema as it was. The migrations themselves use unqualified
//! table names and run with `search_path` set to the target schema.

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, Transaction};

use crate::readmodel::quote_ident;

/// One embedded migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The number that orders migrations (`0001_…` → 1).
    pub version: i32,
    /// The file name without number and extension (`0001_event_store.sql` → `event_store`).
    pub name: &'static str,
    /// The SQL text.
    pub sql: &'static str,
}

impl Migration {
    /// The hex SHA-256 of the SQL text: how a run notices that an applied file was edited.
    pub fn checksum(&self) -> String {
        Sha256::digest(self.sql.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What a run did with one migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The migration's version.
    pub version: i32,
    /// The migration's name.
    pub name: &'static str,
}

/// Why migrating failed. Nothing of the run is committed in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The schema name cannot be used.
    #[error("invalid schema name {0:?}: it must be 1 to 63 bytes long")]
    InvalidSchema(String),
    /// An applied migration's SQL differs from the embedded one.
    #[error(
        "migration {version:04}_{name} was applied to schema {schema:?} with checksum {recorded}, \
         but this build's file has checksum {embedded}: applied migrations must never be edited \
         (add a new migration instead)"
    )]
    ChecksumMismatch {
        /// The schema.
        schema: String,
        /// The migration's version.
        version: i32,
        /// The migration's name.
        name: String,
        /// The checksum recorded when it was applied.
        recorded: String,
        /// The checksum of the embedded file.
        embedded: String,
    },
    /// The database knows a migration this build does not: it was migrated by a newer Refract.
    #[error(
        "schema {schema:?} has migration {version:04}_{name} applied, which this build of Refract \
         does not know: the database was migrated by a newer version"
    )]
    Unknown {
        /// The schema.
        schema: String,
        /// The migration's version.
        version: i32,
        /// The migration's recorded name.
        name: String,
    },
    /// A statement failed.
    #[error("migration {version:04}_{name} failed: {}", crate::db::describe(error))]
    Failed {
        /// The migration's version.
        version: i32,
        /// The migration's name.
        name: &'static str,
        /// The database error (its text is part of this error's message).
        error: tokio_postgres::Error,
    },
    /// Talking to the database failed outside any one migration.
    #[error("migrating failed: {}", crate::db::describe(.0))]
    Db(tokio_postgres::Error),
}

// Not `#[from]`, which would also make it the `source()`: see `crate::db::DbError`.
impl From<tokio_postgres::Error> for MigrateError {
    fn from(err: tokio_postgres::Error) -> Self {
        MigrateError::Db(err)
    }
}

macro_rules! embedded {
    ($($file:literal),* $(,)?) => {
        &[$(Migration {
            version: version_of($file),
            name: name_of($file),
            sql: include_str!(concat!("../../migrations/", $file, ".sql")),
        }),*]
    };
}

/// Every migration of this build, in version order (file stems of `migrations/`).
pub const MIGRATIONS: &[Migration] = embedded![
    "0001_event_store",
    "0002_gap_safe_tailing",
    "0003_event_id_unique",
    "0004_dead_letters",
    "0005_notify_on_append",
    "0010_engine",
    "0011_versions",
    "0012_roles",
    "0013_advance_or_raise",
];

/// The four leading digits of a file stem `NNNN_name`; a malformed stem fails the build.
const fn version_of(stem: &str) -> i32 {
    let b = stem.as_bytes();
    assert!(b.len() > 5 && b[4] == b'_', "a migration file is named NNNN_name.sql");
    let mut version = 0;
    let mut i = 0;
    while i < 4 {
        assert!(b[i].is_ascii_digit(), "a migration file is named NNNN_name.sql");
        version = version * 10 + (b[i] - b'0') as i32;
        i += 1;
    }
    version
}

/// The part of a file stem `NNNN_name` after the number.
const fn name_of(stem: &str) -> &str {
    stem.split_at(5).1
}

/// Key of the advisory lock that serialises migrators (any schema: `CREATE SCHEMA` races too).
const LOCK_KEY: i64 = 0x7265_6672_6163_7401; // "refract" + 1

/// Applies the pending migrations to `schema` (created if missing) and returns those applied,
/// in order; an empty list when the schema was up to date.
pub async fn migrate(client: &mut Client, schema: &str) -> Result<Vec<Applied>, MigrateError> {
    if schema.is_empty() || schema.len() > 63 {
        return Err(MigrateError::InvalidSchema(schema.to_owned()));
    }
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY]).await?;
    let quoted = quote_ident(schema);
    // `IF NOT EXISTS` notices ("already exists, skipping") are expected: keep them quiet.
    tx.batch_execute(&format!(
        "SET LOCAL client_min_messages TO warning;
         CREATE SCHEMA IF NOT EXISTS {quoted};
         SET LOCAL search_path TO {quoted};
         CREATE TABLE IF NOT EXISTS refract_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             checksum   TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         );"
    ))
    .await?;
    let recorded = tx.query("SELECT version, name, checksum FROM refract_migrations ORDER BY version", &[]).await?;
    for row in &recorded {
        let (version, name, checksum): (i32, String, String) = (row.get(0), row.get(1), row.get(2));
        let Some(migration) = MIGRATIONS.iter().find(|m| m.version == version) else {
            return Err(MigrateError::Unknown { schema: schema.to_owned(), version, name });
        };
        let embedded = migration.checksum();
        if checksum != embedded {
            return Err(MigrateError::ChecksumMismatch {
                schema: schema.to_owned(),
                version,
                name,
                recorded: checksum,
                embedded,
            });
        }
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        if recorded.iter().any(|row| row.get::<_, i32>(0) == migration.version) {
            continue;
        }
        apply(&tx, migration).await?;
        tracing::info!(schema, version = migration.version, name = migration.name, "applied migration");
        applied.push(Applied { version: migration.version, name: migration.name });
    }
    tx.commit().await?;
    Ok(applied)
}

async fn apply(tx: &Transaction<'_>, migration: &Migration) -> Result<(), MigrateError> {
    let failed = |error| MigrateError::Failed { version: migration.version, name: migration.name, error };
    tx.batch_execute(migration.sql).await.map_err(failed)?;
    tx.execute(
        "INSERT INTO refract_migrations (version, name, checksum) VALUES ($1, $2, $3)",
        &[&migration.version, &migration.name, &migration.checksum()],
    )
    .await
    .map_err(failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_strictly_increasing_order() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
    }
}
