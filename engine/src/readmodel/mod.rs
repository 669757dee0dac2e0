//! Writing read models: a batch's operations become set-based SQL in the projection's schema.

mod plan;
mod tables;
mod value;

pub use plan::{Param, PlanError, Statement, canonical, plan};
pub use tables::{Tables, quote_ident};
pub use value::{ValueError, to_text};

use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;

/// Runs `statements` on `client` (inside the caller's transaction), returning rows affected.
pub async fn execute(client: &impl GenericClient, statements: &[Statement]) -> Result<u64, tokio_postgres::Error> {
    let mut affected = 0;
    for statement in statements {
        let params: Vec<&(dyn ToSql + Sync)> = statement.params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        affected += client.execute(statement.sql.as_str(), &params).await?;
    }
    Ok(affected)
}
