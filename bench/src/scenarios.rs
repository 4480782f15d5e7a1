//! The scenarios, one per subcommand. Each starts its servers, drives them with
//! [`crate::load`], and appends one JSON record per measurement to the results file
//! (`--out`), which `report` turns into BENCHMARKS.md and charts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::api::{Api, BoxError};
use crate::load::{self, Client, Latency, Load, Pace, Sender};
use crate::procfs;
use crate::servers::{self, DaehwaConfig, Programs, Server};
use crate::wire::Protocol;

/// p99 above which a load counts as past the knee.
pub const KNEE_P99_MS: f64 = 50.0;

/// Options every load scenario shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    #[command(flatten)]
    pub programs: Programs,
    /// JSON-lines file the records are appended to.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Bytes of content per message.
    #[arg(long, default_value_t = 100)]
    pub content_bytes: usize,
    /// Seconds of sending per measurement, warm-up included.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Seconds of warm-up (delivered and checked, not timed).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Marks the records as repeats of measurements already made: the report uses
    /// them only for the medians in the targets and in the repeats table.
    #[arg(long)]
    pub repeat: bool,
}

/// Appends a record to the results file and prints it.
pub fn record(common: &Common, mut value: Value) {
    if common.repeat {
        value["repeat"] = Value::Bool(true);
    }
    let line = value.to_string();
    println!("{line}");
    if let Some(out) = &common.out {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            eprintln!("cannot append to {}: {e}", out.display());
        }
    }
}

/// Where a client of daehwa connects: `/ws`, or `/socket.io/` with the token in the
/// query (socket.io's fallback to `auth`).
fn daehwa_url(protocol: Protocol, addr: SocketAddr, token: &str) -> String {
    match protocol {
        Protocol::DaehwaSio => {
            format!("ws://{addr}/socket.io/?EIO=4&transport=websocket&token={token}")
        }
        _ => format!("ws://{addr}/ws?token={token}"),
    }
}

/// Clients and senders of a load, with rooms set up on the server.
struct World {
    clients: Vec<Client>,
    senders: Vec<Sender>,
}

/// Users registered for `rooms` rooms of `members` connections each. With one room a
/// few users hold many connections each (a user's connections all get the user's
/// rooms, which is the same set here); with several rooms every member is a user of
/// its own, so that a connection gets only its room.
async fn build_world(
    protocol: Protocol,
    addr: SocketAddr,
    rooms: usize,
    members: usize,
) -> Result<World, BoxError> {
    let mut clients = Vec::with_capacity(rooms * members);
    match protocol {
        Protocol::Daehwa | Protocol::DaehwaSio => {
            let api = Api::new(addr);
            let users = if rooms == 1 { members.min(10) } else { members };
            for r in 0..rooms {
                let sessions = api.register_many(&format!("r{r}u"), users).await?;
                let room = api
                    .create_room(&sessions[0].token, &format!("room{r}"))
                    .await?;
                for session in &sessions[1..] {
                    api.join(&session.token, room).await?;
                }
                for m in 0..members {
                    clients.push(Client {
                        url: daehwa_url(protocol, addr, &sessions[m % users].token),
                        rooms: vec![room],
                    });
                }
            }
        }
        Protocol::Ceiling => {
            for r in 1..=rooms as u64 {
                for _ in 0..members {
                    clients.push(Client {
                        url: format!("ws://{addr}/ws?rooms={r}"),
                        rooms: vec![r],
                    });
                }
            }
        }
        Protocol::Socketio => {
            for r in 1..=rooms as u64 {
                for m in 0..members {
                    clients.push(Client {
                        url: format!(
                            "ws://{addr}/socket.io/?EIO=4&transport=websocket&user=r{r}u{m}"
                        ),
                        rooms: vec![r],
                    });
                }
            }
        }
    }
    let senders = clients
        .iter()
        .enumerate()
        .map(|(client, c)| Sender {
            client,
            room: c.rooms[0],
        })
        .collect();
    Ok(World { clients, senders })
}

