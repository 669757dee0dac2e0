//! Finding a PostgreSQL server for tests and demos.

use std::sync::Arc;

use super::{ClusterError, DEFAULT_DATABASE_URL, DbError, ThrowawayCluster, connect};

/// A reachable PostgreSQL server, as found by [`discover`].
#[derive(Debug, Clone)]
pub struct Server {
    url: String,
    cluster: Option<Arc<ThrowawayCluster>>,
}

impl Server {
    /// The URL of the server's `postgres` database (or of the database `DATABASE_URL` names).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of another database on the same server.
    pub fn database_url(&self, dbname: &str) -> String {
        super::with_database(&self.url, dbname)
    }

    /// Whether the server is a throwaway cluster of this process (stopped when the last clone
    /// of this `Server` is dropped, or when the process ends).
    pub fn is_throwaway(&self) -> bool {
        self.cluster.is_some()
    }
}

/// Finds a server: `DATABASE_URL` if set (and then only it), else `postgres@127.0.0.1:5432`,
/// else a [`ThrowawayCluster`] started from the installed PostgreSQL binaries.
pub async fn discover() -> Result<Server, DbError> {
    if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        check_version(&url).await?;
        return Ok(Server { url, cluster: None });
    }
    match check_version(DEFAULT_DATABASE_URL).await {
        Ok(()) => {
            let url = DEFAULT_DATABASE_URL.to_owned();
            return Ok(Server { url, cluster: None });
        }
        Err(err @ DbError::TooOld { .. }) => return Err(err),
        Err(err) => {
            tracing::info!(error = %err, "no server on the default address; starting a throwaway cluster");
        }
    }
    let cluster = tokio::task::spawn_blocking(ThrowawayCluster::start)
        .await
        .map_err(|join| DbError::NotFound(ClusterError::Step { step: "starting a cluster", detail: join.to_string() }))?
        .map_err(DbError::NotFound)?;
    let url = cluster.url();
    check_version(&url).await?;
    Ok(Server { url, cluster: Some(Arc::new(cluster)) })
}

/// Connects to `url` and refuses servers older than PostgreSQL 13.
async fn check_version(url: &str) -> Result<(), DbError> {
    let client = connect(url).await?;
    let query = "SELECT current_setting('server_version_num')::int, current_setting('server_version')";
    let row = client.query_one(query, &[]).await.map_err(|error| DbError::Connect {
        target: url.to_owned(),
        reason: super::describe(&error),
        error,
    })?;
    if row.get::<_, i32>(0) < 130_000 {
        return Err(DbError::TooOld { url: url.to_owned(), version: row.get(1) });
    }
    Ok(())
}
