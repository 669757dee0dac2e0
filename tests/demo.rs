//! `refract demo`, the README's main command, run non-interactively: it exits 0, prints every
//! section, and what it built equals the reference model.

use refract_test_harness::TestDb;
use refract_test_harness::reference::{actual_from_db, assert_same, expected_from_db};

const BIN: &str = env!("CARGO_BIN_EXE_refract");

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_builds_the_order_domain_and_follows_a_live_feed() -> anyhow::Result<()> {
    // The test's own database only tells the demo which server to use; the demo makes a
    // scratch database of its own there, named so that it collides with nothing.
    let db = TestDb::create().await?;
    let scratch = format!("{}_demo", db.name());
    let out = std::process::Command::new(BIN)
        .args(["demo", "--orders", "300", "--seconds", "2", "--database", &scratch])
        .env("DATABASE_URL", db.url())
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for section in [
        "generated",
        "caught up",
        "Orders (order_summary.order_summary: ",
        "Revenue by day",
        "Live:",
        "stopped cleanly",
    ] {
        assert!(stdout.contains(section), "no {section:?} in:\n{stdout}");
    }
    assert!(stdout.lines().any(|l| l.contains("append→read model p50")), "no live latency line:\n{stdout}");

    // The five largest orders, largest first (by amount, not as text).
    let totals: Vec<f64> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Orders"))
        .skip(2)
        .take(5)
        .map(|l| l.split_whitespace().nth(3).expect("a total column").parse().expect("a number"))
        .collect();
    assert_eq!(totals.len(), 5, "{stdout}");
    assert!(totals.windows(2).all(|w| w[0] >= w[1]), "not largest first: {totals:?}");

    let url = refract::db::with_database(db.url(), &scratch);
    let client = refract::db::connect(&url).await?;
    let expected = expected_from_db(&client, "public").await?;
    assert!(expected.order_summary.len() >= 300);
    assert_same(&expected, &actual_from_db(&client).await?);
    drop(client);
    refract::db::connect(db.url()).await?.batch_execute(&format!("DROP DATABASE {scratch} WITH (FORCE)")).await?;
    Ok(())
}
