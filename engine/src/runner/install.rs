//! Installing projection versions in the database, and swapping the live one.
//!
//! Every version of a projection has a physical schema of its own, `<name>__<generation>`,
//! holding its tables; that schema's name is also the version's key in `checkpoints`. The
//! projection's stable schema, `<name>`, holds one view per table of the *active* version, so
//! readers query `<name>.<table>` whatever version serves it. A new version (a changed
//! component, or a rebuild) is built from zero in its own schema beside the live one; when it
//! reaches the head of the log, [`switch`] points the views at it in one transaction and fences
//! the old version off (its checkpoint row goes, so its next commit fails), and the old schema
//! is dropped.

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, GenericClient, Transaction};

use super::loader::Loaded;
use crate::readmodel::quote_ident;

/// Why a projection version could not be installed or swapped in.
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
    /// Another version of the projection became active while this worker served the old one.
    #[error("superseded: version {active} of {name} is active now")]
    Superseded {
        /// The projection.
        name: String,
        /// The schema of the version now active.
        active: String,
    },
    /// The version being built was dropped (by `refract drop`, or replaced by a newer build).
    #[error("version {0} no longer exists")]
    Gone(String),
    /// A role of the name the version's role would have exists with rights Refract never
    /// gives its roles, so it was not left behind by Refract.
    #[error(
        "role {0:?} exists with superuser, replication or row-security bypass rights; Refract will not take it \
         over as a projection's role: drop or rename it"
    )]
    PrivilegedRole(String),
    /// Anything else the database said.
    #[error("{}", crate::db::describe(.0))]
    Db(#[from] tokio_postgres::Error),
}

/// Which version of a projection a worker should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The component's version: the active one when the active version has the component's
    /// content hash, otherwise a version built beside it and then swapped in. `was_active`
    /// says that this worker served the active version before: if that changed, it has been
    /// superseded and must not build its (older) component again.
    Serve {
        /// Whether the worker's previous session ran the active version.
        was_active: bool,
    },
    /// A new version built from zero even when the component is the active one (`refract
    /// rebuild`); a build of the same component left unfinished is resumed.
    Rebuild,
}

/// A version of a projection, ready for a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The projection's name (its stable schema).
    pub name: String,
    /// The version's physical schema, also its checkpoint key.
    pub schema: String,
    /// Whether the stable names point at this version.
    pub active: bool,
}

/// The advisory lock key of a projection version, as SQL over its schema in `$1`: whoever
/// holds it (a worker, on its writing connection) is the one writer of that version.
pub const LOCK_KEY: &str = "hashtextextended('refract.projection.' || $1, 0)";

/// The physical schema of `name`'s version `generation`.
pub fn version_schema(name: &str, generation: i32) -> String {
    format!("{name}__{generation}")
}

