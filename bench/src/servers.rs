//! Starting and stopping the servers under test, each a child process (optionally
//! pinned to a core with `taskset`), and daehwa's configuration file.
//!
//! Every server prints a line containing `listening addr=HOST:PORT` to stderr once it
//! accepts connections; that line is how the bench learns the port (all bind port 0).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::wire::Protocol;

/// How long a server may take to report that it listens (a daehwa with a million
/// stored messages included).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a SIGTERM may take before the bench kills the server.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the programs are and how to pin them.
#[derive(Debug, Clone, clap::Args)]
pub struct Programs {
    /// The daehwa executable.
    #[arg(long, default_value = "target/release/daehwa")]
    pub server_bin: PathBuf,
    /// The socket.io baseline's script (its node_modules installed beside it).
    #[arg(long, default_value = "bench/socketio/server.js")]
    pub socketio_script: PathBuf,
    /// Core to pin every server to with `taskset -c` (none: not pinned).
    #[arg(long)]
    pub server_cpu: Option<String>,
    /// Directory for data directories and config files.
    #[arg(long, default_value = "target/bench-work")]
    pub work_dir: PathBuf,
    /// Extra keys of daehwa's configuration file, `section.key=value` (the value in
    /// TOML, e.g. `storage.cache_mib=64`); repeatable.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub daehwa_keys: Vec<String>,
}

/// One stderr line and when it was read.
pub type Line = (Instant, String);

/// A running server.
pub struct Server {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    /// When the process was started and when it reported that it listens.
    pub spawned_at: Instant,
    pub ready_at: Instant,
    /// Its stderr so far, read by a thread.
    pub lines: Arc<Mutex<Vec<Line>>>,
}

/// Values of daehwa's configuration file that the benches change.
#[derive(Debug, Clone)]
pub struct DaehwaConfig {
    pub flush_interval: String,
    /// `storage.durability`; optional because older servers do not know the key.
    pub durability: Option<String>,
}

impl Default for DaehwaConfig {
    fn default() -> Self {
        Self {
            flush_interval: "1s".into(),
            durability: None,
        }
    }
}

/// Keys the bench sets only when the server knows them: `(section, key, value)`.
/// Limits generous enough that the load generator is never throttled; a server that
/// does not have a key yet (exit code 2, naming it) is started again without it.
const OPTIONAL_KEYS: &[(&str, &str, &str)] = &[
    ("limits", "messages_per_second", "1e9"),
    ("limits", "message_burst", "1000000000"),
    ("limits", "connections_per_user", "1000000"),
    ("limits", "login_attempts_per_minute", "1000000"),
    ("limits", "address_login_attempts_per_minute", "1000000"),
    ("limits", "registrations_per_hour", "1000000"),
    ("limits", "rooms_per_hour", "1000000"),
    // The idle scenario holds 10 000 connections and more.
    ("server", "max_connections", "1000000"),
];

impl DaehwaConfig {
    fn render(&self, optional: &[(&str, &str, String)]) -> String {
        let mut sections: Vec<(&str, Vec<String>)> = vec![
            (
                "storage",
                vec![format!("flush_interval = {:?}", self.flush_interval)],
            ),
            (
                "limits",
                vec![
                    // The load generator reads as fast as it can, but a burst must not
                    // close it as a slow consumer.
                    "ws_send_queue = 65536".into(),
                    "history_page_max = 100".into(),
                ],
            ),
            ("auth", vec!["open_registration = true".into()]),
            ("log", vec!["format = \"pretty\"".into()]),
        ];
        if let Some(durability) = &self.durability {
            sections[0].1.push(format!("durability = {durability:?}"));
        }
        for (section, key, value) in optional {
            match sections.iter_mut().find(|(s, _)| s == section) {
                Some((_, lines)) => lines.push(format!("{key} = {value}")),
                None => sections.push((section, vec![format!("{key} = {value}")])),
            }
        }
        let mut text = String::from("# Written by daehwa-bench.\n");
        for (section, lines) in sections {
            text.push_str(&format!("\n[{section}]\n"));
            for line in lines {
                text.push_str(&line);
                text.push('\n');
            }
        }
        text
    }
}

