//! The load engine: connects the clients, sends on a schedule, and checks and times
//! every delivery.
//!
//! It runs on one thread (a current-thread runtime and a `LocalSet`, the process
//! pinned to one core by `run.sh`), so all bookkeeping is plain `Cell`/`RefCell`.
//!
//! - **Open loop** ([`Pace::Open`]): message *k* is due at `start + k / rate`, whatever
//!   the server does; its embedded timestamp is that due time, so a server (or a load
//!   generator) that falls behind shows as latency, never as less load.
//! - **Closed loop** ([`Pace::Closed`]): each sender keeps `window` messages in flight
//!   and sends the next when its own echo arrives (used to find a maximum throughput).
//!
//! Each sender numbers its messages 1, 2, 3, …; each receiver checks that every sender
//! of its rooms arrives as exactly 1, 2, 3, … with nothing missing.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::api::BoxError;
use crate::procfs;
use crate::wire::{self, Incoming, Protocol};

pub type Ws = WebSocketStream<TcpStream>;

/// Bytes read from a socket at a time: tungstenite's default is 128 KiB per
/// connection, which costs memory and cache for small chat frames.
const READ_BUFFER_BYTES: usize = 4096;
/// Connections opened at once while connecting.
const CONNECT_IN_FLIGHT: usize = 64;
/// How long one connection may take to connect and be greeted.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Loopback source addresses used in turn, so that more than one address's worth of
/// ephemeral ports (about 28 000) can be open.
const SOURCE_ADDRESSES: u32 = 16;
/// A drain that sees no delivery for this long gives up.
const DRAIN_STALL: Duration = Duration::from_secs(5);
/// With this environment variable naming a file, a run appends its latency timeline
/// there: per [`TIMELINE_BUCKET_MS`] of send time, the deliveries, the slowest and how
/// many took over [`TIMELINE_SLOW_US`], with the bucket's wall-clock time (to line up
/// with the server's log). For finding what a tail is made of, not for the report.
const TIMELINE_ENV: &str = "DAEHWA_BENCH_TIMELINE";
const TIMELINE_BUCKET_MS: u64 = 10;
const TIMELINE_SLOW_US: u64 = 2000;

/// One connection of the load.
#[derive(Debug, Clone)]
pub struct Client {
    /// `ws://…` including the token or the room list.
    pub url: String,
    /// The rooms whose messages this connection receives.
    pub rooms: Vec<u64>,
}

/// One sender: a client sending to one of its rooms.
#[derive(Debug, Clone, Copy)]
pub struct Sender {
    pub client: usize,
    pub room: u64,
}

#[derive(Debug, Clone, Copy)]
pub enum Pace {
    Open { msgs_per_s: f64 },
    Closed { window: usize },
}

/// A run: who connects, who sends, how fast, for how long.
#[derive(Debug, Clone)]
pub struct Load {
    pub protocol: Protocol,
    pub clients: Vec<Client>,
    pub senders: Vec<Sender>,
    pub pace: Pace,
    /// Sending time, warm-up included.
    pub duration: Duration,
    /// Messages due in the first `warmup` are delivered and checked but not timed, and
    /// CPU is counted from its end.
    pub warmup: Duration,
    /// Stop sending after this many messages.
    pub max_messages: Option<u64>,
    pub content_bytes: usize,
    pub drain_timeout: Duration,
    pub server_pid: Option<u32>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub samples: u64,
}

impl Latency {
    pub fn of(hist: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50_ms: ms(hist.value_at_quantile(0.50)),
            p99_ms: ms(hist.value_at_quantile(0.99)),
            p999_ms: ms(hist.value_at_quantile(0.999)),
            max_ms: ms(hist.max()),
            samples: hist.len(),
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub clients: usize,
    pub senders: usize,
    pub pace: &'static str,
    /// Messages sent per second that were asked for (open loop) or achieved (closed).
    pub offered_msgs_per_s: f64,
    /// Deliveries (one message to one connection) per second asked for.
    pub offered_deliveries_per_s: f64,
    /// Length of the measured window (after the warm-up, until sending stopped).
    pub window_s: f64,
    pub sent: u64,
    pub expected_deliveries: u64,
    pub delivered: u64,
    /// Messages per second accepted and echoed in the window.
    pub msgs_per_s: f64,
    /// Deliveries per second received in the window.
    pub delivered_per_s: f64,
    pub latency: Latency,
    pub error_events: u64,
    pub closed_connections: u64,
    /// The first error event, to say what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    pub order_violations: u64,
    pub missing: u64,
    pub exactly_once_in_order: bool,
    /// Every expected delivery arrived before the drain timeout.
    pub drained: bool,
    pub server_cpu_s: f64,
    pub server_rss_mib: f64,
    /// The largest server RSS seen from the start of sending to the end of the drain.
    pub server_rss_peak_mib: f64,
    pub loadgen_cpu_s: f64,
    pub server_cpu_us_per_delivery: f64,
    pub loadgen_cpu_us_per_delivery: f64,
}

fn source_address(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 1 + (index as u32 % SOURCE_ADDRESSES) as u8)
}