/// Finds or creates the version of `loaded` that a worker with `purpose` runs, in one
/// transaction. A projection that has no version yet gets one that is active at once.
pub async fn prepare(
    client: &mut Client,
    store_schema: &str,
    loaded: &Loaded,
    purpose: Purpose,
) -> Result<Target, InstallError> {
    let name = loaded.name();
    if name == store_schema || name == "public" || name.starts_with("pg_") || name == "information_schema" {
        return Err(InstallError::Reserved(name.to_owned()));
    }
    let store = quote_ident(store_schema);
    let tx = client.transaction().await?;
    // Engines installing the same projection at once take turns (the registry row that
    // would order them may not exist yet).
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended('refract.install.' || $1, 0))", &[&name]).await?;
    let registered = registry_row(&tx, &store, name).await?;
    let target = |schema: String, active: bool| Target { name: name.to_owned(), schema, active };
    let target = match (registered, purpose) {
        (None, _) => {
            if tx.query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&name]).await?.is_some() {
                return Err(InstallError::ForeignSchema(name.to_owned()));
            }
            tx.execute(
                &format!(
                    "INSERT INTO {store}.refract_projections (name, content_hash, module_version, description)
                     VALUES ($1, $2, $3, $4)"
                ),
                &[&name, &loaded.content_hash, &loaded.description.version, &description(loaded)],
            )
            .await?;
            let schema = create_version(&tx, &store, loaded).await?;
            publish(&tx, &store, loaded, &schema, None).await?;
            target(schema, true)
        }
        (Some(Registered { content_hash, active: Some(active) }), Purpose::Serve { .. })
            if content_hash == loaded.content_hash =>
        {
            target(active, true)
        }
        (Some(Registered { active, .. }), Purpose::Serve { was_active: true }) => {
            return Err(InstallError::Superseded { name: name.to_owned(), active: active.unwrap_or_default() });
        }
        (Some(Registered { active, .. }), _) => {
            let unfinished = tx
                .query_opt(
                    &format!(
                        "SELECT schema_name FROM {store}.refract_versions
                          WHERE projection = $1 AND content_hash = $2 AND schema_name IS DISTINCT FROM $3
                            AND retired_at IS NULL
                          ORDER BY generation DESC LIMIT 1"
                    ),
                    &[&name, &loaded.content_hash, &active],
                )
                .await?;
            match unfinished {
                Some(row) => target(row.get(0), false),
                None => target(create_version(&tx, &store, loaded).await?, false),
            }
        }
    };
    tx.commit().await?;
    Ok(target)
}

struct Registered {
    content_hash: String,
    active: Option<String>,
}

async fn registry_row(tx: &Transaction<'_>, store: &str, name: &str) -> Result<Option<Registered>, InstallError> {
    let row = tx
        .query_opt(
            &format!("SELECT content_hash, active_schema FROM {store}.refract_projections WHERE name = $1 FOR UPDATE"),
            &[&name],
        )
        .await?;
    Ok(row.map(|r| Registered { content_hash: r.get(0), active: r.get(1) }))
}

fn description(loaded: &Loaded) -> serde_json::Value {
    serde_json::json!({
        "version": loaded.description.version,
        "tables": loaded.description.tables.iter().map(|t| &t.name).collect::<Vec<_>>(),
        "event_types": loaded.description.subscription.event_types,
        "categories": loaded.description.subscription.categories,
    })
}

/// Creates the next version of `loaded`: its schema, its tables, its registry row and its
/// checkpoint at the start of the log. Returns the schema.
async fn create_version(tx: &Transaction<'_>, store: &str, loaded: &Loaded) -> Result<String, InstallError> {
    let name = loaded.name();
    let generation: i32 = tx
        .query_one(
            &format!("SELECT coalesce(max(generation), 0) + 1 FROM {store}.refract_versions WHERE projection = $1"),
            &[&name],
        )
        .await?
        .get(0);
    let schema = version_schema(name, generation);
    create_tables(tx, store, loaded, &schema).await?;
    tx.execute(
        &format!(
            "INSERT INTO {store}.refract_versions (schema_name, projection, generation, content_hash, module_version)
             VALUES ($1, $2, $3, $4, $5)"
        ),
        &[&schema, &name, &generation, &loaded.content_hash, &loaded.description.version],
    )
    .await?;
    Ok(schema)
}

