//! Connecting to PostgreSQL, and finding a server to connect to.

mod cluster;
mod discover;
mod listen;

pub use cluster::{ClusterError, ThrowawayCluster};
pub use discover::{Server, discover};
pub use listen::listen;

use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

/// The database used when neither `--database-url` nor `DATABASE_URL` is given.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Why a connection could not be made.
///
/// Messages carry the cause's text themselves; the underlying errors are kept as fields, not
/// as `source()`, so that a report of the whole chain does not say everything twice.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The connection string does not parse.
    #[error("invalid database URL {url:?}: {}", reason(error))]
    InvalidUrl {
        /// The URL, as given.
        url: String,
        /// The parse error (its text is part of this error's message).
        error: tokio_postgres::Error,
    },
    /// Nothing accepted the connection, or the server refused it.
    #[error(
        "cannot connect to PostgreSQL at {target}: {reason}\n\
         Start PostgreSQL (on Debian: `pg_ctlcluster <version> main start`) or point \
         --database-url / DATABASE_URL at a running server (PostgreSQL 13 or newer)"
    )]
    Connect {
        /// `host:port` (or the socket directory) that was tried.
        target: String,
        /// The cause, with the server's own message when it answered.
        reason: String,
        /// The underlying error (its text is part of this error's message).
        error: tokio_postgres::Error,
    },
    /// The server is older than PostgreSQL 13 (Refract needs `xid8` and `pg_current_xact_id()`).
    #[error("PostgreSQL at {url} is version {version}; Refract needs PostgreSQL 13 or newer")]
    TooOld {
        /// The server's URL.
        url: String,
        /// Its `server_version`.
        version: String,
    },
    /// No server could be found or started (see [`discover`]).
    #[error(
        "no PostgreSQL server found: DATABASE_URL is not set, nothing accepts connections on \
         127.0.0.1:5432 as user postgres, and a throwaway cluster could not be started ({0}).\n\
         Install PostgreSQL 13 or newer (e.g. `apt-get install postgresql`) and start it, or set \
         DATABASE_URL to a server you can use"
    )]
    NotFound(ClusterError),
}

/// Connects to `url` (URL or `key=value` form) without TLS and spawns the connection task on
/// the current tokio runtime. The connection closes when the returned client is dropped.
pub async fn connect(url: &str) -> Result<Client, DbError> {
    let config: Config = url.parse().map_err(|error| DbError::InvalidUrl { url: url.to_owned(), error })?;
    connect_with(config).await
}

/// Like [`connect`], logging in as `user` with `password` instead of the URL's user: a
/// projection's writing connection, as the role of its own that the engine created.
pub async fn connect_as(url: &str, user: &str, password: &str) -> Result<Client, DbError> {
    let mut config: Config = url.parse().map_err(|error| DbError::InvalidUrl { url: url.to_owned(), error })?;
    config.user(user).password(password);
    connect_with(config).await
}

async fn connect_with(mut config: Config) -> Result<Client, DbError> {
    // A peer that vanished without closing (a dead host, a cut network) is noticed within
    // about a minute, so that a lost owner's lock is released and a standby takes over.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(60));
    let (client, connection) = config.connect(NoTls).await.map_err(|error| DbError::Connect {
        target: target(&config),
        reason: reason(&error),
        error,
    })?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "PostgreSQL connection closed with an error");
        }
    });
    Ok(client)
}

/// `url` with its database name replaced by `dbname`; works for URLs and `key=value` strings.
pub fn with_database(url: &str, dbname: &str) -> String {
    let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) else {
        // key=value form: a later key overrides an earlier one.
        return format!("{url} dbname='{}'", dbname.replace('\\', "\\\\").replace('\'', "\\'"));
    };
    let scheme = &url[..url.len() - rest.len()];
    let (before_query, query) = rest.split_once('?').map_or((rest, None), |(a, q)| (a, Some(q)));
    let authority = before_query.split_once('/').map_or(before_query, |(a, _)| a);
    let mut out = format!("{scheme}{authority}/{dbname}");
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

fn target(config: &Config) -> String {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    match config.get_hosts().first() {
        Some(Host::Tcp(host)) => format!("{host}:{port}"),
        Some(Host::Unix(dir)) => format!("{}/.s.PGSQL.{port}", dir.display()),
        None => format!("localhost:{port}"),
    }
}

/// A database error as one line: the server's message (and detail) when the server answered,
/// else the innermost cause. (`tokio_postgres::Error`'s own `Display` says only "db error".)
pub fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        for extra in [db.detail(), db.hint()].into_iter().flatten() {
            text.push_str(": ");
            text.push_str(extra);
        }
        return text;
    }
    reason(err)
}

fn reason(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return db.message().to_owned();
    }
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(inner) = source {
        if inner.source().is_none() {
            return inner.to_string();
        }
        source = inner.source();
    }
    err.to_string()
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(with_database("postgres://u@h:1/postgres", "x"), "postgres://u@h:1/x");
        assert_eq!(with_database("postgresql://u@h", "x"), "postgresql://u@h/x");
        assert_eq!(with_database("postgres://h/db?sslmode=disable", "x"), "postgres://h/x?sslmode=disable");
        assert_eq!(with_database("host=h user=u", "x"), "host=h user=u dbname='x'");
    }
}
