//! A team's day: users who behave like a team's members rather than like a load
//! generator, ramped until the server no longer keeps up. The capacity figure of
//! README ("one 2-core machine serves N active users") comes from here.
//!
//! The users come in blocks, one per step of the ramp ("a new team joins"); each
//! block gets its own rooms:
//! - **group rooms** of Zipf-distributed sizes (2 to 200 members, exponent
//!   [`ZIPF_EXPONENT`]) drawn from a neighbourhood of the block, until each user is in
//!   [`GROUP_ROOMS_PER_USER`] of them on average;
//! - **direct rooms**: [`DIRECT_ROOMS_PER_USER`] per user, with a neighbour.
//!
//! Every user holds one WebSocket and, at random (exponential) intervals, each at a
//! mean per user:
//! - **sends a message** (every `--message-every`, 60 s), to one of its rooms; one in
//!   [`BURST_ONE_IN`] starts a burst of 2 to 5 messages a second or two apart;
//! - **reads history** (every `--history-every`, 300 s): the newest page of 50 of
//!   one of its rooms, over HTTP, checked to be consecutive;
//! - **joins a room** of its block and leaves it again a minute later (every
//!   `--join-every`, 1 800 s);
//! - **reconnects with resume** (every `--reconnect-every`, 600 s): closes its
//!   socket and opens a new one with `resume=ROOM:LASTMSGID,…`.
//!
//! Sending is open loop (a message is due at its time whatever the server does, and
//! carries that time). Checks: every message comes back to its sender; in every room
//! a user stays in, it receives every msgId once, in order (1, 2, 3, …), replays
//! after a reconnect included; in a room it joined for a while, msgIds only rise.
//! A step fails when p99 reaches 50 ms or anything is lost, duplicated or refused;
//! the ramp stops after the first failed step.

use std::cell::{Cell, RefCell};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::api::{Api, BoxError, Session};
use crate::load::{self, Client, Latency};
use crate::procfs;
use crate::scenarios::{record, Common, KNEE_P99_MS};
use crate::servers::{self, DaehwaConfig, Server};
use crate::wire::{self, Protocol};

/// Group rooms a user is in, on average.
const GROUP_ROOMS_PER_USER: usize = 6;
/// Direct rooms each user opens (with a neighbour).
const DIRECT_ROOMS_PER_USER: usize = 2;
/// Room sizes follow Zipf's law with this exponent between these bounds.
const ZIPF_EXPONENT: f64 = 1.2;
const ROOM_MIN: usize = 2;
const ROOM_MAX: usize = 200;
/// Members of a group room are drawn from this many times its size of neighbours.
const NEIGHBOURHOOD: usize = 3;
/// One message in this many starts a burst.
const BURST_ONE_IN: u64 = 5;
/// How long a user stays in a room it joined, in seconds (uniform).
const VISIT_S: (f64, f64) = (30.0, 90.0);
/// HTTP requests in flight while setting up.
const SETUP_IN_FLIGHT: usize = 32;
/// How long a step may take to deliver what it sent after sending stops.
const DRAIN: Duration = Duration::from_secs(20);
/// Bytes of content per message.
const CONTENT_BYTES: usize = 100;

/// The ramp and the behaviour of a user.
#[derive(Debug, Clone, clap::Args)]
pub struct TeamOptions {
    /// Users at each step, comma-separated, ascending.
    #[arg(long, value_delimiter = ',', default_value = "2000,5000,10000,20000")]
    pub users: Vec<usize>,
    /// Seconds of activity per step.
    #[arg(long, default_value_t = 60.0)]
    pub step_seconds: f64,
    /// Mean seconds between two messages of a user (bursts aside).
    #[arg(long, default_value_t = 60.0)]
    pub message_every: f64,
    /// Mean seconds between two history reads of a user.
    #[arg(long, default_value_t = 300.0)]
    pub history_every: f64,
    /// Mean seconds between two visits of a user to another room.
    #[arg(long, default_value_t = 1800.0)]
    pub join_every: f64,
    /// Mean seconds between two reconnects of a user.
    #[arg(long, default_value_t = 600.0)]
    pub reconnect_every: f64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Exponential with the given mean.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Zipf over `min..=max` with exponent `s`, by inverting the cumulative weights.
    fn zipf(&mut self, weights: &[f64], min: usize) -> usize {
        let total = weights.last().copied().unwrap_or(1.0);
        let x = self.unit() * total;
        min + weights.partition_point(|&w| w < x)
    }
}