/// Creates `schema` (which must not exist) with `loaded`'s tables, and a checkpoint at the
/// start of the log under the schema's name.
async fn create_tables(tx: &Transaction<'_>, store: &str, loaded: &Loaded, schema: &str) -> Result<(), InstallError> {
    if tx.query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema]).await?.is_some() {
        return Err(InstallError::ForeignSchema(schema.to_owned()));
    }
    let schema_ident = quote_ident(schema);
    tx.batch_execute(&format!("CREATE SCHEMA {schema_ident}; SET LOCAL search_path TO {schema_ident}")).await?;
    let ddl_error = |error| InstallError::Ddl { name: loaded.name().to_owned(), error };
    match create_role(tx, store, schema).await? {
        // The component's DDL is its own text: it runs inside a security-definer function
        // owned by the version's role, where it has that role's rights and cannot change
        // roles (`SET ROLE`, `RESET ROLE` and `SET SESSION AUTHORIZATION` are refused inside
        // such a function) nor end the transaction.
        Some(role) => {
            let ddl = format!("{schema_ident}.refract_ddl");
            tx.batch_execute(&format!(
                "CREATE FUNCTION {ddl}(statements text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER
                     SET search_path = {schema_ident}, pg_temp AS $refract$ BEGIN EXECUTE statements; END $refract$;
                 ALTER FUNCTION {ddl}(text) OWNER TO {}",
                quote_ident(&role.name)
            ))
            .await?;
            for table in &loaded.description.tables {
                tx.execute(&format!("SELECT {ddl}($1)"), &[&table.ddl]).await.map_err(ddl_error)?;
            }
            tx.batch_execute(&format!("DROP FUNCTION {ddl}(text)")).await?;
        }
        // Without a role of its own, the version's DDL runs with the engine's rights.
        None => {
            for table in &loaded.description.tables {
                tx.batch_execute(&table.ddl).await.map_err(ddl_error)?;
            }
        }
    }
    tx.execute(
        &format!(
            "INSERT INTO {store}.checkpoints (projection_name, position, transaction_id) VALUES ($1, 0, '0')
             ON CONFLICT (projection_name) DO UPDATE SET position = 0, transaction_id = '0', updated_at = now()"
        ),
        &[&schema],
    )
    .await?;
    Ok(())
}

/// Creates schema `into` with `loaded`'s tables for a point-in-time build (`refract rebuild
/// --until --into`): a plain schema, not a version, that no view points at.
pub async fn prepare_snapshot(
    client: &mut Client,
    store_schema: &str,
    loaded: &Loaded,
    into: &str,
) -> Result<Target, InstallError> {
    let tx = client.transaction().await?;
    create_tables(&tx, &quote_ident(store_schema), loaded, into).await?;
    tx.commit().await?;
    Ok(Target { name: loaded.name().to_owned(), schema: into.to_owned(), active: false })
}

/// Ends a point-in-time build: its checkpoint row and its role go; its schema stays for the
/// reader, owned by the engine's user.
pub async fn finish_snapshot(client: &mut Client, store_schema: &str, into: &str) -> Result<(), InstallError> {
    let store = quote_ident(store_schema);
    let tx = client.transaction().await?;
    drop_role(&tx, store_schema, into, true).await?;
    tx.execute(&format!("DELETE FROM {store}.checkpoints WHERE projection_name = $1"), &[&into]).await?;
    tx.execute(&format!("DELETE FROM {store}.refract_status WHERE name = $1"), &[&into]).await?;
    tx.commit().await?;
    Ok(())
}

/// Points the stable names of `loaded`'s projection at the tables of `schema`, replacing
/// those of the version in `old` (`None`: none, or tables of a projection installed before
/// versions existed, which sit in the stable schema itself). Keeps the views' privileges where
/// the columns allow it (`CREATE OR REPLACE VIEW`).
async fn publish(
    tx: &Transaction<'_>,
    store: &str,
    loaded: &Loaded,
    schema: &str,
    old: Option<&str>,
) -> Result<(), InstallError> {
    let stable = quote_ident(loaded.name());
    if old.is_none() {
        tx.batch_execute(&format!("DROP SCHEMA IF EXISTS {stable} CASCADE; CREATE SCHEMA {stable}")).await?;
    }
    let current: Vec<String> = tx
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relkind = 'v'",
            &[&loaded.name()],
        )
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let tables: Vec<&str> = loaded.description.tables.iter().map(|t| t.name.as_str()).collect();
    for stale in current.iter().filter(|v| !tables.contains(&v.as_str())) {
        tx.batch_execute(&format!("DROP VIEW {stable}.{}", quote_ident(stale))).await?;
    }
    for table in tables {
        let view = format!("{stable}.{}", quote_ident(table));
        let select = format!("SELECT * FROM {}.{}", quote_ident(schema), quote_ident(table));
        tx.batch_execute("SAVEPOINT refract_view").await?;
        match tx.batch_execute(&format!("CREATE OR REPLACE VIEW {view} AS {select}")).await {
            Ok(()) => tx.batch_execute("RELEASE SAVEPOINT refract_view").await?,
            Err(_) => {
                // Columns changed: the view is replaced (its privileges come from the schema's
                // default privileges; see README "Hot reload").
                tx.batch_execute(&format!(
                    "ROLLBACK TO SAVEPOINT refract_view; DROP VIEW IF EXISTS {view}; CREATE VIEW {view} AS {select}"
                ))
                .await?;
            }
        }
    }
    tx.execute(
        &format!(
            "UPDATE {store}.refract_projections
                SET content_hash = $2, module_version = $3, description = $4, active_schema = $5, installed_at = now()
              WHERE name = $1"
        ),
        &[&loaded.name(), &loaded.content_hash, &loaded.description.version, &description(loaded), &schema],
    )
    .await?;
    Ok(())
}

