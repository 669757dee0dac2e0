//! Finding a PostgreSQL server for tests and demos.

use std::sync::Arc;

use super::{DEFAULT_DATABASE_URL, DbError, ThrowawayCluster, connect};

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
        connect(&url).await?;
        return Ok(Server { url, cluster: None });
    }
    match connect(DEFAULT_DATABASE_URL).await {
        Ok(_) => {
            return Ok(Server {
                url: DEFAULT_DATABASE_URL.to_owned(),
                cluster: None,
            });
        }
        Err(err) => {
            tracing::info!(error = %err, "no server on the default address; starting a throwaway cluster")
        }
    }
    let cluster = tokio::task::spawn_blocking(ThrowawayCluster::start)
        .await
        .expect("starting the throwaway cluster panicked")
        .map_err(DbError::NotFound)?;
    let url = cluster.url();
    connect(&url).await?;
    Ok(Server {
        url,
        cluster: Some(Arc::new(cluster)),
    })
}