async fn next_text(ws: &mut Ws) -> Result<String, BoxError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}").into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err("connection ended".into()),
        }
    }
}

/// Opens one connection and waits for the server's greeting: the `rooms` event, or
/// for socket.io the open and connect packets and a `joined` per room.
pub async fn connect(
    protocol: Protocol,
    server: SocketAddr,
    client: &Client,
    index: usize,
) -> Result<Ws, BoxError> {
    let work = async {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::V4(SocketAddrV4::new(source_address(index), 0)))?;
        let stream = socket.connect(server).await?;
        stream.set_nodelay(true)?;
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(client.url.as_str(), stream, Some(config))
                .await?;
        match protocol {
            Protocol::Daehwa | Protocol::Ceiling => {
                let first = next_text(&mut ws).await?;
                if !first.starts_with(r#"{"event":"rooms""#) {
                    return Err(format!("expected the rooms event, got {first}").into());
                }
            }
            Protocol::DaehwaSio => {
                let open = next_text(&mut ws).await?;
                if !open.starts_with('0') {
                    return Err(format!("expected an Engine.IO open packet, got {open}").into());
                }
                ws.send(Message::text("40")).await?;
                loop {
                    let text = next_text(&mut ws).await?;
                    if text.starts_with(r#"42["rooms""#) {
                        break;
                    }
                    if text.starts_with("44") {
                        return Err(format!("refused: {text}").into());
                    }
                }
            }
            Protocol::Socketio => {
                let open = next_text(&mut ws).await?;
                if !open.starts_with('0') {
                    return Err(format!("expected an Engine.IO open packet, got {open}").into());
                }
                ws.send(Message::text("40")).await?;
                loop {
                    let text = next_text(&mut ws).await?;
                    if text.starts_with("40") {
                        break;
                    }
                }
                for room in &client.rooms {
                    ws.send(Message::text(wire::join_frame(*room))).await?;
                }
                let mut joined = 0;
                while joined < client.rooms.len() {
                    let text = next_text(&mut ws).await?;
                    if text.starts_with(r#"42["joined""#) {
                        joined += 1;
                    } else if text == "2" {
                        ws.send(Message::text("3")).await?;
                    }
                }
            }
        }
        Ok::<_, BoxError>(ws)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, work)
        .await
        .map_err(|_| BoxError::from(format!("connection {index} timed out")))?
}