/// Makes `target` (a version built beside the active one) the active version of its
/// projection, in one transaction: the views move to its tables, the registry names it, and
/// the old version's checkpoint row is deleted, so that a worker still running the old
/// version fails its next commit and stops. Returns the old version's schema, if it had one
/// of its own (for [`retire`]).
pub async fn switch(
    client: &mut Client,
    store_schema: &str,
    loaded: &Loaded,
    target: &Target,
) -> Result<Option<String>, InstallError> {
    let store = quote_ident(store_schema);
    let tx = client.transaction().await?;
    let old = registry_row(&tx, &store, &target.name).await?.and_then(|r| r.active);
    let exists = tx
        .query_opt(&format!("SELECT 1 FROM {store}.refract_versions WHERE schema_name = $1"), &[&target.schema])
        .await?;
    if exists.is_none() {
        return Err(InstallError::Gone(target.schema.clone()));
    }
    publish(&tx, &store, loaded, &target.schema, old.as_deref()).await?;
    // A projection installed before versions existed kept its checkpoint under its name.
    let fence = old.clone().unwrap_or_else(|| target.name.clone());
    tx.execute(&format!("DELETE FROM {store}.checkpoints WHERE projection_name = $1"), &[&fence]).await?;
    tx.execute(&format!("UPDATE {store}.refract_versions SET retired_at = now() WHERE schema_name = $1"), &[&fence])
        .await?;
    tx.commit().await?;
    Ok(old)
}

/// Drops a version that is no longer active: its schema, its role, its registry row, its
/// checkpoint.
pub async fn retire(client: &impl GenericClient, store_schema: &str, schema: &str) -> Result<(), InstallError> {
    let store = quote_ident(store_schema);
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(schema))).await?;
    drop_role(client, store_schema, schema, false).await?;
    client
        .batch_execute(&format!(
            "DELETE FROM {store}.refract_versions WHERE schema_name = {literal};
             DELETE FROM {store}.checkpoints WHERE projection_name = {literal};
             DELETE FROM {store}.refract_status WHERE name = {literal}",
            literal = quote_literal(schema),
        ))
        .await?;
    Ok(())
}