fn outcome_ok(outcome: &load::Outcome) -> bool {
    outcome.exactly_once_in_order
        && outcome.error_events == 0
        && outcome.latency.p99_ms < KNEE_P99_MS
        && outcome.delivered_per_s >= 0.9 * outcome.offered_deliveries_per_s
}

/// Fan-out and many-rooms: `rooms` rooms of `members`, everyone sending, at each
/// offered rate of deliveries per second. With `knee`, stops after the first rate
/// that misses (p99 ≥ 50 ms, a loss, or under 90% delivered).
#[allow(clippy::too_many_arguments)]
pub async fn rooms_at_rates(
    common: &Common,
    scenario: &str,
    protocol: Protocol,
    rooms: usize,
    members: usize,
    rates: &[f64],
    knee: bool,
) -> Result<(), BoxError> {
    let server = Server::of(
        &common.programs,
        protocol,
        &format!("{scenario}-{}", protocol.name()),
    )?;
    let setup_started = Instant::now();
    let world = build_world(protocol, server.addr, rooms, members).await?;
    eprintln!(
        "{scenario} {}: {rooms}×{members} set up in {:.1}s",
        protocol.name(),
        setup_started.elapsed().as_secs_f64()
    );
    for &deliveries_per_s in rates {
        let connections = load::connect_all(protocol, server.addr, &world.clients).await?;
        let load = Load {
            protocol,
            clients: world.clients.clone(),
            senders: world.senders.clone(),
            pace: Pace::Open {
                msgs_per_s: deliveries_per_s / members as f64,
            },
            duration: Duration::from_secs_f64(common.seconds),
            warmup: Duration::from_secs_f64(common.warmup),
            max_messages: None,
            content_bytes: common.content_bytes,
            drain_timeout: Duration::from_secs(20),
            server_pid: Some(server.pid),
        };
        let outcome = load::run(&load, connections).await;
        let ok = outcome_ok(&outcome);
        if !outcome.exactly_once_in_order {
            print_log_tail(&server);
        }
        record(
            common,
            json!({
                "scenario": scenario,
                "target": protocol.name(),
                "rooms": rooms,
                "members": members,
                "ok": ok,
                "outcome": outcome,
            }),
        );
        // Let the server settle (close the connections, drop queues) before the next.
        tokio::time::sleep(Duration::from_secs(1)).await;
        if knee && !ok {
            break;
        }
    }
    server.stop();
    Ok(())
}

/// Shows the end of a server's log, to explain a failed run.
fn print_log_tail(server: &Server) {
    let log = server.log();
    for (_, line) in &log[log.len().saturating_sub(10)..] {
        eprintln!("  server: {line}");
    }
}

/// Idle connections: server memory per open, greeted, idle connection.
pub async fn idle(common: &Common, protocol: Protocol, connections: usize) -> Result<(), BoxError> {
    let server = Server::of(
        &common.programs,
        protocol,
        &format!("idle-{}", protocol.name()),
    )?;
    let clients: Vec<Client> = match protocol {
        Protocol::Daehwa | Protocol::DaehwaSio => {
            let api = Api::new(server.addr);
            let sessions = api.register_many("idle", 10).await?;
            (0..connections)
                .map(|i| Client {
                    url: daehwa_url(protocol, server.addr, &sessions[i % 10].token),
                    rooms: vec![],
                })
                .collect()
        }
        Protocol::Ceiling => (0..connections)
            .map(|_| Client {
                url: format!("ws://{}/ws", server.addr),
                rooms: vec![],
            })
            .collect(),
        Protocol::Socketio => (0..connections)
            .map(|i| Client {
                url: format!(
                    "ws://{}/socket.io/?EIO=4&transport=websocket&user=idle{i}",
                    server.addr
                ),
                rooms: vec![],
            })
            .collect(),
    };
    // One connection first, so that one-time costs (buffers, code paths) are paid.
    let first = load::connect_all(protocol, server.addr, &clients[..1]).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = procfs::sample(server.pid)?;
    let self_before = procfs::sample_self();
    let started = Instant::now();
    let open = load::connect_all(protocol, server.addr, &clients[1..]).await?;
    let connect_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = procfs::sample(server.pid)?;
    let self_after = procfs::sample_self();
    let n = open.len() as f64;
    let per_connection = (after.rss_bytes as f64 - before.rss_bytes as f64) / n;
    let loadgen_per_connection = (self_after.rss_bytes as f64 - self_before.rss_bytes as f64) / n;
    record(
        common,
        json!({
            "scenario": "idle",
            "target": protocol.name(),
            "connections": open.len() + first.len(),
            "connect_s": connect_s,
            "server_rss_before_mib": before.rss_bytes as f64 / 1048576.0,
            "server_rss_after_mib": after.rss_bytes as f64 / 1048576.0,
            "server_bytes_per_connection": per_connection,
            "loadgen_bytes_per_connection": loadgen_per_connection,
        }),
    );
    drop(open);
    drop(first);
    server.stop();
    Ok(())
}