fn pinned(programs: &Programs, program: &Path) -> Command {
    match &programs.server_cpu {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(cpu).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// A fresh, empty directory under the work dir.
pub fn fresh_dir(programs: &Programs, name: &str) -> std::io::Result<PathBuf> {
    let dir = programs.work_dir.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Why a server did not start.
#[derive(Debug)]
pub struct StartError {
    pub message: String,
    /// The configuration key it named, when it refused the config (exit code 2).
    pub config_key: Option<String>,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StartError {}

impl Server {
    fn start(mut command: Command) -> Result<Self, StartError> {
        let fail = |message: String| StartError {
            message,
            config_key: None,
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let spawned_at = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| fail(format!("cannot start {command:?}: {e}")))?;
        let pid = child.id();
        let lines: Arc<Mutex<Vec<Line>>> = Arc::default();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| fail("no stderr".into()))?;
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                let mut ready_tx = Some(ready_tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let now = Instant::now();
                    if let Some(addr) = listening_addr(&line) {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send((now, addr));
                        }
                    }
                    lines
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((now, line));
                }
            });
        }
        let deadline = spawned_at + READY_TIMEOUT;
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(20)) {
                Ok((ready_at, addr)) => {
                    return Ok(Self {
                        child,
                        pid,
                        addr,
                        spawned_at,
                        ready_at,
                        lines,
                    })
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Let the reader thread catch the last lines.
                std::thread::sleep(Duration::from_millis(50));
                let text = lines
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .map(|(_, l)| l.as_str())
                    .collect::<Vec<_>>()
                    .join("\n");
                let config_key = (status.code() == Some(2))
                    .then(|| {
                        text.split('`')
                            .nth(1)
                            .map(str::to_owned)
                            .or_else(|| unknown_field(&text))
                    })
                    .flatten();
                return Err(StartError {
                    message: format!("server exited with {status} before listening:\n{text}"),
                    config_key,
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail("server did not report listening in time".into()));
            }
        }
    }

    /// Starts daehwa with a config file written for the bench. Keys the server does
    /// not know are dropped (see [`OPTIONAL_KEYS`]); a `durability` it refuses is an
    /// error naming `durability`, so that the caller can skip with a note.
    pub fn daehwa(
        programs: &Programs,
        data_dir: &Path,
        config: &DaehwaConfig,
        rust_log: &str,
        bind: Option<SocketAddr>,
    ) -> Result<Self, StartError> {
        let bind = bind.map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
        let mut optional: Vec<(&str, &str, String)> = OPTIONAL_KEYS
            .iter()
            .map(|(s, k, v)| (*s, *k, (*v).to_owned()))
            .collect();
        // Keys asked for on the command line are not optional: a server that does
        // not know one refuses to start, and the bench says so.
        let mut asked = Vec::new();
        for set in &programs.daehwa_keys {
            let parsed = set
                .split_once('=')
                .and_then(|(key, value)| Some((key.split_once('.')?, value)));
            let Some(((section, key), value)) = parsed else {
                return Err(StartError {
                    message: format!("--set {set}: expected SECTION.KEY=VALUE"),
                    config_key: None,
                });
            };
            asked.push((section, key, value.to_owned()));
        }
        let config_path = data_dir.with_extension("toml");
        loop {
            let keys: Vec<_> = optional.iter().chain(&asked).cloned().collect();
            std::fs::write(&config_path, config.render(&keys)).map_err(|e| StartError {
                message: format!("cannot write {}: {e}", config_path.display()),
                config_key: None,
            })?;
            let mut command = pinned(programs, &programs.server_bin);
            command
                .arg("serve")
                .arg("--bind")
                .arg(&bind)
                .arg("--data-dir")
                .arg(data_dir)
                .arg("--config")
                .arg(&config_path)
                .env(
                    "RUST_LOG",
                    std::env::var(LOG_ENV).unwrap_or_else(|_| rust_log.to_owned()),
                );
            match Self::start(command) {
                Ok(server) => return Ok(server),
                Err(e) => {
                    let Some(key) = &e.config_key else {
                        return Err(e);
                    };
                    let before = optional.len();
                    optional.retain(|(section, k, _)| {
                        *k != key.as_str() && format!("{section}.{k}") != *key
                    });
                    if optional.len() == before {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Starts the ceiling: this executable's `ceiling` subcommand.
    pub fn ceiling(programs: &Programs) -> Result<Self, StartError> {
        let exe = std::env::current_exe().map_err(|e| StartError {
            message: format!("cannot find this executable: {e}"),
            config_key: None,
        })?;
        let mut command = pinned(programs, &exe);
        command.arg("ceiling").arg("--bind").arg("127.0.0.1:0");
        Self::start(command)
    }

    /// Starts the socket.io baseline under node.
    pub fn socketio(programs: &Programs) -> Result<Self, StartError> {
        let mut command = pinned(programs, Path::new("node"));
        command
            .arg(&programs.socketio_script)
            .arg("--port")
            .arg("0");
        Self::start(command)
    }

    /// Starts the server of a protocol with a default configuration.
    pub fn of(programs: &Programs, protocol: Protocol, name: &str) -> Result<Self, StartError> {
        match protocol {
            Protocol::Daehwa | Protocol::DaehwaSio => {
                let dir = fresh_dir(programs, name).map_err(|e| StartError {
                    message: format!("cannot make a data dir: {e}"),
                    config_key: None,
                })?;
                Self::daehwa(programs, &dir, &DaehwaConfig::default(), DEFAULT_LOG, None)
            }
            Protocol::Ceiling => Self::ceiling(programs),
            Protocol::Socketio => Self::socketio(programs),
        }
    }

    /// Pins every thread of the server to `cpu` (`taskset -c` syntax), or lets it run
    /// anywhere (`None`); threads it starts later inherit their starter's.
    pub fn pin(&self, cpu: Option<&str>) -> Result<(), StartError> {
        let all = format!(
            "0-{}",
            std::thread::available_parallelism().map_or(0, |n| n.get() - 1)
        );
        let status = Command::new("taskset")
            .args(["-a", "-p", "-c", cpu.unwrap_or(&all)])
            .arg(self.pid.to_string())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| StartError {
                message: format!("cannot run taskset: {e}"),
                config_key: None,
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(StartError {
                message: format!("taskset -a -p failed: {status}"),
                config_key: None,
            })
        }
    }

    /// Sends SIGTERM and waits for the exit; kills after [`STOP_TIMEOUT`].
    /// Returns the exit status and how long the shutdown took.
    pub fn stop(mut self) -> (Option<ExitStatus>, Duration) {
        let started = Instant::now();
        // SAFETY: kill(2) with a pid we spawned and have not reaped.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (Some(status), started.elapsed());
            }
            if started.elapsed() > STOP_TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return (None, started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// stderr lines so far.
    pub fn log(&self) -> Vec<Line> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A server is never left running, even when a scenario fails.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(path) = std::env::var_os(LOG_FILE_ENV) {
            use std::io::Write;
            let text: String = self
                .log()
                .into_iter()
                .map(|(_, line)| line + "\n")
                .collect();
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut file| file.write_all(text.as_bytes()));
            if let Err(e) = written {
                eprintln!(
                    "cannot write the server's log to {}: {e}",
                    path.to_string_lossy()
                );
            }
        }
    }
}

/// With this environment variable set, its value is every daehwa's `RUST_LOG` (to see
/// the flushes in a run's log, say).
const LOG_ENV: &str = "DAEHWA_BENCH_RUST_LOG";
/// With this environment variable naming a file, every server's stderr is appended
/// there when it ends.
const LOG_FILE_ENV: &str = "DAEHWA_BENCH_SERVER_LOG";

/// daehwa's log level for the benches: its start-up line, no per-request noise.
pub const DEFAULT_LOG: &str = "warn,daehwa=info";

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let start = line.find("listening addr=")? + "listening addr=".len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '\u{1b}')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn unknown_field(text: &str) -> Option<String> {
    let start = text.find("unknown field `")? + "unknown field `".len();
    let rest = &text[start..];
    Some(rest[..rest.find('`')?].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address() {
        assert_eq!(
            listening_addr(
                "2026-01-01T00:00:00Z  INFO daehwa::server: listening addr=127.0.0.1:4242"
            ),
            Some("127.0.0.1:4242".parse().unwrap())
        );
        assert_eq!(
            listening_addr("listening addr=127.0.0.1:1 more"),
            Some("127.0.0.1:1".parse().unwrap())
        );
        assert_eq!(listening_addr("nothing"), None);
    }

    #[test]
    fn renders_optional_keys() {
        let config = DaehwaConfig {
            flush_interval: "500ms".into(),
            durability: Some("sync".into()),
        };
        let text = config.render(&[("limits", "x", "1".into()), ("other", "y", "2".into())]);
        assert!(text.contains("[storage]\nflush_interval = \"500ms\"\ndurability = \"sync\"\n"));
        assert!(text.contains("x = 1\n"));
        assert!(text.contains("[other]\ny = 2\n"));
    }
}