/// Cumulative Zipf weights of `min..=max`.
fn zipf_weights(min: usize, max: usize, s: f64) -> Vec<f64> {
    let mut total = 0.0;
    (min..=max)
        .map(|k| {
            total += (k as f64).powf(-s);
            total
        })
        .collect()
}

/// One room of the plan.
struct PlannedRoom {
    members: Vec<usize>,
    direct: bool,
}

/// The rooms of the block of users `block`.
fn plan_block(block: std::ops::Range<usize>, rng: &mut Rng) -> Vec<PlannedRoom> {
    let len = block.len();
    let mut rooms = Vec::new();
    if len < ROOM_MIN {
        return rooms;
    }
    let weights = zipf_weights(ROOM_MIN, ROOM_MAX.min(len), ZIPF_EXPONENT);
    let mut memberships = 0;
    while memberships < GROUP_ROOMS_PER_USER * len {
        let size = rng.zipf(&weights, ROOM_MIN);
        let span = (size * NEIGHBOURHOOD).min(len);
        let start = block.start + rng.below(len - span + 1);
        let mut members: Vec<usize> = (start..start + span).collect();
        // A partial shuffle: the first `size` are a random choice of the span.
        for i in 0..size {
            let j = i + rng.below(span - i);
            members.swap(i, j);
        }
        members.truncate(size);
        memberships += size;
        rooms.push(PlannedRoom {
            members,
            direct: false,
        });
    }
    let mut pairs = HashSet::new();
    for user in block.clone() {
        for _ in 0..DIRECT_ROOMS_PER_USER {
            let offset = 1 + rng.below(50);
            let other = block.start + (user - block.start + offset) % len;
            let pair = (user.min(other), user.max(other));
            if other != user && pairs.insert(pair) {
                rooms.push(PlannedRoom {
                    members: vec![user, other],
                    direct: true,
                });
            }
        }
    }
    rooms
}

/// A room as the run knows it.
struct Room {
    id: u64,
    direct: bool,
    /// The highest msgId any member received.
    newest: Cell<u64>,
}

/// A user of the run.
struct User {
    session: Session,
    /// Indexes into `Team::rooms` of the rooms it stays in.
    rooms: Vec<usize>,
    /// Per room id: the last msgId received. Rooms it stays in are checked strictly;
    /// a visited room (`visiting`) only for rising msgIds.
    last: RefCell<HashMap<u64, u64>>,
    /// The room it is visiting, if any.
    visiting: Cell<Option<u64>>,
    /// Messages sent and their echoes received.
    sent: Cell<u64>,
    echoed: Cell<u64>,
    /// Frames to write; `None` while it reconnects (frames then wait in `pending`).
    out: RefCell<Option<mpsc::UnboundedSender<Command>>>,
    pending: RefCell<Vec<String>>,
    /// When its current connection was greeted: deliveries of messages sent before
    /// (replays) are checked but not timed.
    connected_ns: Cell<u64>,
    /// How many messages of a burst are still to come.
    burst_left: Cell<u32>,
}

enum Command {
    Frame(String),
    Reconnect,
}

/// What happens next, and when (ns on [`wire::now_ns`]'s clock).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    /// Reversed, for a min-heap.
    at: std::cmp::Reverse<u64>,
    user: usize,
    action: Action,
}

#[derive(PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum Action {
    Send,
    History,
    Join,
    Leave,
    Reconnect,
}

