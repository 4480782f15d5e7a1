//! CPU time and memory of a process, read from `/proc/PID/stat` and `/proc/PID/status`.

use std::io;
use std::time::Duration;

/// What one look at a process found.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// User plus system CPU time since the process started (its threads included,
    /// the exited ones too).
    pub cpu: Duration,
    /// Resident set size.
    pub rss_bytes: u64,
}

/// Clock ticks per second of `utime`/`stime` in `/proc/PID/stat`.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

fn read(pid: &str) -> io::Result<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses; fields after the
    // last ')' are plain numbers, state first.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("malformed /proc stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 14 (utime) and 15 (stime) of the whole line are 12 and 13 after the state.
    let number = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("malformed /proc stat"))
    };
    let ticks = number(11)? + number(12)?;
    let tps = ticks_per_second();
    let cpu = Duration::from_nanos(ticks * 1_000_000_000 / tps);

    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(Sample {
        cpu,
        rss_bytes: rss_kib * 1024,
    })
}

/// Samples another process.
pub fn sample(pid: u32) -> io::Result<Sample> {
    read(&pid.to_string())
}

/// Samples the load generator itself.
pub fn sample_self() -> Sample {
    read("self").unwrap_or_default()
}