/// Memory: RSS of a fresh server, after a burst of `users` registrations at once,
/// with one idle connection per user, and after a burst of as many logins. Each
/// burst is argon2 hashing at the server's own concurrency; what matters is that
/// its 19 MiB blocks are given back.
///
/// With `paced`, the users register a few at a time instead: what the accounts
/// themselves take, to compare with what a burst leaves.
pub async fn memory(common: &Common, users: usize, paced: bool) -> Result<(), BoxError> {
    let server = Server::of(&common.programs, Protocol::Daehwa, "memory-daehwa")?;
    let pid = server.pid;
    // Each burst has its own HTTP client, dropped after it: its keep-alive
    // connections close, and what stays is what the burst left in the server.
    let api = || Api::new(server.addr);
    // A settled look: RSS after a pause, so that allocator decay (if any) has run.
    let settled = || async move {
        tokio::time::sleep(MEMORY_SETTLE).await;
        for (kib, mapping) in procfs::top_mappings(pid, 4) {
            eprintln!("memory: {kib:>8} KiB {mapping}");
        }
        procfs::rss_mib(pid)
    };
    let fresh = settled().await;

    let peak = procfs::PeakRss::watch(pid);
    let started = Instant::now();
    let sessions = if paced {
        api().register_many("m", users).await?
    } else {
        api().register_burst("m", users).await?
    };
    let register_s = started.elapsed().as_secs_f64();
    let register_peak = peak.mib(pid);
    drop(peak);
    let registered = settled().await;

    let clients: Vec<Client> = sessions
        .iter()
        .map(|s| Client {
            url: format!("ws://{}/ws?token={}", server.addr, s.token),
            rooms: vec![],
        })
        .collect();
    let open = load::connect_all(Protocol::Daehwa, server.addr, &clients).await?;
    let connected = settled().await;

    let peak = procfs::PeakRss::watch(pid);
    let started = Instant::now();
    api().login_burst("m", users).await?;
    let login_s = started.elapsed().as_secs_f64();
    let login_peak = peak.mib(pid);
    drop(peak);
    let logged_in = settled().await;
    drop(open);
    let (status, _) = server.stop();
    record(
        common,
        json!({
            "scenario": "memory",
            "target": "daehwa",
            "users": users,
            "registration": if paced { "paced" } else { "burst" },
            "connections": clients.len(),
            "rss_fresh_mib": fresh,
            "register_burst_s": register_s,
            "rss_register_peak_mib": register_peak,
            "rss_registered_mib": registered,
            "rss_connected_mib": connected,
            "login_burst_s": login_s,
            "rss_login_peak_mib": login_peak,
            "rss_logged_in_mib": logged_in,
            "register_growth_mib": registered - fresh,
            "login_growth_mib": logged_in - connected,
            "exit_ok": status.is_some_and(|s| s.success()),
        }),
    );
    Ok(())
}

/// How long `memory` waits before each look at RSS.
const MEMORY_SETTLE: Duration = Duration::from_secs(2);

fn latency_of(samples: &[Duration]) -> Latency {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for sample in samples {
        let _ = hist.record((sample.as_micros() as u64).max(1));
    }
    Latency::of(&hist)
}