/// Drops the versions of `target`'s projection, other than `target` itself (the active one
/// now), that no worker holds: candidates whose build was abandoned (a component replaced
/// again while it was built, an interrupted rebuild). Versions kept by `keep_replaced` stay.
/// Returns the schemas dropped.
pub async fn sweep(client: &Client, store_schema: &str, target: &Target) -> Result<Vec<String>, InstallError> {
    let store = quote_ident(store_schema);
    let abandoned: Vec<String> = client
        .query(
            &format!(
                "SELECT schema_name FROM {store}.refract_versions
                  WHERE projection = $1 AND schema_name <> $2 AND retired_at IS NULL"
            ),
            &[&target.name, &target.schema],
        )
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let mut dropped = Vec::new();
    for schema in abandoned {
        let free: bool =
            client.query_one(&format!("SELECT pg_try_advisory_lock({LOCK_KEY})"), &[&schema]).await?.get(0);
        if free {
            let retired = retire(client, store_schema, &schema).await;
            client.execute(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"), &[&schema]).await?;
            retired?;
            dropped.push(schema);
        }
    }
    Ok(dropped)
}

/// Drops every trace of projection `name`: its stable schema with the views, every version's
/// schema, its registry rows, checkpoints and status. Refuses while an engine runs any version
/// of it (holds its lock).
pub async fn drop_projection(client: &mut Client, store_schema: &str, name: &str) -> Result<Vec<String>, DropError> {
    let store = quote_ident(store_schema);
    let tx = client.transaction().await?;
    let registered = registry_row(&tx, &store, name).await?;
    let versions: Vec<String> = tx
        .query(&format!("SELECT schema_name FROM {store}.refract_versions WHERE projection = $1"), &[&name])
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    if registered.is_none() && versions.is_empty() {
        return Err(DropError::Unknown(name.to_owned()));
    }
    for key in versions.iter().map(String::as_str).chain([name]) {
        let free: bool = tx.query_one(&format!("SELECT pg_try_advisory_xact_lock({LOCK_KEY})"), &[&key]).await?.get(0);
        if !free {
            return Err(DropError::Running(key.to_owned()));
        }
    }
    for schema in versions.iter().chain([&name.to_owned()]) {
        retire(&tx, store_schema, schema).await?;
    }
    tx.execute(&format!("DELETE FROM {store}.refract_projections WHERE name = $1"), &[&name]).await?;
    tx.execute(&format!("DELETE FROM {store}.refract_status WHERE name = $1 OR name = ANY($2)"), &[&name, &versions])
        .await?;
    tx.commit().await?;
    Ok(versions)
}

/// Why `refract drop` refused.
#[derive(Debug, thiserror::Error)]
pub enum DropError {
    /// No such projection.
    #[error("no projection named {0:?} is installed")]
    Unknown(String),
    /// An engine runs a version of it.
    #[error("an engine is running {0}: remove its component from the engine's directory first")]
    Running(String),
    /// The database failed.
    #[error(transparent)]
    Install(#[from] InstallError),
}

impl From<tokio_postgres::Error> for DropError {
    fn from(e: tokio_postgres::Error) -> Self {
        DropError::Install(e.into())
    }
}

/// The login of a projection version's own PostgreSQL role: its writing connection uses it.
#[derive(Clone)]
pub struct Role {
    /// The role's name.
    pub name: String,
    /// Its password (random, kept in `refract_roles`, readable by the engine's user only).
    pub password: String,
}

impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Role").field("name", &self.name).finish_non_exhaustive()
    }
}

/// How a version's own connections log in: as its role when it has one, else as the engine.
/// Everything that touches the version's tables (writes, and reads too: a view or a function
/// the role created runs with the rights of whoever queries it) goes through these.
#[derive(Debug, Clone)]
pub struct Login {
    /// The engine's database URL.
    pub url: String,
    /// The version's role, if it has one.
    pub role: Option<Role>,
}

impl Login {
    /// A new connection.
    pub async fn connect(&self) -> Result<Client, crate::db::DbError> {
        match &self.role {
            Some(role) => crate::db::connect_as(&self.url, &role.name, &role.password).await,
            None => crate::db::connect(&self.url).await,
        }
    }
}

