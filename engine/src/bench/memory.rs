//! Memory with many projections live: one engine running [`PROJECTIONS`] projections (copies
//! of the example components under names of their own), built up to the head of the log, then
//! tailing a modest append rate. Its peak RSS while live is what a deployment keeps resident.

use std::time::Duration;

use serde::Serialize;
use tokio_postgres::Client;

use super::BenchError;
use super::engine::{EngineChild, EngineSpec};
use super::rebuild::reset;
use super::writer::{Appender, append_at_rate};
use crate::runner::Cursor;
use refract_projection_artifacts::{ORDER_SUMMARY, REVENUE_BY_DAY};

/// Projections live at once.
pub const PROJECTIONS: usize = 10;
/// Events per second appended while they are live.
pub const RATE: u64 = 1_000;
/// How long they tail the appends.
pub const LIVE: Duration = Duration::from_secs(5);

/// The components the projections are copies of, in turn: `(name it describes, path)`.
const TEMPLATES: [(&str, &str); 2] = [("order_summary", ORDER_SUMMARY), ("revenue_by_day", REVENUE_BY_DAY)];

/// What the memory test measured.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    /// The projections live, in one engine.
    pub projections: Vec<String>,
    /// Seconds they took to build from zero up to the head of the log, together in one scan.
    pub catch_up_seconds: f64,
    /// Peak RSS of the engine while they built, MiB.
    pub catch_up_peak_rss_mib: Option<f64>,
    /// RSS of the engine once they had caught up, MiB (what it kept of the build).
    pub caught_up_rss_mib: Option<f64>,
    /// Events appended while they were live.
    pub live_events: u64,
    /// Seconds of appending.
    pub live_seconds: f64,
    /// Peak RSS of the engine from the moment they had caught up until they had applied every
    /// append, MiB.
    pub live_peak_rss_mib: Option<f64>,
}

/// The names of the projections (each template's name, its last two letters replaced by a
/// number: the same length, see [`renamed`]).
pub fn names() -> Vec<String> {
    (1..=PROJECTIONS)
        .map(|i| {
            let (template, _) = TEMPLATES[(i - 1) % TEMPLATES.len()];
            format!("{}{i:02}", &template[..template.len() - 2])
        })
        .collect()
}

/// Builds the [`PROJECTIONS`] projections from zero up to `head` in one engine, then appends
/// at [`RATE`] for [`LIVE`] while they tail the log, and measures the engine's peak RSS in
/// each phase.
pub async fn memory(
    client: &mut Client,
    spec: &EngineSpec<'_>,
    events: u64,
    head: Cursor,
    seed: u64,
) -> Result<Memory, BenchError> {
    let names = names();
    reset(client, spec.schema, &names.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    let dir = tempfile::tempdir()?;
    let mut projections = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let (template, path) = TEMPLATES[i % TEMPLATES.len()];
        let file = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&file, renamed(&std::fs::read(path)?, template, name)?)?;
        projections.push((name.as_str(), file));
    }
    let mut engine = EngineChild::start(spec, &projections)?;
    let timeout = Duration::from_secs((events / 200).max(300));
    let (installed, caught_up) = engine.wait_caught_up(client, spec.schema, head, timeout).await?;
    let catch_up_peak = engine.peak_rss_bytes();
    let caught_up_rss = engine.reset_peak_rss()?;

    let appender = Appender::new(crate::db::connect(spec.url).await?, spec.schema).await?;
    let log = super::scratch::live_log(seed.wrapping_add(2), RATE * (LIVE.as_secs() + 2));
    let mut last = head;
    let paced = append_at_rate(&appender, log, RATE, LIVE, |cursor, _| last = cursor).await?;
    engine.wait_caught_up(client, spec.schema, last, Duration::from_secs(120)).await?;
    let usage = engine.finish(client).await?;
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    Ok(Memory {
        projections: names,
        catch_up_seconds: caught_up.duration_since(installed).as_secs_f64(),
        catch_up_peak_rss_mib: catch_up_peak.map(mib),
        caught_up_rss_mib: caught_up_rss.map(mib),
        live_events: paced.events,
        live_seconds: paced.seconds,
        live_peak_rss_mib: usage.peak_rss_bytes.map(mib),
    })
}

/// `component` describing itself as projection `to` instead of `from`: every occurrence of
/// `from`'s bytes replaced by `to`'s, which must be as long (the name, its table of the same
/// name and that table's DDL are string constants in the component's data; nothing else in
/// it depends on their bytes).
fn renamed(component: &[u8], from: &str, to: &str) -> Result<Vec<u8>, BenchError> {
    if from.len() != to.len() {
        return Err(BenchError::Component(format!("cannot rename {from} to {to}: not the same length")));
    }
    let (name, from, to) = (from, from.as_bytes(), to.as_bytes());
    let mut out = component.to_vec();
    let mut found = 0;
    let mut at = 0;
    while let Some(offset) = out[at..].windows(from.len()).position(|w| w == from) {
        out[at + offset..at + offset + to.len()].copy_from_slice(to);
        at += offset + to.len();
        found += 1;
    }
    if found == 0 {
        return Err(BenchError::Component(format!("the component does not hold the name {name}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_valid_names_as_long_as_their_templates() {
        let names = names();
        assert_eq!(names.len(), PROJECTIONS);
        assert_eq!(names.iter().collect::<std::collections::HashSet<_>>().len(), PROJECTIONS);
        assert!(names.iter().all(|n| crate::runner::loader::valid_name(n)));
        assert_eq!(names[0], "order_summa01");
        assert_eq!(names[1], "revenue_by_d02");
    }

    #[test]
    fn renaming_replaces_every_occurrence_and_nothing_else() {
        let component = b"\0order_summary\0CREATE TABLE order_summary (x int)\0order_lines";
        let renamed = renamed(component, "order_summary", "order_summa01").unwrap();
        assert_eq!(renamed, b"\0order_summa01\0CREATE TABLE order_summa01 (x int)\0order_lines");
        assert!(super::renamed(component, "order_summary", "short").is_err());
        assert!(super::renamed(component, "revenue_by_day", "revenue_by_d02").is_err());
    }
}