/// Times `count` history requests; `before` picks each request's msgID.
async fn time_pages(
    api: &Api,
    token: &str,
    room: u64,
    count: usize,
    mut before: impl FnMut(usize) -> i64,
) -> Result<Vec<Duration>, BoxError> {
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let msg_id = before(i);
        let started = Instant::now();
        let page = api.history(token, room, msg_id, 50).await?;
        samples.push(started.elapsed());
        let expected = if msg_id < 0 {
            50
        } else {
            (msg_id as usize - 1).min(50)
        };
        if page.len() != expected {
            return Err(format!(
                "history before {msg_id}: {} messages, not {expected}",
                page.len()
            )
            .into());
        }
    }
    Ok(samples)
}

/// A small deterministic generator for the random msgIDs (xorshift64*).
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// History: seeds a room with `messages` messages over WebSocket, restarts the server
/// and times pages of 50, cold (the first requests after the restart) and warm.
pub async fn history(
    common: &Common,
    messages: u64,
    requests: usize,
    data_dir: &Path,
) -> Result<(), BoxError> {
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir)?;
    }
    std::fs::create_dir_all(data_dir)?;
    let config = DaehwaConfig::default();
    let server = Server::daehwa(
        &common.programs,
        data_dir,
        &config,
        servers::DEFAULT_LOG,
        None,
    )?;
    let api = Api::new(server.addr);
    let session = api.register("history").await?;
    let room = api.create_room(&session.token, "history").await?;
    let clients = vec![Client {
        url: format!("ws://{}/ws?token={}", server.addr, session.token),
        rooms: vec![room],
    }];
    let connections = load::connect_all(Protocol::Daehwa, server.addr, &clients).await?;
    let seed = Load {
        protocol: Protocol::Daehwa,
        clients: clients.clone(),
        senders: vec![Sender { client: 0, room }],
        pace: Pace::Closed { window: 1000 },
        duration: Duration::from_secs(600),
        warmup: Duration::ZERO,
        max_messages: Some(messages),
        content_bytes: common.content_bytes,
        drain_timeout: Duration::from_secs(60),
        server_pid: Some(server.pid),
    };
    let seeded = load::run(&seed, connections).await;
    if !seeded.exactly_once_in_order {
        return Err(format!("seeding lost messages: {seeded:?}").into());
    }
    let (status, shutdown) = server.stop();
    note_messages(data_dir, seeded.sent);
    eprintln!(
        "history: seeded {} messages at {:.0}/s; shutdown (final flush) {:.2}s, {status:?}",
        seeded.sent,
        seeded.msgs_per_s,
        shutdown.as_secs_f64()
    );

    let server = Server::daehwa(
        &common.programs,
        data_dir,
        &config,
        servers::DEFAULT_LOG,
        None,
    )?;
    let restart_s = (server.ready_at - server.spawned_at).as_secs_f64();
    let api = Api::new(server.addr);
    let newest = messages as i64 + 1;
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut pick = move |_| 51 + random.below(messages - 50) as i64;
    let first = time_pages(&api, &session.token, room, 1, |_| -1).await?;
    let cold_random = time_pages(&api, &session.token, room, requests, &mut pick).await?;
    // Warm: a pass to fill the caches, then the measured passes.
    time_pages(&api, &session.token, room, requests, &mut pick).await?;
    let warm_newest = time_pages(&api, &session.token, room, requests, |_| -1).await?;
    let warm_before_newest = time_pages(&api, &session.token, room, requests, |_| newest).await?;
    let warm_random = time_pages(&api, &session.token, room, requests, &mut pick).await?;
    let rss = procfs::sample(server.pid)?.rss_bytes as f64 / 1048576.0;
    server.stop();
    record(
        common,
        json!({
            "scenario": "history",
            "target": "daehwa",
            "messages": messages,
            "seed_msgs_per_s": seeded.msgs_per_s,
            "seed_shutdown_s": shutdown.as_secs_f64(),
            "restart_s": restart_s,
            "cold_first_newest_ms": first[0].as_secs_f64() * 1000.0,
            "cold_random": latency_of(&cold_random),
            "warm_newest": latency_of(&warm_newest),
            "warm_before_newest": latency_of(&warm_before_newest),
            "warm_random": latency_of(&warm_random),
            "server_rss_mib": rss,
        }),
    );
    Ok(())
}

fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Polls `addr` until an HTTP request gets an answer.
fn wait_for_http(addr: SocketAddr, deadline: Instant) -> Option<Instant> {
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request = "GET /api/users/me HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
            let mut reply = [0u8; 12];
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_exact(&mut reply).is_ok()
                && reply.starts_with(b"HTTP/1.1")
            {
                return Some(Instant::now());
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// Start-up: exec to the first answered HTTP request, `runs` times, on a data dir
/// (seeded by `history`) and on an empty one for comparison.
pub fn startup(common: &Common, data_dir: &Path, runs: usize) -> Result<(), BoxError> {
    let empty = servers::fresh_dir(&common.programs, "startup-empty")?;
    for (label, dir) in [("seeded", data_dir.to_owned()), ("empty", empty)] {
        let mut to_listening = Vec::new();
        let mut to_http = Vec::new();
        for _ in 0..runs {
            let addr = free_port()?;
            let spawned = Instant::now();
            let server = Server::daehwa(
                &common.programs,
                &dir,
                &DaehwaConfig::default(),
                servers::DEFAULT_LOG,
                Some(addr),
            )?;
            let answered = wait_for_http(addr, spawned + Duration::from_secs(60))
                .ok_or("the server never answered")?;
            to_listening.push(server.ready_at - server.spawned_at);
            to_http.push(answered - spawned);
            server.stop();
        }
        to_http.sort();
        to_listening.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        record(
            common,
            json!({
                "scenario": "startup",
                "target": "daehwa",
                "data": label,
                "runs": runs,
                "messages_stored": if label == "seeded" { dir_messages(&dir) } else { Value::from(0) },
                "exec_to_http_median_ms": ms(to_http[runs / 2]),
                "exec_to_http_max_ms": ms(to_http[runs - 1]),
                "exec_to_listening_median_ms": ms(to_listening[runs / 2]),
            }),
        );
    }
    Ok(())
}

/// The message count `history` seeded into `dir`, when it left a note.
fn dir_messages(dir: &Path) -> Value {
    std::fs::read_to_string(dir.with_extension("messages"))
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map_or(Value::Null, Value::from)
}

/// Writes the note `startup` reads.
pub fn note_messages(dir: &Path, messages: u64) {
    let _ = std::fs::write(dir.with_extension("messages"), messages.to_string());
}

/// Sums the `buffer flushed changes=N micros=M` lines of daehwa's log from `since`
/// on: (messages, total flush time, time of the last flush line, flushes).
fn flushed(server: &Server, since: Instant) -> (u64, Duration, Option<Instant>, u64) {
    let field = |line: &str, name: &str| -> Option<u64> {
        let start = line.find(name)? + name.len();
        let digits: String = line[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let mut messages = 0;
    let mut micros = 0;
    let mut last = None;
    let mut flushes = 0;
    for (at, line) in server.log() {
        if at < since || !line.contains("buffer flushed") {
            continue;
        }
        // `changes=` since the log of changes (every new message is one change);
        // `messages=` before it.
        messages += field(&line, "changes=")
            .or_else(|| field(&line, "messages="))
            .unwrap_or(0);
        micros += field(&line, "micros=").unwrap_or(0);
        last = Some(at);
        flushes += 1;
    }
    (messages, Duration::from_micros(micros), last, flushes)
}

/// The raw sled reference, run as a child (pinned like a server).
fn raw_sled(programs: &Programs) -> Result<Value, BoxError> {
    let dir = servers::fresh_dir(programs, "sled-raw")?;
    let exe = std::env::current_exe()?;
    let mut command = match &programs.server_cpu {
        Some(cpu) => {
            let mut c = std::process::Command::new("taskset");
            c.arg("-c").arg(cpu).arg(exe);
            c
        }
        None => std::process::Command::new(exe),
    };
    let output = command.arg("sled-raw").arg("--dir").arg(&dir).output()?;
    if !output.status.success() {
        return Err(format!(
            "sled-raw failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Persistence: messages per second through the write-behind buffer into sled, for
/// each flush interval and in sync mode, beside raw sled. Each mode sends `messages`
/// (or for `--seconds`, whichever ends first), so that every mode stores the same
/// amount.
pub async fn persistence(
    common: &Common,
    intervals: &[String],
    connections: usize,
    window: usize,
    messages: u64,
    sync_only: bool,
) -> Result<(), BoxError> {
    if !sync_only {
        let reference = raw_sled(&common.programs)?;
        record(
            common,
            json!({ "scenario": "persistence", "target": "sled-raw", "reference": reference }),
        );
    }
    let intervals = if sync_only { &[][..] } else { intervals };
    let mut modes: Vec<DaehwaConfig> = intervals
        .iter()
        .map(|interval| DaehwaConfig {
            flush_interval: interval.clone(),
            durability: None,
        })
        .collect();
    modes.push(DaehwaConfig {
        flush_interval: "1s".into(),
        durability: Some("sync".into()),
    });
    for config in modes {
        let label = match &config.durability {
            Some(d) => d.clone(),
            None => format!("flush {}", config.flush_interval),
        };
        let dir = servers::fresh_dir(&common.programs, "persistence")?;
        let server = match Server::daehwa(
            &common.programs,
            &dir,
            &config,
            "warn,daehwa=info,daehwa::jobs=debug,daehwa::store=debug",
            None,
        ) {
            Ok(server) => server,
            Err(e)
                if e.config_key
                    .as_deref()
                    .is_some_and(|k| k.contains("durability")) =>
            {
                record(
                    common,
                    json!({
                        "scenario": "persistence",
                        "target": "daehwa",
                        "mode": label,
                        "skipped": format!("the server refuses storage.durability: {}", e.message.lines().last().unwrap_or("")),
                    }),
                );
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let api = Api::new(server.addr);
        let sessions = api.register_many("p", connections).await?;
        let mut clients = Vec::new();
        for (i, session) in sessions.iter().enumerate() {
            let room = api.create_room(&session.token, &format!("p{i}")).await?;
            clients.push(Client {
                url: format!("ws://{}/ws?token={}", server.addr, session.token),
                rooms: vec![room],
            });
        }
        let senders = clients
            .iter()
            .enumerate()
            .map(|(client, c)| Sender {
                client,
                room: c.rooms[0],
            })
            .collect();
        let open = load::connect_all(Protocol::Daehwa, server.addr, &clients).await?;
        let load = Load {
            protocol: Protocol::Daehwa,
            clients,
            senders,
            pace: Pace::Closed { window },
            duration: Duration::from_secs_f64(common.seconds),
            warmup: Duration::from_secs_f64(common.warmup),
            max_messages: Some(messages),
            content_bytes: common.content_bytes,
            drain_timeout: Duration::from_secs(30),
            server_pid: Some(server.pid),
        };
        let started = Instant::now();
        let outcome = load::run(&load, open).await;
        let sync = config.durability.is_some();
        // Wait until the log says every message is on disk, or until the periodic
        // flush has made no progress for two intervals; then the final flush at
        // shutdown stores the rest, and its end counts as the time of persistence.
        let interval =
            crate::parse_interval(&config.flush_interval).unwrap_or(Duration::from_secs(1));
        let patience = interval * 2 + Duration::from_secs(1);
        let (mut on_disk, mut flush_time, mut last_flush, mut flushes) = flushed(&server, started);
        let mut progress = (on_disk, Instant::now());
        while !sync && on_disk < outcome.sent && progress.1.elapsed() < patience {
            tokio::time::sleep(Duration::from_millis(20)).await;
            (on_disk, flush_time, last_flush, flushes) = flushed(&server, started);
            if on_disk != progress.0 {
                progress = (on_disk, Instant::now());
            }
        }
        let stalled = !sync && on_disk < outcome.sent;
        if stalled {
            eprintln!(
                "persistence {label}: the periodic flush stored {on_disk} of {} messages and then stopped; the final flush stores the rest",
                outcome.sent
            );
        }
        let flush_path = if flush_time.is_zero() {
            0.0
        } else {
            on_disk as f64 / flush_time.as_secs_f64()
        };
        let (status, shutdown) = server.stop();
        let persisted_at = match last_flush {
            Some(at) if !stalled => at,
            _ => Instant::now(),
        };
        let end_to_end = if sync {
            outcome.msgs_per_s
        } else {
            outcome.sent as f64 / (persisted_at - started).as_secs_f64()
        };
        let left_for_shutdown = outcome.sent.saturating_sub(on_disk);
        record(
            common,
            json!({
                "scenario": "persistence",
                "target": "daehwa",
                "mode": label,
                "window": window,
                "messages_per_mode": messages,
                "accepted_msgs_per_s": outcome.msgs_per_s,
                "persisted_end_to_end_msgs_per_s": end_to_end,
                "flushed_messages": on_disk,
                "flushes": flushes,
                "flush_path_msgs_per_s": flush_path,
                "periodic_flush_stalled": stalled,
                "final_flush_messages": left_for_shutdown,
                "final_flush_msgs_per_s": if sync { 0.0 } else { left_for_shutdown as f64 / shutdown.as_secs_f64() },
                "shutdown_s": shutdown.as_secs_f64(),
                "exit_ok": status.is_some_and(|s| s.success()),
                "outcome": outcome,
            }),
        );
    }
    Ok(())
}

/// The raw sled figures: `apply_batch` of 1 000 values of 150 bytes with a `flush()`
/// after each batch, and one `insert` + `flush()` per message.
pub fn sled_raw(
    dir: &Path,
    batches: u64,
    batch_len: u64,
    singles_seconds: f64,
) -> Result<Value, BoxError> {
    let db = sled::open(dir)?;
    let tree = db.open_tree("roomid_msgid_message")?;
    let value = vec![b'v'; 150];
    let key = |room: u64, msg: u64| {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&room.to_be_bytes());
        k[8..].copy_from_slice(&msg.to_be_bytes());
        k
    };
    let started = Instant::now();
    for b in 0..batches {
        let mut batch = sled::Batch::default();
        for i in 0..batch_len {
            batch.insert(&key(1, b * batch_len + i + 1), value.clone());
        }
        tree.apply_batch(batch)?;
        db.flush()?;
    }
    let batched = (batches * batch_len) as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut singles = 0u64;
    while started.elapsed().as_secs_f64() < singles_seconds {
        singles += 1;
        tree.insert(key(2, singles), value.clone())?;
        db.flush()?;
    }
    let single = singles as f64 / started.elapsed().as_secs_f64();
    // What daehwa's flush writes per new message, by hand: the client-id reference
    // and the message record (since `daehwa/3` a new message is not logged apart:
    // its record is its log entry), one `insert` at a time into two trees (a live
    // server uses no sled batches: see ARCHITECTURE.md), a `flush()` per `batch_len`
    // messages. The ceiling of end-to-end persistence with this schema.
    let references = db.open_tree("userid_clientmsgid_ref")?;
    let messages = db.open_tree("roomid_msgid_message_shape")?;
    let reference = vec![b'r'; 24];
    let started = Instant::now();
    for b in 0..batches {
        for i in 0..batch_len {
            let n = b * batch_len + i + 1;
            let mut client_key = 7u64.to_be_bytes().to_vec();
            client_key.extend_from_slice(format!("c{n}").as_bytes());
            references.insert(client_key, reference.clone())?;
            messages.insert(key(3, n), value.clone())?;
        }
        db.flush()?;
    }
    let shaped = (batches * batch_len) as f64 / started.elapsed().as_secs_f64();
    Ok(json!({
        "apply_batch_msgs_per_s": batched,
        "daehwa_shape_msgs_per_s": shaped,
        "batch": batch_len,
        "value_bytes": 150,
        "flush_per_message_msgs_per_s": single,
    }))
}

/// The CI smoke run: starts the given daehwa on port 0 with a temporary data dir,
/// drives four connections of three users in two rooms for a few seconds, and checks
/// that every message arrived exactly once and in order. No timing thresholds.
pub async fn smoke(server_bin: &Path, seconds: f64) -> Result<(), BoxError> {
    let work = std::env::temp_dir().join(format!("daehwa-smoke-{}", std::process::id()));
    let programs = Programs {
        server_bin: server_bin.to_owned(),
        socketio_script: PathBuf::new(),
        server_cpu: None,
        work_dir: work.clone(),
        daehwa_keys: Vec::new(),
    };
    let result = smoke_in(&programs, seconds).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn smoke_in(programs: &Programs, seconds: f64) -> Result<(), BoxError> {
    let dir = servers::fresh_dir(programs, "data")?;
    let config = DaehwaConfig {
        flush_interval: "500ms".into(),
        durability: None,
    };
    let server = Server::daehwa(programs, &dir, &config, servers::DEFAULT_LOG, None)?;
    let api = Api::new(server.addr);
    let users = api.register_many("smoke", 3).await?;
    let room_a = api.create_room(&users[0].token, "a").await?;
    let room_b = api.create_room(&users[0].token, "b").await?;
    api.join(&users[1].token, room_a).await?;
    api.join(&users[2].token, room_b).await?;
    // A user's connections all get the user's rooms: user 0 has two, in both rooms.
    let client = |user: usize, rooms: Vec<u64>| Client {
        url: format!("ws://{}/ws?token={}", server.addr, users[user].token),
        rooms,
    };
    let clients = vec![
        client(0, vec![room_a, room_b]),
        client(0, vec![room_a, room_b]),
        client(1, vec![room_a]),
        client(2, vec![room_b]),
    ];
    let senders = vec![
        Sender {
            client: 0,
            room: room_a,
        },
        Sender {
            client: 1,
            room: room_b,
        },
        Sender {
            client: 2,
            room: room_a,
        },
        Sender {
            client: 3,
            room: room_b,
        },
    ];
    let open = load::connect_all(Protocol::Daehwa, server.addr, &clients).await?;
    let load = Load {
        protocol: Protocol::Daehwa,
        clients,
        senders,
        // Under daehwa's default per-user rate limit (20/s, burst 40), so that the
        // smoke run passes even if the bench's generous limits are not applied.
        pace: Pace::Open { msgs_per_s: 30.0 },
        duration: Duration::from_secs_f64(seconds),
        warmup: Duration::ZERO,
        max_messages: None,
        content_bytes: 100,
        drain_timeout: Duration::from_secs(20),
        server_pid: Some(server.pid),
    };
    let outcome = load::run(&load, open).await;
    println!("{}", serde_json::to_string(&outcome)?);
    let page = api.history(&users[1].token, room_a, -1, 50).await?;
    let (status, _) = server.stop();
    let mut failures = Vec::new();
    if outcome.sent == 0 {
        failures.push("nothing was sent".to_owned());
    }
    if !outcome.exactly_once_in_order {
        failures.push(format!(
            "deliveries: {} of {} expected, {} out of order, {} missing",
            outcome.delivered,
            outcome.expected_deliveries,
            outcome.order_violations,
            outcome.missing
        ));
    }
    if outcome.error_events > 0 || outcome.closed_connections > 0 {
        failures.push(format!(
            "{} error events (first: {}), {} connections closed by the server",
            outcome.error_events,
            outcome.first_error.as_deref().unwrap_or("none"),
            outcome.closed_connections
        ));
    }
    // The newest page: the last (up to) 50 msgIds, consecutive, ending at the newest.
    let newest = page.last().copied().unwrap_or(0);
    let expected: Vec<u64> = (newest.saturating_sub(49).max(1)..=newest).collect();
    if newest == 0 || page != expected {
        failures.push(format!(
            "history page of room a is not the newest consecutive msgIds: {page:?}"
        ));
    }
    if !status.is_some_and(|s| s.success()) {
        failures.push(format!(
            "the server did not exit cleanly on SIGTERM: {status:?}"
        ));
    }
    if failures.is_empty() {
        println!(
            "smoke: ok: {} messages, {} deliveries, each exactly once and in order",
            outcome.sent, outcome.delivered
        );
        Ok(())
    } else {
        Err(failures.join("; ").into())
    }
}
