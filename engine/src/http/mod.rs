//! The HTTP endpoints of a running engine, for operators and their tools.
//!
//! | path | what it answers |
//! |---|---|
//! | `/` | a read-only page of every projection, refreshing itself from `/status` |
//! | `/healthz` | `200 ok` while the engine runs (it does not depend on the database) |
//! | `/status` | the JSON document of `refract status --json`, read from the database the same way |
//! | `/metrics` | Prometheus metrics in the OpenMetrics text format (see [`crate::metrics`]) |
//!
//! The caller binds the address ([`Listener::bind`]) so that a bad address is reported before
//! the engine starts and the bound port is known (port 0 picks a free one).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State as Shared;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::sync::{Mutex, watch};
use tokio_postgres::Client;

use crate::runner::report::{self, Report};
use crate::runner::{RunConfig, StatusBoard};

/// The page at `/`: static HTML and JavaScript, built into the binary.
const PAGE: &str = include_str!("page.html");
/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A bound TCP socket for the engine's HTTP endpoints.
#[derive(Debug, Clone)]
pub struct Listener {
    socket: Arc<std::net::TcpListener>,
    address: SocketAddr,
}

impl Listener {
    /// Binds `address`; port 0 picks a free port (see [`Listener::local_addr`]).
    pub fn bind(address: SocketAddr) -> std::io::Result<Listener> {
        let socket = std::net::TcpListener::bind(address)?;
        socket.set_nonblocking(true)?;
        let address = socket.local_addr()?;
        Ok(Listener { socket: Arc::new(socket), address })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }
}

/// What the handlers share.
struct Endpoints {
    database_url: String,
    store_schema: String,
    status: StatusBoard,
    /// One connection for `/status` and `/metrics`, opened on first use and after an error.
    client: Mutex<Option<Client>>,
}

/// Serves the endpoints on `listener` until `shutdown` becomes `true`.
pub async fn serve(listener: Listener, config: RunConfig, status: StatusBoard, mut shutdown: watch::Receiver<bool>) {
    let socket = match listener.socket.try_clone().and_then(tokio::net::TcpListener::from_std) {
        Ok(socket) => socket,
        Err(error) => {
            tracing::error!(%error, address = %listener.address, "cannot serve HTTP");
            return;
        }
    };
    let endpoints = Arc::new(Endpoints {
        database_url: config.database_url,
        store_schema: config.store_schema,
        status,
        client: Mutex::new(None),
    });
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/status", get(status_json))
        .route("/metrics", get(metrics_text))
        .with_state(endpoints);
    let stopped = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    if let Err(error) = axum::serve(socket, app).with_graceful_shutdown(stopped).await {
        tracing::error!(%error, "the HTTP server stopped");
    }
}

impl Endpoints {
    /// The report of `refract status`, on the shared connection (reopened after an error).
    async fn report(&self) -> Result<Report, String> {
        let mut client = self.client.lock().await;
        if client.as_ref().is_none_or(Client::is_closed) {
            *client = Some(crate::db::connect(&self.database_url).await.map_err(|e| e.to_string())?);
        }
        let result = report::read(client.as_ref().expect("connected above"), &self.store_schema).await;
        result.map_err(|error| {
            *client = None;
            format!("reading the status: {}", crate::db::describe(&error))
        })
    }
}

async fn status_json(Shared(endpoints): Shared<Arc<Endpoints>>) -> Response {
    let document =
        endpoints.report().await.and_then(|report| serde_json::to_string_pretty(&report).map_err(|e| e.to_string()));
    match document {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json + "\n").into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error + "\n").into_response(),
    }
}

async fn metrics_text(Shared(endpoints): Shared<Arc<Endpoints>>) -> Response {
    // Lag comes from the database, as in `refract status`; without it the other series are
    // still worth serving, and the lag gauges keep their last value.
    let report = match endpoints.report().await {
        Ok(report) => Some(report),
        Err(error) => {
            tracing::warn!(%error, "metrics served without fresh lag");
            None
        }
    };
    let metrics = endpoints.status.metrics();
    for (name, s) in endpoints.status.snapshot() {
        let lag = report.as_ref().and_then(|r| r.projections.iter().find(|p| p.name == name)).map(|p| p.lag);
        metrics.observe(&name, &s.module_version, s.state, s.checkpoint.position, lag);
    }
    // Every line of the report carries the same head.
    if let Some(first) = report.as_ref().and_then(|r| r.projections.first()) {
        metrics.observe_head(first.head);
    }
    ([(header::CONTENT_TYPE, OPENMETRICS)], metrics.encode()).into_response()
}
