//! CPU time and peak memory of local processes, read from `/proc` (Linux).
//!
//! Used for the engine's child process and for the PostgreSQL backends serving it; a process
//! that is not on this machine (a remote server's backend) or has exited reads as `None`.

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, fixed at 100 by Linux's ABI).
const USER_HZ: f64 = 100.0;

/// User plus system CPU seconds `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_seconds(&stat)
}

/// The highest resident set size `pid` has had (`VmHWM`), in bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

/// The resident set size of `pid` now (`VmRSS`), in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

/// Resets the peak resident set size of `pid` to its current one, so that [`peak_rss_bytes`]
/// gives the peak from now on (`/proc/<pid>/clear_refs`, Linux 4.0 and later).
pub fn reset_peak_rss(pid: u32) -> std::io::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    parse_kib(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?, field)
}

/// The value of `field` (e.g. `VmHWM:`, in kB) of a `/proc/<pid>/status` text.
fn parse_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_times_after_a_command_name_with_spaces() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_cpu_seconds(stat), Some(3.8));
    }

    #[test]
    fn reads_the_high_water_mark_and_the_resident_size() {
        let status = "Name:\trefract\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_kib(status, "VmHWM:"), Some(2048));
        assert_eq!(parse_kib(status, "VmRSS:"), Some(1024));
        assert_eq!(parse_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some());
        assert!(peak_rss_bytes(pid).unwrap() > 0);
    }

    #[test]
    fn a_reset_peak_forgets_memory_given_back() {
        let pid = std::process::id();
        let mut block = vec![0u8; 128 << 20];
        // Touch every page, so that the block is resident.
        block.iter_mut().step_by(4096).for_each(|b| *b = 1);
        std::hint::black_box(&block);
        let with_block = peak_rss_bytes(pid).unwrap();
        assert!(rss_bytes(pid).unwrap() >= 128 << 20);
        drop(block);
        reset_peak_rss(pid).unwrap();
        assert!(peak_rss_bytes(pid).unwrap() < with_block);
    }
}
