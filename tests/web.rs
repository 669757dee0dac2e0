//! The status page at `/`, rendered by a real browser: headless Chromium loads it, its script
//! fetches `/status`, and the DOM it leaves shows every loaded projection and its state.
//!
//! Chromium comes from the distribution (`apt-get install chromium`; `.ci/run` installs it).
//! Under CI (`CI=true`) a missing browser fails the test; elsewhere the test says loudly that
//! it did not run.

mod engine_http;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use engine_http::{generate, get, http_address};
use refract_projection_artifacts::{ORDER_SUMMARY, REVENUE_BY_DAY};
use refract_test_harness::TestDb;
use refract_test_harness::engine::{start_over, wait_caught_up};

const BIN: &str = env!("CARGO_BIN_EXE_refract");
const PROJECTIONS: [&str; 2] = ["order_summary", "revenue_by_day"];

/// The browser, if one is installed.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_shows_every_projection_and_its_state_in_a_browser() -> anyhow::Result<()> {
    let Some(browser) = chromium() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            bail!("chromium is not installed: CI must install it (.ci/run does, with apt-get)");
        }
        eprintln!("\n*** SKIPPED: the status page test needs chromium (apt-get install chromium) ***\n");
        return Ok(());
    };
    let db = TestDb::migrated().await?;
    let client = db.connect().await?;
    generate(&db, 60, 5).await?;
    let (_dir, engine) = start_over(BIN, db.url(), &[ORDER_SUMMARY, REVENUE_BY_DAY], &[])?;
    let address = http_address(&engine).await?;
    wait_caught_up(&client, &PROJECTIONS, Duration::from_secs(120), &engine).await?;
    // The page shows what the engine publishes, about once a second: wait until that says
    // `live`, so that the page has a known state to show.
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(address, "/status")?.body.matches("\"state\": \"live\"").count() < PROJECTIONS.len() {
        if Instant::now() > deadline {
            bail!("not live; engine log:\n{}", engine.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = get(address, "/")?;
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"), "{}", page.content_type);
    assert!(!page.body.contains("data-projection=\"order_summary\""), "the rows must come from the script");

    let profile = tempfile::tempdir()?;
    let out = Command::new(&browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        // Virtual time runs the page's timers without waiting for them; fetches are real.
        .arg("--virtual-time-budget=5000")
        .arg("--dump-dom")
        .arg(format!("http://{address}/"))
        .output()
        .with_context(|| format!("running {}", browser.display()))?;
    let dom = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    for name in PROJECTIONS {
        let row = dom
            .split("<tr ")
            .find(|row| row.starts_with(&format!("data-projection=\"{name}\"")))
            .with_context(|| format!("no row for {name} in:\n{dom}"))?;
        let row = &row[..row.find("</tr>").context("an unterminated row")?];
        assert!(row.contains(&format!("<td class=\"name\">{name}</td>")), "{row}");
        assert!(row.contains("<span class=\"state live\">live</span>"), "{row}");
    }
    assert!(dom.contains("2 projections, log head at "), "{dom}");
    Ok(())
}
