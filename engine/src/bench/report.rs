//! The human-readable table of a [`Report`].

use std::fmt::Write as _;

use super::Report;
use super::writer::FILL_TRANSACTION_EVENTS;

/// The report as a table: one line per yardstick and per rebuild (medians over the runs),
/// then the live latency if measured.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let m = &report.machine;
    let runs = report.runs.len();
    let _ = writeln!(
        out,
        "refract bench: {} events (seed {}), batches of {}, median of {runs} run{}",
        group(report.events as f64),
        report.seed,
        report.batch_size,
        if runs == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        out,
        "machine: {} CPUs ({}), {} memory, PostgreSQL {}",
        m.cpus,
        m.cpu_model.as_deref().unwrap_or("unknown model"),
        m.memory_gib.map_or("unknown".into(), |g| format!("{g:.0} GiB")),
        m.postgres,
    );
    let _ = writeln!(
        out,
        "log generated and appended in {:.1} s, in {} transactions of {} to {} events\n",
        report.load_seconds,
        group(report.load_transactions as f64),
        FILL_TRANSACTION_EVENTS.start(),
        FILL_TRANSACTION_EVENTS.end()
    );
    let _ = writeln!(
        out,
        "{:<32} {:>12} {:>9} {:>9} {:>9} {:>10} {:>8} {:>10} {:>10}",
        "", "events/s", "× read", "× write", "peak RSS", "engine CPU", "PG CPU", "batch p50", "batch p99"
    );
    let median = &report.median;
    let read = &median.raw_read;
    let _ = writeln!(
        out,
        "{:<32} {:>12} {:>9} {:>9} {:>9} {:>10} {:>8} {:>10} {:>10}",
        "raw read limit",
        group(read.events_per_second),
        "1.00",
        "-",
        "-",
        seconds(read.client_cpu_seconds),
        seconds(read.postgres_cpu_seconds),
        "-",
        "-"
    );
    let write = &median.raw_write;
    let _ = writeln!(
        out,
        "{:<32} {:>12} {:>9} {:>9} {:>9} {:>10} {:>8} {:>10} {:>10}",
        format!("raw write limit ({} rows)", group(write.rows as f64)),
        format!("{} rows/s", group(write.rows_per_second)),
        "-",
        "1.00",
        "-",
        "-",
        seconds(write.postgres_cpu_seconds),
        "-",
        "-"
    );
    for rebuild in &median.rebuilds {
        let _ = writeln!(
            out,
            "{:<32} {:>12} {:>9.2} {:>9} {:>9} {:>10} {:>8} {:>10} {:>10}",
            format!("rebuild: {}", rebuild.case),
            group(rebuild.events_per_second),
            rebuild.ratio_to_raw_read,
            rebuild.ratio_to_raw_write.map_or("-".into(), |r| format!("{r:.2}")),
            mebibytes(rebuild.peak_rss_mib),
            seconds(rebuild.engine_cpu_seconds),
            seconds(rebuild.postgres_cpu_seconds),
            millis(rebuild.batch_ms_p50),
            millis(rebuild.batch_ms_p99)
        );
    }
    if runs > 1 {
        let _ = writeln!(out, "\nper run (events/s; ratios to that run's raw read):");
        for (i, run) in report.runs.iter().enumerate() {
            let rebuilds: Vec<String> = run
                .rebuilds
                .iter()
                .map(|b| format!("{} {} ({:.2})", b.case, group(b.events_per_second), b.ratio_to_raw_read))
                .collect();
            let _ = writeln!(
                out,
                "  {}: read {}, write {} rows/s; {}",
                i + 1,
                group(run.raw_read.events_per_second),
                group(run.raw_write.rows_per_second),
                rebuilds.join(", ")
            );
        }
    }
    for tail in &report.tails {
        let _ = writeln!(
            out,
            "\nlive tail ({}): {} events/s asked, {} appended{} in {} transactions of ~{} events \
             (one every {:.0} ms; {} ms when on schedule); append COMMIT → read model COMMIT p50 {} \
             p99 {} max {} over {} appends ({} unfinished; resolution {} ms)",
            tail.projection,
            tail.target_rate,
            group(tail.achieved_rate),
            if tail.achieved_rate < 0.95 * tail.target_rate as f64 { " (the writer fell behind)" } else { "" },
            tail.appends,
            group(tail.events as f64 / tail.appends.max(1) as f64),
            tail.seconds * 1e3 / tail.appends.max(1) as f64,
            tail.append_interval_ms,
            millis(tail.latency_ms_p50),
            millis(tail.latency_ms_p99),
            millis(tail.latency_ms_max),
            tail.timed,
            tail.unfinished,
            tail.resolution_ms
        );
    }
    if let Some(memory) = &report.memory {
        let _ = writeln!(
            out,
            "\nmemory, {} projections in one engine ({}): built from zero in {:.1} s, peak RSS {} \
             ({} resident once caught up); then live, {} events appended at {} events/s: peak RSS {}",
            memory.projections.len(),
            memory.projections.join(", "),
            memory.catch_up_seconds,
            mebibytes(memory.catch_up_peak_rss_mib),
            mebibytes(memory.caught_up_rss_mib),
            group(memory.live_events as f64),
            group(memory.live_events as f64 / memory.live_seconds),
            mebibytes(memory.live_peak_rss_mib)
        );
    }
    out
}

/// `1234567.8` as `1,234,568`.
fn group(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn seconds(value: Option<f64>) -> String {
    value.map_or("-".into(), |s| format!("{s:.1} s"))
}

fn mebibytes(value: Option<f64>) -> String {
    value.map_or("-".into(), |m| format!("{m:.0} MiB"))
}

fn millis(value: Option<f64>) -> String {
    value.map_or("-".into(), |ms| format!("{ms:.0} ms"))
}

#[cfg(test)]
mod tests {
    use super::group;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(1_234_567.8), "1,234,568");
        assert_eq!(group(999.0), "999");
        assert_eq!(group(0.0), "0");
    }
}
