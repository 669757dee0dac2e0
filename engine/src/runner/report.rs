//! The status of every installed projection as `refract status` shows it, read from the
//! database (so it works from any machine, whichever engine owns each projection).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Client;

use crate::readmodel::quote_ident;

/// A status older than this means the engine that published it is gone.
const STALE_AFTER_SECONDS: f64 = 10.0;

/// One projection's line of `refract status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProjectionReport {
    /// Projection name.
    pub name: String,
    /// The module's own version string.
    pub version: String,
    /// SHA-256 of the component (first 12 hex digits shown in the table).
    pub content_hash: String,
    /// State as last published, or `stale` when its engine stopped publishing.
    pub state: String,
    /// The committed checkpoint's global position.
    pub checkpoint: i64,
    /// The log's last global position.
    pub head: i64,
    /// Events in the log after the checkpoint.
    pub lag: i64,
    /// Recent events per second.
    pub events_per_second: f64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Position of the event that caused it.
    pub last_error_position: Option<i64>,
    /// Id of that event.
    pub last_error_event_id: Option<String>,
    /// The engine (host:pid) that published the status.
    pub engine: Option<String>,
    /// For a version being built beside the active one (a hot reload or a rebuild; its
    /// `name` is its schema): the projection it will replace when it reaches the head.
    pub building_for: Option<String>,
    /// For a version being built: seconds left at its recent rate, if it is moving.
    pub eta_seconds: Option<f64>,
    /// A notice that is not an error of the version serving, e.g. a refused new component.
    pub notice: Option<String>,
    /// When the status was published.
    pub updated_at: Option<DateTime<Utc>>,
}

/// An open transaction that holds the visibility horizon back, so that events committed after
/// it started cannot be projected yet.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HorizonHolder {
    /// Its backend's process id.
    pub pid: i32,
    /// Its database.
    pub database: Option<String>,
    /// Its application name.
    pub application: Option<String>,
    /// When its transaction started.
    pub since: Option<DateTime<Utc>>,
    /// Its current (or last) statement, shortened.
    pub query: Option<String>,
}

/// Everything `refract status` prints.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// One entry per installed projection.
    pub projections: Vec<ProjectionReport>,
    /// The transaction holding the horizon back, when one has for more than a few seconds.
    pub horizon_held_by: Option<HorizonHolder>,
}

/// Reads the report of the store in `schema`.
pub async fn read(client: &Client, schema: &str) -> Result<Report, tokio_postgres::Error> {
    let s = quote_ident(schema);
    let head: i64 =
        client.query_one(&format!("SELECT coalesce(max(global_position), 0) FROM {s}.events"), &[]).await?.get(0);
    let rows = client
        .query(
            &format!(
                "WITH entries AS (
                     SELECT p.name, p.module_version, p.content_hash,
                            coalesce(p.active_schema, p.name) AS checkpoint_key, NULL::text AS building_for
                       FROM {s}.refract_projections p
                     UNION ALL
                     SELECT v.schema_name, v.module_version, v.content_hash, v.schema_name, v.projection
                       FROM {s}.refract_versions v
                       JOIN {s}.refract_projections p ON p.name = v.projection
                      WHERE v.schema_name IS DISTINCT FROM p.active_schema AND v.retired_at IS NULL
                     UNION ALL
                     -- A projection whose first install failed has a status and nothing else.
                     SELECT st.name, st.module_version, st.content_hash, st.name, NULL
                       FROM {s}.refract_status st
                      WHERE NOT EXISTS (SELECT 1 FROM {s}.refract_projections p WHERE p.name = st.name)
                        AND NOT EXISTS (SELECT 1 FROM {s}.refract_versions v WHERE v.schema_name = st.name)
                 )
                 SELECT e.name, e.module_version, e.content_hash,
                        coalesce(st.state, CASE WHEN e.building_for IS NULL THEN 'starting' ELSE 'paused' END),
                        coalesce(c.position, 0),
                        (SELECT count(*) FROM {s}.events ev
                          WHERE ev.transaction_id >= coalesce(c.transaction_id, '0')
                            AND (ev.transaction_id, ev.global_position) > (coalesce(c.transaction_id, '0'), coalesce(c.position, 0))),
                        coalesce(st.events_per_second, 0), st.last_error, st.last_error_position, st.last_error_event_id,
                        st.engine, st.updated_at, extract(epoch from now() - st.updated_at)::float8,
                        e.building_for, st.notice
                   FROM entries e
                   LEFT JOIN {s}.refract_status st ON st.name = e.name
                   LEFT JOIN {s}.checkpoints c ON c.projection_name = e.checkpoint_key
                  ORDER BY coalesce(e.building_for, e.name), e.building_for NULLS FIRST, e.name"
            ),
            &[],
        )
        .await?;
    let projections = rows
        .into_iter()
        .map(|r| {
            let age: Option<f64> = r.get(12);
            let mut state: String = r.get(3);
            if age.is_some_and(|a| a > STALE_AFTER_SECONDS) && state != "failed" {
                state = format!("stale ({state})");
            }
            let (lag, rate): (i64, f64) = (r.get(5), r.get(6));
            let building_for: Option<String> = r.get(13);
            ProjectionReport {
                name: r.get(0),
                version: r.get(1),
                content_hash: r.get(2),
                state,
                checkpoint: r.get(4),
                head,
                lag,
                events_per_second: rate,
                last_error: r.get(7),
                last_error_position: r.get(8),
                last_error_event_id: r.get(9),
                engine: r.get(10),
                updated_at: r.get(11),
                eta_seconds: building_for.as_ref().filter(|_| rate > 0.0).map(|_| lag as f64 / rate),
                building_for,
                notice: r.get(14),
            }
        })
        .collect();
    let holder = client
        .query_opt(
            "SELECT a.pid, a.datname::text, a.application_name, a.xact_start, left(a.query, 120)
               FROM pg_stat_activity a
              WHERE a.backend_xid IS NOT NULL
                AND a.backend_xid::text::bigint = pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296
                AND a.xact_start < now() - interval '5 seconds'",
            &[],
        )
        .await?
        .map(|r| HorizonHolder {
            pid: r.get(0),
            database: r.get(1),
            application: r.get(2),
            since: r.get(3),
            query: r.get(4),
        });
    Ok(Report { projections, horizon_held_by: holder })
}