/// Opens every client's connection, a few at a time, in order.
pub async fn connect_all(
    protocol: Protocol,
    server: SocketAddr,
    clients: &[Client],
) -> Result<Vec<Ws>, BoxError> {
    let results: Vec<Result<Ws, BoxError>> = futures_util::stream::iter(clients.iter().enumerate())
        .map(|(i, client)| connect(protocol, server, client, i))
        .buffered(CONNECT_IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect()
}

/// State shared by the tasks of one run.
struct Shared {
    protocol: Protocol,
    /// Makes clientMsgIds unique across runs against the same server: daehwa takes
    /// a known one for a resend and does not deliver it again.
    run_id: u64,
    content_bytes: usize,
    senders: Vec<Sender>,
    /// For each room, how many connections receive its messages.
    fanout: HashMap<u64, u64>,
    writers: Vec<mpsc::UnboundedSender<Message>>,
    /// The last sequence number given out, per sender.
    next_seq: RefCell<Vec<u32>>,
    /// The last sequence number received, per client and sender.
    last_seen: Vec<RefCell<Vec<u32>>>,
    measure_from_ns: u64,
    sending: Cell<bool>,
    closed_loop: bool,
    max_messages: u64,
    sent: Cell<u64>,
    sent_measured: Cell<u64>,
    expected: Cell<u64>,
    delivered: Cell<u64>,
    delivered_measured: Cell<u64>,
    delivered_in_window: Cell<u64>,
    error_events: Cell<u64>,
    first_error: RefCell<Option<String>>,
    closed: Cell<u64>,
    order_violations: Cell<u64>,
    histogram: RefCell<Histogram<u64>>,
    /// Per bucket of send time: (deliveries, slowest µs, over the slow mark), when
    /// [`TIMELINE_ENV`] asks for it.
    timeline: Option<RefCell<Vec<(u64, u64, u64)>>>,
}

impl Shared {
    /// Sends the next message of `sender`, stamped `sent_ns`.
    fn emit(&self, sender: usize, sent_ns: u64) {
        if self.sent.get() >= self.max_messages {
            return;
        }
        let seq = {
            let mut next = self.next_seq.borrow_mut();
            next[sender] += 1;
            next[sender]
        };
        let Sender { client, room } = self.senders[sender];
        let content = wire::content(sender as u32, seq, sent_ns, self.content_bytes);
        let client_msg_id = format!("c{}.{sender}.{seq}", self.run_id);
        let frame = wire::chat_frame(self.protocol, room, &content, &client_msg_id);
        let _ = self.writers[client].send(Message::text(frame));
        let fanout = self.fanout.get(&room).copied().unwrap_or(0);
        self.sent.set(self.sent.get() + 1);
        self.expected.set(self.expected.get() + fanout);
        if sent_ns >= self.measure_from_ns {
            self.sent_measured.set(self.sent_measured.get() + 1);
        }
    }

    fn receive(&self, client: usize, text: &str, own_senders: &[usize]) {
        match wire::classify(self.protocol, text) {
            Incoming::Chat(message) => {
                let now = wire::now_ns();
                self.delivered.set(self.delivered.get() + 1);
                if message.sent_ns >= self.measure_from_ns {
                    self.delivered_measured
                        .set(self.delivered_measured.get() + 1);
                    let micros = now.saturating_sub(message.sent_ns) / 1000;
                    let _ = self.histogram.borrow_mut().record(micros.max(1));
                    if let Some(timeline) = &self.timeline {
                        let bucket = ((message.sent_ns - self.measure_from_ns)
                            / 1_000_000
                            / TIMELINE_BUCKET_MS) as usize;
                        let mut timeline = timeline.borrow_mut();
                        if timeline.len() <= bucket {
                            timeline.resize(bucket + 1, (0, 0, 0));
                        }
                        let entry = &mut timeline[bucket];
                        entry.0 += 1;
                        entry.1 = entry.1.max(micros);
                        entry.2 += u64::from(micros > TIMELINE_SLOW_US);
                    }
                    if self.sending.get() {
                        self.delivered_in_window
                            .set(self.delivered_in_window.get() + 1);
                    }
                }
                let sender = message.sender as usize;
                {
                    let mut last = self.last_seen[client].borrow_mut();
                    match last.get_mut(sender) {
                        Some(last) => {
                            if message.seq != *last + 1 {
                                self.order_violations.set(self.order_violations.get() + 1);
                            }
                            *last = (*last).max(message.seq);
                        }
                        None => self.order_violations.set(self.order_violations.get() + 1),
                    }
                }
                if self.closed_loop && self.sending.get() && own_senders.contains(&sender) {
                    self.emit(sender, wire::now_ns());
                }
            }
            Incoming::Error => {
                self.error_events.set(self.error_events.get() + 1);
                self.first_error
                    .borrow_mut()
                    .get_or_insert_with(|| text.chars().take(300).collect());
            }
            Incoming::Ping => {
                let _ = self.writers[client].send(Message::text("3"));
            }
            Incoming::Other => {}
        }
    }
}

async fn write_loop(mut sink: SplitSink<Ws, Message>, mut rx: mpsc::UnboundedReceiver<Message>) {
    while let Some(message) = rx.recv().await {
        if sink.feed(message).await.is_err() {
            return;
        }
        while let Ok(message) = rx.try_recv() {
            if sink.feed(message).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

async fn read_loop(
    shared: Rc<Shared>,
    client: usize,
    mut stream: SplitStream<Ws>,
    own_senders: Vec<usize>,
) {
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => shared.receive(client, text.as_str(), &own_senders),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                shared.closed.set(shared.closed.get() + 1);
                return;
            }
            Some(Ok(_)) => {}
        }
    }
}

fn cpu_of(pid: Option<u32>) -> (Duration, u64) {
    pid.and_then(|pid| procfs::sample(pid).ok())
        .map_or((Duration::ZERO, 0), |s| (s.cpu, s.rss_bytes))
}

/// Runs a load on already-open connections (one per client, in order). Must be
/// called inside a `LocalSet`.
pub async fn run(load: &Load, connections: Vec<Ws>) -> Outcome {
    let mut fanout: HashMap<u64, u64> = HashMap::new();
    for client in &load.clients {
        for room in &client.rooms {
            *fanout.entry(*room).or_default() += 1;
        }
    }
    let senders_of_client = {
        let mut map = vec![Vec::new(); load.clients.len()];
        for (i, sender) in load.senders.iter().enumerate() {
            map[sender.client].push(i);
        }
        map
    };
    let start_ns = wire::now_ns() + 20_000_000;
    let measure_from_ns = start_ns + load.warmup.as_nanos() as u64;
    let mut writers = Vec::new();
    let mut halves = Vec::new();
    for ws in connections {
        let (sink, stream) = ws.split();
        let (tx, rx) = mpsc::unbounded_channel();
        writers.push(tx);
        halves.push((sink, rx, stream));
    }
    let shared = Rc::new(Shared {
        protocol: load.protocol,
        run_id: start_ns,
        content_bytes: load.content_bytes,
        senders: load.senders.clone(),
        fanout,
        writers,
        next_seq: RefCell::new(vec![0; load.senders.len()]),
        last_seen: (0..load.clients.len())
            .map(|_| RefCell::new(vec![0; load.senders.len()]))
            .collect(),
        measure_from_ns,
        sending: Cell::new(true),
        closed_loop: matches!(load.pace, Pace::Closed { .. }),
        max_messages: load.max_messages.unwrap_or(u64::MAX),
        sent: Cell::new(0),
        sent_measured: Cell::new(0),
        expected: Cell::new(0),
        delivered: Cell::new(0),
        delivered_measured: Cell::new(0),
        delivered_in_window: Cell::new(0),
        error_events: Cell::new(0),
        first_error: RefCell::new(None),
        closed: Cell::new(0),
        order_violations: Cell::new(0),
        histogram: RefCell::new(
            Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds"),
        ),
        timeline: std::env::var_os(TIMELINE_ENV).map(|_| RefCell::new(Vec::new())),
    });
    let mut tasks = Vec::new();
    for (client, (sink, rx, stream)) in halves.into_iter().enumerate() {
        tasks.push(tokio::task::spawn_local(write_loop(sink, rx)));
        tasks.push(tokio::task::spawn_local(read_loop(
            shared.clone(),
            client,
            stream,
            senders_of_client[client].clone(),
        )));
    }

    let peak_rss = load.server_pid.map(procfs::PeakRss::watch);
    // CPU is counted from the end of the warm-up.
    let at = |ns: u64| wire::clock_base() + Duration::from_nanos(ns);
    let (begin_server_cpu, begin_self_cpu, window_start) = {
        let pid = load.server_pid;
        let sampler = tokio::task::spawn_local(async move {
            tokio::time::sleep_until(at(measure_from_ns).into()).await;
            (cpu_of(pid).0, procfs::sample_self().cpu, Instant::now())
        });
        drive(load, &shared, start_ns).await;
        sampler
            .await
            .unwrap_or((Duration::ZERO, Duration::ZERO, Instant::now()))
    };
    shared.sending.set(false);
    let window = window_start.elapsed();

    // Drain: wait for every expected delivery, or a stall, or the timeout.
    let drain_deadline = Instant::now() + load.drain_timeout;
    let mut last_progress = (shared.delivered.get(), Instant::now());
    let drained = loop {
        if shared.delivered.get() >= shared.expected.get() {
            break true;
        }
        let now = Instant::now();
        if shared.delivered.get() != last_progress.0 {
            last_progress = (shared.delivered.get(), now);
        }
        if now > drain_deadline || now - last_progress.1 > DRAIN_STALL {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let (end_server_cpu, rss) = cpu_of(load.server_pid);
    let server_rss_peak_mib = match (&peak_rss, load.server_pid) {
        (Some(peak), Some(pid)) => peak.mib(pid),
        _ => 0.0,
    };
    drop(peak_rss);
    let end_self_cpu = procfs::sample_self().cpu;
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }

    let latency = Latency::of(&shared.histogram.borrow());
    write_timeline(&shared);
    let first_error = shared.first_error.borrow().clone();
    let next_seq = shared.next_seq.borrow().clone();
    let mut missing = 0u64;
    for (c, client) in load.clients.iter().enumerate() {
        let last = shared.last_seen[c].borrow();
        for (s, sender) in load.senders.iter().enumerate() {
            if client.rooms.contains(&sender.room) && last[s] < next_seq[s] {
                missing += u64::from(next_seq[s] - last[s]);
            }
        }
    }
    let delivered = shared.delivered.get();
    let expected = shared.expected.get();
    // A gap that was never filled shows in the count even when later messages came.
    let missing = missing.max(expected.saturating_sub(delivered));
    let order_violations = shared.order_violations.get();
    let window_s = window.as_secs_f64().max(1e-9);
    let server_cpu = end_server_cpu
        .saturating_sub(begin_server_cpu)
        .as_secs_f64();
    let loadgen_cpu = end_self_cpu.saturating_sub(begin_self_cpu).as_secs_f64();
    let measured = shared.delivered_measured.get().max(1) as f64;
    let avg_fanout = if shared.sent.get() > 0 {
        expected as f64 / shared.sent.get() as f64
    } else {
        0.0
    };
    let msgs_per_s = shared.sent_measured.get() as f64 / window_s;
    let offered_msgs_per_s = match load.pace {
        Pace::Open { msgs_per_s } => msgs_per_s,
        Pace::Closed { .. } => msgs_per_s,
    };
    Outcome {
        clients: load.clients.len(),
        senders: load.senders.len(),
        pace: match load.pace {
            Pace::Open { .. } => "open",
            Pace::Closed { .. } => "closed",
        },
        offered_msgs_per_s,
        offered_deliveries_per_s: offered_msgs_per_s * avg_fanout,
        window_s,
        sent: shared.sent.get(),
        expected_deliveries: expected,
        delivered,
        msgs_per_s,
        delivered_per_s: shared.delivered_in_window.get() as f64 / window_s,
        latency,
        error_events: shared.error_events.get(),
        closed_connections: shared.closed.get(),
        first_error,
        order_violations,
        missing,
        exactly_once_in_order: order_violations == 0 && missing == 0 && delivered == expected,
        drained,
        server_cpu_s: server_cpu,
        server_rss_mib: rss as f64 / (1024.0 * 1024.0),
        server_rss_peak_mib,
        loadgen_cpu_s: loadgen_cpu,
        server_cpu_us_per_delivery: server_cpu * 1e6 / measured,
        loadgen_cpu_us_per_delivery: loadgen_cpu * 1e6 / measured,
    }
}

/// Appends the run's timeline to the file [`TIMELINE_ENV`] names: a header line,
/// then `unix_ms deliveries slowest_us slow` per bucket.
fn write_timeline(shared: &Shared) {
    use std::io::Write;
    let (Some(timeline), Some(path)) = (&shared.timeline, std::env::var_os(TIMELINE_ENV)) else {
        return;
    };
    let unix_now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let measure_from_ms = unix_now_ms - (wire::now_ns() - shared.measure_from_ns) / 1_000_000;
    let mut text = format!(
        "# {} senders, buckets of {TIMELINE_BUCKET_MS} ms, slow > {TIMELINE_SLOW_US} µs\n",
        shared.senders.len()
    );
    for (i, (count, slowest, slow)) in timeline.borrow().iter().enumerate() {
        let at = measure_from_ms + i as u64 * TIMELINE_BUCKET_MS;
        text.push_str(&format!("{at} {count} {slowest} {slow}\n"));
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(text.as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "cannot write the timeline to {}: {e}",
            path.to_string_lossy()
        );
    }
}

/// Sends for `load.duration` from `start_ns` on.
async fn drive(load: &Load, shared: &Shared, start_ns: u64) {
    let end_ns = start_ns + load.duration.as_nanos() as u64;
    let at = |ns: u64| wire::clock_base() + Duration::from_nanos(ns);
    let senders = load.senders.len();
    if senders == 0 {
        return;
    }
    tokio::time::sleep_until(at(start_ns).into()).await;
    match load.pace {
        Pace::Open { msgs_per_s } => {
            let interval_ns = 1e9 / msgs_per_s;
            let due = |k: u64| start_ns + (k as f64 * interval_ns) as u64;
            let mut k = 0u64;
            loop {
                let now = wire::now_ns();
                while due(k) <= now && due(k) < end_ns && shared.sent.get() < shared.max_messages {
                    shared.emit((k % senders as u64) as usize, due(k));
                    k += 1;
                }
                if due(k) >= end_ns || shared.sent.get() >= shared.max_messages {
                    break;
                }
                tokio::time::sleep_until(at(due(k)).into()).await;
            }
        }
        Pace::Closed { window } => {
            let now = wire::now_ns();
            for _ in 0..window {
                for sender in 0..senders {
                    shared.emit(sender, now);
                }
            }
            // The readers send the rest; wait for the time or the count to run out.
            loop {
                if wire::now_ns() >= end_ns || shared.sent.get() >= shared.max_messages {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    tokio::time::sleep_until(at(end_ns.min(wire::now_ns())).into()).await;
}
