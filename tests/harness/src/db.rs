//! A fresh database per test, on the server that [`refract::db::discover`] finds.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use refract::db::Server;
use tokio::sync::OnceCell;
use tokio_postgres::Client;

/// Prefix of every test database; `<prefix><pid>_<n>` lets a later run drop the leftovers of
/// a killed one.
const PREFIX: &str = "refract_test_";

/// The server of this test process, found once. A throwaway cluster started for it lives as
/// long as the process (its watchdog stops it afterwards).
static SERVER: OnceCell<Server> = OnceCell::const_new();
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A database of its own for one test, dropped (best effort) when this value is dropped.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDb {
    /// Creates an empty database with a unique name.
    pub async fn create() -> anyhow::Result<TestDb> {
        let server = SERVER
            .get_or_try_init(|| async {
                let server = refract::db::discover().await?;
                drop_leftovers(server.url()).await?;
                anyhow::Ok(server)
            })
            .await?;
        let name = format!("{PREFIX}{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let admin = refract::db::connect(server.url()).await?;
        // template0: nobody is ever connected to it, so parallel creations cannot collide.
        admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
            .await
            .with_context(|| format!("creating test database {name}"))?;
        Ok(TestDb { url: server.database_url(&name), name, admin_url: server.url().to_owned() })
    }

    /// Creates a database and applies Refract's migrations to its `public` schema.
    pub async fn migrated() -> anyhow::Result<TestDb> {
        let db = TestDb::create().await?;
        let mut client = db.connect().await?;
        refract::migrate::migrate(&mut client, "public").await?;
        Ok(db)
    }

    /// The database's connection URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database as `DROP DATABASE` does, leaving the roles the engine created for its
    /// projections behind, and creates an empty one under the same name.
    pub async fn drop_and_create_again(&self) -> anyhow::Result<()> {
        let admin = refract::db::connect(&self.admin_url).await?;
        // Two statements: DROP DATABASE cannot run inside the implicit transaction of one.
        admin.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name)).await?;
        admin.batch_execute(&format!("CREATE DATABASE {} TEMPLATE template0", self.name)).await?;
        Ok(())
    }

    /// A new connection to the database.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        Ok(refract::db::connect(&self.url).await?)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, where blocking on async work is not allowed:
        // do it on a thread with a runtime of its own.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(drop_database(&admin_url, &name))
        })
        .join();
        if let Ok(Err(err)) = dropped {
            eprintln!("could not drop test database {}: {err:#}", self.name);
        }
    }
}

/// Drops database `name` and the roles the engine created for its projections (roles belong
/// to the whole cluster and would outlive the database).
async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let roles: Vec<String> = match refract::db::connect(&refract::db::with_database(admin_url, name)).await {
        Ok(db) => db
            .query("SELECT role_name FROM refract_roles", &[])
            .await
            .map(|rows| rows.into_iter().map(|r| r.get(0)).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let admin = refract::db::connect(admin_url).await?;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    for role in roles {
        admin.batch_execute(&format!("DROP ROLE IF EXISTS \"{}\"", role.replace('"', "\"\""))).await?;
    }
    Ok(())
}

/// Drops the test databases of processes that are gone (killed runs leave theirs behind).
async fn drop_leftovers(admin_url: &str) -> anyhow::Result<()> {
    let admin = refract::db::connect(admin_url).await?;
    let rows = admin.query("SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)", &[&PREFIX]).await?;
    for row in rows {
        let name: String = row.get(0);
        let pid = name[PREFIX.len()..].split('_').next().and_then(|pid| pid.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            drop_database(admin_url, &name).await?;
        }
    }
    Ok(())
}
