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

/// How often [`PeakRss`] looks.
const PEAK_SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// The largest RSS of a process seen while it is watched, sampled every
/// [`PEAK_SAMPLE_INTERVAL`] by a local task (call inside a `LocalSet`).
pub struct PeakRss {
    peak: std::rc::Rc<std::cell::Cell<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    pub fn watch(pid: u32) -> Self {
        let peak = std::rc::Rc::new(std::cell::Cell::new(0));
        let seen = peak.clone();
        let task = tokio::task::spawn_local(async move {
            loop {
                if let Ok(s) = sample(pid) {
                    seen.set(seen.get().max(s.rss_bytes));
                }
                tokio::time::sleep(PEAK_SAMPLE_INTERVAL).await;
            }
        });
        Self { peak, task }
    }

    /// The peak so far, in MiB (with one last look now).
    pub fn mib(&self, pid: u32) -> f64 {
        if let Ok(s) = sample(pid) {
            self.peak.set(self.peak.get().max(s.rss_bytes));
        }
        self.peak.get() as f64 / 1048576.0
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// RSS of a process in MiB, 0 when it cannot be read.
pub fn rss_mib(pid: u32) -> f64 {
    sample(pid).map_or(0.0, |s| s.rss_bytes as f64 / 1048576.0)
}

/// The `n` mappings of a process holding the most resident memory, as
/// `(KiB, "range name")`, from `/proc/PID/smaps`: where memory went.
pub fn top_mappings(pid: u32, n: usize) -> Vec<(u64, String)> {
    let Ok(smaps) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut current = String::new();
    for line in smaps.lines() {
        if let Some(kib) = line.strip_prefix("Rss:") {
            let kib = kib
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
            found.push((kib, current.clone()));
        } else if line
            .split_whitespace()
            .next()
            .is_some_and(|w| w.contains('-') && !w.ends_with(':'))
        {
            let mut words = line.split_whitespace();
            let range = words.next().unwrap_or("");
            let name = words.nth(4).unwrap_or("[anon]");
            current = format!("{range} {name}");
        }
    }
    found.sort_by_key(|m| std::cmp::Reverse(m.0));
    found.truncate(n);
    found
}

/// The machine's load averages (1, 5 and 15 minutes) as `/proc/loadavg` gives them,
/// e.g. `"0.42 0.37 0.30"`: how much else ran beside a measurement.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
