//! Confinement in PostgreSQL (issue 10): every projection version writes through a role of
//! its own that the engine creates; that role has no rights outside the version's schema.
//! These tests log in as a projection's role, as its writing connection does, and try what a
//! hostile projection's SQL could.

use std::time::Duration;

use refract_projection_artifacts::{ORDER_SUMMARY, REVENUE_BY_DAY};
use refract_test_harness::TestDb;
use refract_test_harness::engine::{generate_orders, start_over, wait_caught_up};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

const BIN: &str = env!("CARGO_BIN_EXE_refract");
/// A bound on a hang, not a performance expectation.
const PATIENCE: Duration = Duration::from_secs(180);

/// Logs in to `db` as the role of `name`'s active version.
async fn as_role_of(db: &TestDb, admin: &Client, name: &str) -> anyhow::Result<(Client, String)> {
    let row = admin
        .query_one(
            "SELECT r.role_name, r.password FROM refract_roles r
               JOIN refract_projections p ON p.active_schema = r.checkpoint_key WHERE p.name = $1",
            &[&name],
        )
        .await?;
    let (role, password): (String, String) = (row.get(0), row.get(1));
    let mut config: tokio_postgres::Config = db.url().parse()?;
    config.user(&role).password(&password);
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok((client, role))
}

async fn denied(client: &Client, sql: &str) {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("a projection's role could run: {sql}"),
        Err(error) => assert_eq!(
            error.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: expected a permission error, got {error}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projections_role_has_no_rights_outside_its_schema() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    generate_orders(BIN, db.url(), 100, 1)?;
    let (_dir, engine) = start_over(BIN, db.url(), &[ORDER_SUMMARY, REVENUE_BY_DAY], &[])?;
    let admin = db.connect().await?;
    wait_caught_up(&admin, &["order_summary", "revenue_by_day"], PATIENCE, &engine).await?;
    let (role, name) = as_role_of(&db, &admin, "order_summary").await?;

    // Its own schema is its own.
    let own: i64 = role.query_one("SELECT count(*) FROM order_summary__1.order_summary", &[]).await?.get(0);
    assert!(own > 0);
    // Nothing else: the log, the engine's tables, another projection, the stable views.
    for sql in [
        "SELECT count(*) FROM public.events",
        "DROP TABLE public.events",
        "INSERT INTO public.streams (stream_id, category) VALUES ('escaped-1', 'escaped')",
        "UPDATE public.checkpoints SET position = 0",
        "SELECT * FROM public.refract_roles",
        "SELECT count(*) FROM revenue_by_day__1.revenue_by_day",
        "DELETE FROM revenue_by_day__1.revenue_by_day",
        "SELECT count(*) FROM order_summary.order_summary",
        "CREATE TABLE revenue_by_day__1.planted (x int)",
        "SET ROLE postgres",
        "SELECT set_config('role', 'postgres', false)",
        "SET SESSION AUTHORIZATION postgres",
    ] {
        denied(&role, sql).await;
    }
    // In its own schema too, nothing that would run with a reader's rights.
    for sql in [
        "CREATE FUNCTION order_summary__1.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE VIEW order_summary__1.v AS SELECT 1 AS x",
        "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    ] {
        denied(&role, sql).await;
    }
    // PostgreSQL 15 grants no CREATE on `public` to PUBLIC: nothing can be planted there.
    denied(&role, "CREATE TABLE public.planted (x int)").await;
    // RESET ROLE leads back to the login: the projection's role itself.
    role.batch_execute("RESET ROLE").await?;
    let current: String = role.query_one("SELECT current_user::text", &[]).await?.get(0);
    assert_eq!(current, name);
    // It may move its own checkpoint only (through the engine's function).
    let before: i64 = admin
        .query_one("SELECT position FROM checkpoints WHERE projection_name = 'revenue_by_day__1'", &[])
        .await?
        .get(0);
    let moved: bool =
        role.query_one("SELECT public.refract_advance('revenue_by_day__1', 0, $1, 0, 0)", &[&before]).await?.get(0);
    assert!(!moved, "a role moved another projection's checkpoint");
    let after: i64 = admin
        .query_one("SELECT position FROM checkpoints WHERE projection_name = 'revenue_by_day__1'", &[])
        .await?
        .get(0);
    assert_eq!(before, after);
    Ok(())
}