/// Everything one run shares between its tasks (one thread).
struct Team {
    addr: SocketAddr,
    api: Api,
    users: Vec<User>,
    rooms: Vec<Room>,
    /// Room id → index into `rooms`.
    room_index: HashMap<u64, usize>,
    /// Per user, the group rooms of its block it may visit (indexes into `rooms`).
    visitable: Vec<Vec<usize>>,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    measuring: Cell<bool>,
    deliveries: Cell<u64>,
    latency: RefCell<Option<Histogram<u64>>>,
    history: RefCell<Option<Histogram<u64>>>,
    history_reads: Cell<u64>,
    history_gaps: Cell<u64>,
    joins: Cell<u64>,
    leaves: Cell<u64>,
    reconnects: Cell<u64>,
    duplicates: Cell<u64>,
    gaps: Cell<u64>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
}

impl Stats {
    fn error(&self, what: String) {
        self.errors.set(self.errors.get() + 1);
        self.first_error.borrow_mut().get_or_insert(what);
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// The msgId and room of a `chat` event, read without a full JSON parse.
fn chat_ids(text: &str) -> Option<(u64, u64)> {
    let number = |name: &str| -> Option<u64> {
        let start = text.find(name)? + name.len();
        let digits: String = text[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    Some((number("\"msgId\":")?, number("\"chatSeq\":")?))
}

impl Team {
    fn user_url(&self, user: usize) -> String {
        let u = &self.users[user];
        let resume: Vec<String> = u
            .last
            .borrow()
            .iter()
            .map(|(room, last)| format!("{room}:{last}"))
            .collect();
        let mut url = format!("ws://{}/ws?token={}", self.addr, u.session.token);
        if !resume.is_empty() {
            url.push_str("&resume=");
            url.push_str(&resume.join(","));
        }
        url
    }

    fn receive(&self, user: usize, text: &str) {
        if text.starts_with(r#"{"event":"error""#) {
            self.stats.error(text.chars().take(300).collect());
            return;
        }
        if !text.starts_with(r#"{"event":"chat""#) {
            return;
        }
        let Some((msg_id, room_id)) = chat_ids(text) else {
            return;
        };
        let u = &self.users[user];
        let Some(marker) = wire::parse_marker(text) else {
            return;
        };
        if marker.sender as usize == user {
            u.echoed.set(u.echoed.get() + 1);
        }
        let visiting = u.visiting.get() == Some(room_id);
        {
            let mut last = u.last.borrow_mut();
            match last.get_mut(&room_id) {
                Some(seen) if visiting => {
                    if msg_id <= *seen {
                        self.stats.duplicates.set(self.stats.duplicates.get() + 1);
                    }
                    *seen = (*seen).max(msg_id);
                }
                Some(seen) => {
                    if msg_id <= *seen {
                        self.stats.duplicates.set(self.stats.duplicates.get() + 1);
                    } else if msg_id > *seen + 1 {
                        self.stats
                            .gaps
                            .set(self.stats.gaps.get() + msg_id - *seen - 1);
                    }
                    *seen = (*seen).max(msg_id);
                }
                // A room being joined (the reply not read yet), or one just left.
                None if visiting => {
                    last.insert(room_id, msg_id);
                }
                None => {}
            }
        }
        if let Some(&index) = self.room_index.get(&room_id) {
            let room = &self.rooms[index];
            room.newest.set(room.newest.get().max(msg_id));
        }
        self.stats.deliveries.set(self.stats.deliveries.get() + 1);
        if self.stats.measuring.get() && marker.sent_ns >= u.connected_ns.get() {
            let micros = wire::now_ns().saturating_sub(marker.sent_ns) / 1000;
            if let Some(h) = self.stats.latency.borrow_mut().as_mut() {
                let _ = h.record(micros.max(1));
            }
        }
    }

    fn send(&self, user: usize, rng: &mut Rng, due_ns: u64) {
        let u = &self.users[user];
        if u.rooms.is_empty() {
            return;
        }
        let room = &self.rooms[u.rooms[rng.below(u.rooms.len())]];
        let seq = u.sent.get() + 1;
        u.sent.set(seq);
        let content = wire::content(user as u32, seq as u32, due_ns, CONTENT_BYTES);
        let frame = wire::chat_frame(
            Protocol::Daehwa,
            room.id,
            &content,
            &format!("t{user}.{seq}"),
        );
        match u.out.borrow().as_ref() {
            Some(out) => {
                let _ = out.send(Command::Frame(frame));
            }
            None => u.pending.borrow_mut().push(frame),
        }
    }
}

/// One user's connection: connects (resuming what it has), writes what it is given,
/// reads and checks what arrives, and reconnects when told to.
async fn connection(team: Rc<Team>, user: usize, first: load::Ws) {
    let mut ws = Some(first);
    loop {
        let mut socket = match ws.take() {
            Some(socket) => socket,
            None => {
                let client = Client {
                    url: team.user_url(user),
                    rooms: vec![],
                };
                match load::connect(Protocol::Daehwa, team.addr, &client, user).await {
                    Ok(socket) => socket,
                    Err(e) => {
                        team.stats
                            .error(format!("user {user} could not reconnect: {e}"));
                        return;
                    }
                }
            }
        };
        let u = &team.users[user];
        u.connected_ns.set(wire::now_ns());
        let (tx, mut rx) = mpsc::unbounded_channel();
        for frame in u.pending.borrow_mut().drain(..) {
            let _ = tx.send(Command::Frame(frame));
        }
        *u.out.borrow_mut() = Some(tx);
        let reconnect = loop {
            tokio::select! {
                frame = socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => team.receive(user, text.as_str()),
                    Some(Ok(Message::Close(frame))) => {
                        team.stats.error(format!("user {user}: the server closed: {frame:?}"));
                        break false;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        team.stats.error(format!("user {user}: {e}"));
                        break false;
                    }
                    None => break false,
                },
                command = rx.recv() => match command {
                    Some(Command::Frame(frame)) => {
                        if let Err(e) = socket.send(Message::text(frame)).await {
                            team.stats.error(format!("user {user}: {e}"));
                            break false;
                        }
                    }
                    Some(Command::Reconnect) => break true,
                    None => break false,
                },
            }
        };
        *u.out.borrow_mut() = None;
        // Whatever was handed over and not written goes out on the next connection.
        while let Ok(Command::Frame(frame)) = rx.try_recv() {
            u.pending.borrow_mut().push(frame);
        }
        if !reconnect {
            return;
        }
        let _ = socket.close(None).await;
        team.stats.reconnects.set(team.stats.reconnects.get() + 1);
    }
}

async fn read_history(team: Rc<Team>, user: usize, room: u64) {
    let u = &team.users[user];
    let started = Instant::now();
    match team.api.history(&u.session.token, room, -1, 50).await {
        Ok(page) => {
            let micros = started.elapsed().as_micros() as u64;
            if team.stats.measuring.get() {
                if let Some(h) = team.stats.history.borrow_mut().as_mut() {
                    let _ = h.record(micros.max(1));
                }
            }
            team.stats
                .history_reads
                .set(team.stats.history_reads.get() + 1);
            if page.windows(2).any(|w| w[1] != w[0] + 1) {
                team.stats
                    .history_gaps
                    .set(team.stats.history_gaps.get() + 1);
            }
        }
        Err(e) => team.stats.error(format!("history of room {room}: {e}")),
    }
}

async fn visit(team: Rc<Team>, user: usize, room: u64) {
    let u = &team.users[user];
    u.visiting.set(Some(room));
    match team.api.join_at(&u.session.token, room).await {
        Ok(newest) => {
            let mut last = u.last.borrow_mut();
            let seen = last.entry(room).or_insert(newest);
            *seen = (*seen).max(newest);
            team.stats.joins.set(team.stats.joins.get() + 1);
        }
        Err(e) => {
            u.visiting.set(None);
            team.stats.error(format!("join of room {room}: {e}"));
        }
    }
}

async fn leave(team: Rc<Team>, user: usize, room: u64) {
    let u = &team.users[user];
    match team.api.leave(&u.session.token, room).await {
        Ok(()) => team.stats.leaves.set(team.stats.leaves.get() + 1),
        Err(e) => team.stats.error(format!("leave of room {room}: {e}")),
    }
    u.visiting.set(None);
    u.last.borrow_mut().remove(&room);
}

/// Runs `work` on `items` with at most `in_flight` at once; the first error ends it.
async fn in_parallel<T, F, Fut>(items: Vec<T>, in_flight: usize, work: F) -> Result<(), BoxError>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<(), BoxError>>,
{
    let results: Vec<Result<(), BoxError>> = futures_util::stream::iter(items)
        .map(work)
        .buffer_unordered(in_flight)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Registers the users of `block`, makes their rooms and connects them.
async fn grow(
    team: &mut Team,
    block: std::ops::Range<usize>,
    rng: &mut Rng,
) -> Result<(), BoxError> {
    let api = team.api.clone();
    let names: Vec<usize> = block.clone().collect();
    let registered: Vec<Result<Session, BoxError>> = futures_util::stream::iter(names)
        .map(|i| {
            let api = api.clone();
            async move { api.register(&format!("t{i}")).await }
        })
        .buffered(SETUP_IN_FLIGHT)
        .collect()
        .await;
    for session in registered {
        team.users.push(User {
            session: session?,
            rooms: Vec::new(),
            last: RefCell::default(),
            visiting: Cell::new(None),
            sent: Cell::new(0),
            echoed: Cell::new(0),
            out: RefCell::new(None),
            pending: RefCell::default(),
            connected_ns: Cell::new(0),
            burst_left: Cell::new(0),
        });
        team.visitable.push(Vec::new());
    }
    let plan = plan_block(block.clone(), rng);
    // Create every room, then the joins.
    let creators: Vec<(usize, &PlannedRoom)> = plan.iter().enumerate().collect();
    let created: Vec<Result<u64, BoxError>> = futures_util::stream::iter(creators)
        .map(|(i, room)| {
            let api = api.clone();
            let creator = team.users[room.members[0]].session.token.clone();
            let target = team.users[room.members[1]].session.user_id;
            let direct = room.direct;
            async move {
                if direct {
                    api.create_direct(&creator, target).await
                } else {
                    api.create_room(&creator, &format!("team{i}")).await
                }
            }
        })
        .buffered(SETUP_IN_FLIGHT)
        .collect()
        .await;
    let mut joins = Vec::new();
    let first_room = team.rooms.len();
    for (room, id) in plan.iter().zip(created) {
        let id = id?;
        let index = team.rooms.len();
        team.rooms.push(Room {
            id,
            direct: room.direct,
            newest: Cell::new(0),
        });
        team.room_index.insert(id, index);
        for (k, &member) in room.members.iter().enumerate() {
            team.users[member].rooms.push(index);
            team.users[member].last.borrow_mut().insert(id, 0);
            if !room.direct && k > 0 {
                joins.push((member, id));
            }
        }
    }
    let tokens: Vec<(String, u64)> = joins
        .into_iter()
        .map(|(member, id)| (team.users[member].session.token.clone(), id))
        .collect();
    in_parallel(tokens, SETUP_IN_FLIGHT, |(token, id)| {
        let api = api.clone();
        async move { api.join(&token, id).await }
    })
    .await?;
    // Group rooms of the block a user is not in: where it may go for a visit.
    let groups: Vec<usize> = (first_room..team.rooms.len())
        .filter(|&i| !team.rooms[i].direct)
        .collect();
    for user in block {
        let mine: HashSet<usize> = team.users[user].rooms.iter().copied().collect();
        let mut choices: Vec<usize> = groups
            .iter()
            .copied()
            .filter(|i| !mine.contains(i))
            .collect();
        choices.truncate(64);
        team.visitable[user] = choices;
    }
    Ok(())
}

/// Opens the connections of users `from..` (their rooms are made): one task each.
async fn connect_block(
    team: &Rc<Team>,
    block: std::ops::Range<usize>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<(), BoxError> {
    let clients: Vec<Client> = block
        .clone()
        .map(|user| Client {
            url: team.user_url(user),
            rooms: vec![],
        })
        .collect();
    // `connect` binds a source address by index: the user's index spreads them.
    let opened: Vec<Result<load::Ws, BoxError>> =
        futures_util::stream::iter(block.clone().zip(clients.iter()))
            .map(|(user, client)| load::connect(Protocol::Daehwa, team.addr, client, user))
            .buffered(64)
            .collect()
            .await;
    for (user, ws) in block.zip(opened) {
        tasks.push(tokio::task::spawn_local(connection(
            Rc::clone(team),
            user,
            ws?,
        )));
    }
    Ok(())
}

/// One step: every user active for `seconds`, then a drain; the record.
async fn step(team: &Rc<Team>, options: &TeamOptions, server: &Server, rng: &mut Rng) -> Value {
    let n = team.users.len();
    let stats = &team.stats;
    *stats.latency.borrow_mut() = Some(histogram());
    *stats.history.borrow_mut() = Some(histogram());
    for counter in [
        &stats.deliveries,
        &stats.history_reads,
        &stats.history_gaps,
        &stats.joins,
        &stats.leaves,
        &stats.reconnects,
        &stats.errors,
    ] {
        counter.set(0);
    }
    let sent_before: u64 = team.users.iter().map(|u| u.sent.get()).sum();
    let start = wire::now_ns() + 100_000_000;
    let end = start + (options.step_seconds * 1e9) as u64;
    let s = |x: f64| (x * 1e9) as u64;
    let mut queue = BinaryHeap::new();
    let push = |queue: &mut BinaryHeap<Due>, at: u64, user: usize, action: Action| {
        if at < end {
            queue.push(Due {
                at: std::cmp::Reverse(at),
                user,
                action,
            });
        }
    };
    for user in 0..n {
        push(
            &mut queue,
            start + s(rng.exp(options.message_every)),
            user,
            Action::Send,
        );
        push(
            &mut queue,
            start + s(rng.exp(options.history_every)),
            user,
            Action::History,
        );
        push(
            &mut queue,
            start + s(rng.exp(options.join_every)),
            user,
            Action::Join,
        );
        push(
            &mut queue,
            start + s(rng.exp(options.reconnect_every)),
            user,
            Action::Reconnect,
        );
    }
    let at = |ns: u64| wire::clock_base() + Duration::from_nanos(ns);
    tokio::time::sleep_until(at(start).into()).await;
    let load_before = procfs::loadavg();
    let cpu_before = procfs::sample(server.pid)
        .map(|s| s.cpu)
        .unwrap_or_default();
    let self_before = procfs::sample_self().cpu;
    let peak = procfs::PeakRss::watch(server.pid);
    stats.measuring.set(true);
    let started = Instant::now();
    let mut helpers = Vec::new();
    while let Some(Due {
        at: std::cmp::Reverse(due),
        user,
        action,
    }) = queue.pop()
    {
        if due > wire::now_ns() {
            tokio::time::sleep_until(at(due).into()).await;
        }
        let u = &team.users[user];
        match action {
            Action::Send => {
                team.send(user, rng, due);
                let next = if u.burst_left.get() > 0 {
                    u.burst_left.set(u.burst_left.get() - 1);
                    due + s(1.0 + rng.unit() * 2.0)
                } else {
                    if rng.next().is_multiple_of(BURST_ONE_IN) {
                        u.burst_left.set(1 + rng.below(4) as u32);
                    }
                    due + s(rng.exp(options.message_every))
                };
                push(&mut queue, next, user, Action::Send);
            }
            Action::History => {
                if !u.rooms.is_empty() {
                    let room = team.rooms[u.rooms[rng.below(u.rooms.len())]].id;
                    helpers.push(tokio::task::spawn_local(read_history(
                        Rc::clone(team),
                        user,
                        room,
                    )));
                }
                push(
                    &mut queue,
                    due + s(rng.exp(options.history_every)),
                    user,
                    Action::History,
                );
            }
            Action::Join => {
                let choices = &team.visitable[user];
                if u.visiting.get().is_none() && !choices.is_empty() {
                    let room = team.rooms[choices[rng.below(choices.len())]].id;
                    helpers.push(tokio::task::spawn_local(visit(Rc::clone(team), user, room)));
                    let stay = VISIT_S.0 + rng.unit() * (VISIT_S.1 - VISIT_S.0);
                    // Leaves even past the end of the step: a visit always ends.
                    queue.push(Due {
                        at: std::cmp::Reverse(due + s(stay).min(end.saturating_sub(due))),
                        user,
                        action: Action::Leave,
                    });
                }
                push(
                    &mut queue,
                    due + s(rng.exp(options.join_every)),
                    user,
                    Action::Join,
                );
            }
            Action::Leave => {
                if let Some(room) = u.visiting.get() {
                    helpers.push(tokio::task::spawn_local(leave(Rc::clone(team), user, room)));
                }
            }
            Action::Reconnect => {
                if let Some(out) = u.out.borrow().as_ref() {
                    let _ = out.send(Command::Reconnect);
                }
                push(
                    &mut queue,
                    due + s(rng.exp(options.reconnect_every)),
                    user,
                    Action::Reconnect,
                );
            }
        }
    }
    let window = started.elapsed();
    for helper in helpers {
        let _ = helper.await;
    }
    stats.measuring.set(false);
    // Drain: every message back to its sender, every room caught up by its members.
    let drain_started = Instant::now();
    let caught_up = || {
        team.users.iter().all(|u| u.echoed.get() >= u.sent.get())
            && team.users.iter().all(|u| {
                u.rooms.iter().all(|&r| {
                    let room = &team.rooms[r];
                    u.last.borrow().get(&room.id).copied().unwrap_or(0) >= room.newest.get()
                })
            })
    };
    while !caught_up() && drain_started.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = procfs::sample(server.pid)
        .map(|s| s.cpu)
        .unwrap_or_default()
        - cpu_before;
    let self_cpu = procfs::sample_self().cpu.saturating_sub(self_before);
    let lost: u64 = team
        .users
        .iter()
        .map(|u| u.sent.get().saturating_sub(u.echoed.get()))
        .sum();
    let behind: u64 = team
        .users
        .iter()
        .map(|u| {
            u.rooms
                .iter()
                .map(|&r| {
                    let room = &team.rooms[r];
                    let seen = u.last.borrow().get(&room.id).copied().unwrap_or(0);
                    room.newest.get().saturating_sub(seen)
                })
                .sum::<u64>()
        })
        .sum();
    let sent: u64 = team.users.iter().map(|u| u.sent.get()).sum::<u64>() - sent_before;
    let latency = stats
        .latency
        .borrow()
        .as_ref()
        .map(Latency::of)
        .unwrap_or_default();
    let history = stats
        .history
        .borrow()
        .as_ref()
        .map(Latency::of)
        .unwrap_or_default();
    let window_s = window.as_secs_f64();
    let missing = lost + behind + stats.gaps.get();
    let ok = latency.p99_ms < KNEE_P99_MS
        && missing == 0
        && stats.duplicates.get() == 0
        && stats.errors.get() == 0
        && stats.history_gaps.get() == 0;
    let memberships: usize = team.users.iter().map(|u| u.rooms.len()).sum();
    json!({
        "scenario": "team",
        "target": "daehwa",
        "users": n,
        "rooms": team.rooms.len(),
        "direct_rooms": team.rooms.iter().filter(|r| r.direct).count(),
        "memberships": memberships,
        "window_s": window_s,
        "sent": sent,
        "msgs_per_s": sent as f64 / window_s,
        "deliveries_per_s": stats.deliveries.get() as f64 / window_s,
        "latency": latency,
        "history": history,
        "history_reads": stats.history_reads.get(),
        "history_gaps": stats.history_gaps.get(),
        "joins": stats.joins.get(),
        "leaves": stats.leaves.get(),
        "reconnects": stats.reconnects.get(),
        "lost": lost,
        "behind": behind,
        "gaps": stats.gaps.get(),
        "duplicates": stats.duplicates.get(),
        "errors": stats.errors.get(),
        "first_error": stats.first_error.borrow().clone(),
        "exactly_once_in_order": missing == 0 && stats.duplicates.get() == 0,
        "server_cpu_share": cpu.as_secs_f64() / (window_s + drain_started.elapsed().as_secs_f64()),
        "loadgen_cpu_share": self_cpu.as_secs_f64() / (window_s + drain_started.elapsed().as_secs_f64()),
        "server_rss_peak_mib": peak.mib(server.pid),
        "loadavg_before": load_before,
        "loadavg_after": procfs::loadavg(),
        "ok": ok,
    })
}

/// The ramp: a step per entry of `--users`, until one fails.
pub async fn team(common: &Common, options: &TeamOptions) -> Result<(), BoxError> {
    // Set-up (registration hashes most of all) runs on both cores; each step pins the
    // server to its core first.
    let mut programs = common.programs.clone();
    let pin = programs.server_cpu.take();
    programs
        .daehwa_keys
        .push("limits.concurrent_other_hashes=2".into());
    let dir = servers::fresh_dir(&programs, "team-daehwa")?;
    let server = Server::daehwa(
        &programs,
        &dir,
        &DaehwaConfig::default(),
        servers::DEFAULT_LOG,
        None,
    )?;
    let mut rng = Rng(options.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut team = Team {
        addr: server.addr,
        api: Api::new(server.addr),
        users: Vec::new(),
        rooms: Vec::new(),
        room_index: HashMap::new(),
        visitable: Vec::new(),
        stats: Stats::default(),
    };
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut shared: Option<Rc<Team>> = None;
    for &n in &options.users {
        let from = shared.as_ref().map_or(0, |t| t.users.len());
        if n <= from {
            continue;
        }
        server.pin(None)?;
        let setup = Instant::now();
        // The connection tasks hold the team; growing it needs it back.
        if let Some(rc) = shared.take() {
            for task in tasks.drain(..) {
                task.abort();
                let _ = task.await;
            }
            team = Rc::try_unwrap(rc).map_err(|_| "the team is still shared")?;
        }
        eprintln!("team: registering users {from}..{n}");
        grow(&mut team, from..n, &mut rng).await?;
        let rc = Rc::new(team);
        // Everyone reconnects (resuming) after a growth: the old tasks were stopped.
        connect_block(&rc, 0..n, &mut tasks).await?;
        eprintln!(
            "team: {n} users set up in {:.0} s",
            setup.elapsed().as_secs_f64()
        );
        server.pin(pin.as_deref())?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let outcome = step(&rc, options, &server, &mut rng).await;
        let ok = outcome["ok"].as_bool() == Some(true);
        record(common, outcome);
        shared = Some(rc);
        team = Team {
            addr: server.addr,
            api: Api::new(server.addr),
            users: Vec::new(),
            rooms: Vec::new(),
            room_index: HashMap::new(),
            visitable: Vec::new(),
            stats: Stats::default(),
        };
        if !ok {
            break;
        }
    }
    for task in tasks {
        task.abort();
    }
    drop(shared);
    server.stop();
    Ok(())
}