/// Creates the role of the version whose schema (and checkpoint key) is `schema`: it logs in,
/// owns the schema, may advance its own checkpoint, and has no other rights. `None` when the
/// engine's user may not create roles (neither superuser nor `CREATEROLE`): the version is
/// then written with the engine's rights, and raw SQL stays refused unless trusted.
async fn create_role(tx: &Transaction<'_>, store: &str, schema: &str) -> Result<Option<Role>, InstallError> {
    let row = tx
        .query_one(
            "SELECT rolsuper OR rolcreaterole, current_database()::text FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await?;
    let (may, database): (bool, String) = (row.get(0), row.get(1));
    if !may {
        return Ok(None);
    }
    // Roles belong to the whole cluster: the name is unique per database, store and version.
    let digest = Sha256::digest(format!("{database}\0{store}\0{schema}").as_bytes());
    let name = format!("refract_{}", digest.iter().take(10).map(|b| format!("{b:02x}")).collect::<String>());
    let password = uuid::Uuid::new_v4().simple().to_string();
    let (role, schema_ident) = (quote_ident(&name), quote_ident(schema));
    // Grants on the same object (the store schema, the functions) from concurrent transactions
    // fail ("tuple concurrently updated"): role creation is serialized.
    tx.batch_execute("SELECT pg_advisory_xact_lock(hashtextextended('refract.roles', 0))").await?;
    // A role of this name that this store does not record was left behind by a database of the
    // same name that was dropped (a role outlives the databases it had rights in, and
    // `DROP DATABASE` does not drop it): take it over, with a new password, rather than fail on
    // every database created again under that name.
    let privileged = "SELECT rolsuper OR rolreplication OR rolbypassrls FROM pg_roles WHERE rolname = $1";
    // Only a superuser may change those three attributes, so they are checked, not reset.
    let verb = match tx.query_opt(privileged, &[&name]).await?.map(|row| row.get::<_, bool>(0)) {
        None => "CREATE",
        Some(false) => {
            tracing::warn!(role = %name, "taking over a role left behind by a dropped database of the same name");
            "ALTER"
        }
        Some(true) => return Err(InstallError::PrivilegedRole(name)),
    };
    tx.batch_execute(&format!(
        "{verb} ROLE {role} LOGIN NOINHERIT NOCREATEDB NOCREATEROLE PASSWORD {password};
         GRANT {role} TO CURRENT_USER;
         ALTER SCHEMA {schema_ident} OWNER TO {role};
         GRANT USAGE ON SCHEMA {store} TO {role};
         GRANT EXECUTE ON FUNCTION {store}.refract_advance(text, bigint, bigint, bigint, bigint) TO {role};
         GRANT EXECUTE ON FUNCTION {store}.refract_dead_letter(text, text, text[], text[]) TO {role}",
        password = quote_literal(&password),
    ))
    .await?;
    tx.execute(
        &format!("INSERT INTO {store}.refract_roles (checkpoint_key, role_name, password) VALUES ($1, $2, $3)"),
        &[&schema, &name, &password],
    )
    .await?;
    Ok(Some(Role { name, password }))
}

/// The role of the version whose checkpoint key is `key`, if it has one.
pub async fn role_of(
    client: &impl GenericClient,
    store_schema: &str,
    key: &str,
) -> Result<Option<Role>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT role_name, password FROM {}.refract_roles WHERE checkpoint_key = $1",
        quote_ident(store_schema)
    );
    Ok(client.query_opt(&sql, &[&key]).await?.map(|r| Role { name: r.get(0), password: r.get(1) }))
}

/// Drops the role of the version under `key`, if it has one, with its privileges and whatever
/// it still owns in this database (`keep_objects`: hands them to the engine's user instead).
async fn drop_role(
    client: &impl GenericClient,
    store_schema: &str,
    key: &str,
    keep_objects: bool,
) -> Result<(), tokio_postgres::Error> {
    let Some(role) = role_of(client, store_schema, key).await? else { return Ok(()) };
    let role_ident = quote_ident(&role.name);
    let reassign =
        if keep_objects { format!("REASSIGN OWNED BY {role_ident} TO CURRENT_USER;") } else { String::new() };
    client
        .batch_execute(&format!(
            "{reassign} DROP OWNED BY {role_ident}; DROP ROLE IF EXISTS {role_ident};
             DELETE FROM {}.refract_roles WHERE checkpoint_key = {}",
            quote_ident(store_schema),
            quote_literal(key)
        ))
        .await
}

/// `text` as an SQL string literal.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
