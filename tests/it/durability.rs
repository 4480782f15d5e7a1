//! Delivery and durability against the real process: SIGTERM under load, kill -9
//! cycles at random moments in both durability modes, resume after a dropped
//! connection, idempotent resends.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{send, Client, Server, Ws, PATIENCE};

/// Kill -9 cycles per mode; `DAEHWA_CRASH_CYCLES` runs more (for docs/DURABILITY.md).
fn crash_cycles() -> usize {
    std::env::var("DAEHWA_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

/// The loss bound of `buffered` mode at `flush_interval = 500ms`: the interval, and
/// slack for the flush itself on a loaded machine running a debug build.
const BUFFERED_LOSS_BOUND: Duration = Duration::from_millis(1500);

fn write_config(dir: &Path, durability: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{durability}.toml"));
    std::fs::write(
        &path,
        format!(
            "[storage]\nflush_interval = \"500ms\"\ndurability = \"{durability}\"\n\
             [limits]\nmessages_per_second = 1000000.0\nmessage_burst = 1000000\nreplay_max = 50\n"
        ),
    )
    .expect("config");
    path
}

#[derive(Debug, Clone)]
struct Ack {
    room: u64,
    msg_id: u64,
    content: String,
    at: Instant,
}

/// Sends messages one after the other, each after the echo of the previous one,
/// recording every acknowledgement, until the connection ends.
async fn drive(mut ws: Ws, room: u64, tag: String, acks: Arc<Mutex<Vec<Ack>>>) {
    for n in 1.. {
        let content = format!("{tag}-{n}");
        let frame = json!({"event": "chat", "data": {"chatSeq": room, "content": content, "clientMsgId": content}});
        if ws
            .socket
            .send(Message::text(frame.to_string()))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let frame = match tokio::time::timeout(PATIENCE, ws.socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => return,
                Ok(Some(Ok(_))) => continue,
            };
            let value: Value = serde_json::from_str(frame.as_str()).expect("JSON");
            match value["event"].as_str() {
                Some("chat") if value["data"]["clientMsgId"] == content.as_str() => {
                    acks.lock().expect("acks").push(Ack {
                        room,
                        msg_id: value["data"]["msgId"].as_u64().expect("msgId"),
                        content: content.clone(),
                        at: Instant::now(),
                    });
                    break;
                }
                Some("error") => panic!("refused under load: {value}"),
                _ => continue,
            }
        }
    }
}

struct Setup {
    clients: Vec<Client>,
    rooms: Vec<u64>,
}

async fn setup(server: &Server) -> Setup {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let rooms = vec![
        alice.create_room("public", "one", None).await,
        alice.create_room("public", "two", None).await,
    ];
    for room in &rooms {
        bob.join(*room, None).await;
    }
    Setup {
        clients: vec![alice, bob],
        rooms,
    }
}

/// Starts one driver per (client, room); the shared list of acknowledgements.
async fn load(
    setup: &Setup,
    server: &Server,
    cycle: usize,
) -> (Arc<Mutex<Vec<Ack>>>, Vec<tokio::task::JoinHandle<()>>) {
    let acks = Arc::new(Mutex::new(Vec::new()));
    let mut drivers = Vec::new();
    for (c, client) in setup.clients.iter().enumerate() {
        for room in &setup.rooms {
            let (ws, _) = client.at(server).connect().await;
            drivers.push(tokio::spawn(drive(
                ws,
                *room,
                format!("c{cycle}-u{c}-r{room}"),
                Arc::clone(&acks),
            )));
        }
    }
    (acks, drivers)
}

/// What a check of the store after a crash found.
#[derive(Default, Debug)]
struct Audit {
    acknowledged: usize,
    lost: usize,
    /// The longest time between a lost message's acknowledgement and the crash.
    widest_loss: Duration,
}

/// Checks history against every acknowledgement so far: ids never reused, per room
/// a prefix of what was acknowledged in each run, nothing twice.
async fn audit(
    client: &Client,
    rooms: &[u64],
    acked: &mut BTreeMap<(u64, u64), String>,
    new_acks: &[Ack],
    crashed_at: Instant,
) -> Audit {
    let mut audit = Audit {
        acknowledged: new_acks.len(),
        ..Audit::default()
    };
    let mut stored = HashMap::new();
    for &room in rooms {
        let history = client.full_history(room).await;
        let ids: Vec<u64> = history.iter().map(|(id, _)| *id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "room {room}: ids must increase: {ids:?}"
        );
        let mut contents: Vec<&String> = history.iter().map(|(_, c)| c).collect();
        contents.sort();
        contents.dedup();
        assert_eq!(
            contents.len(),
            history.len(),
            "room {room}: a message is stored twice"
        );
        stored.extend(
            history
                .into_iter()
                .map(|(id, content)| ((room, id), content)),
        );
    }
    // Earlier runs' surviving messages are all still there, unchanged.
    for (key, content) in acked.iter() {
        assert_eq!(
            stored.get(key),
            Some(content),
            "message {key:?} changed or vanished after a restart"
        );
    }
    let mut lost_per_room: HashMap<u64, u64> = HashMap::new();
    for ack in new_acks {
        match stored.get(&(ack.room, ack.msg_id)) {
            Some(content) => {
                assert_eq!(
                    content, &ack.content,
                    "msgId {} of room {} was handed out twice",
                    ack.msg_id, ack.room
                );
                if let Some(first_lost) = lost_per_room.get(&ack.room) {
                    assert!(
                        ack.msg_id < *first_lost,
                        "room {}: a hole before msgId {first_lost}",
                        ack.room
                    );
                }
                acked.insert((ack.room, ack.msg_id), ack.content.clone());
            }
            None => {
                audit.lost += 1;
                audit.widest_loss = audit
                    .widest_loss
                    .max(crashed_at.saturating_duration_since(ack.at));
                let first = lost_per_room.entry(ack.room).or_insert(ack.msg_id);
                *first = (*first).min(ack.msg_id);
            }
        }
    }
    // Prefix: nothing acknowledged after a lost message of the same room survived.
    for ack in new_acks {
        if let Some(first_lost) = lost_per_room.get(&ack.room) {
            if ack.msg_id > *first_lost {
                assert!(
                    !stored.contains_key(&(ack.room, ack.msg_id)),
                    "room {}: msgId {} survived after a lost {first_lost}",
                    ack.room,
                    ack.msg_id
                );
            }
        }
    }
    audit
}

async fn kill_cycles(durability: &str) {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let config = write_config(tmp.path(), durability);
    let args = ["--config", config.to_str().expect("path")];
    let data_dir = tmp.path().join("data");
    let mut server = Server::start_in(&data_dir, &args).await;
    let setup = setup(&server).await;
    let mut acked = BTreeMap::new();
    let mut totals = Audit::default();
    let cycles = crash_cycles();
    for cycle in 0..cycles {
        let (acks, drivers) = load(&setup, &server, cycle).await;
        // The load is under way once something is acknowledged (a slow machine may
        // take a while to get there).
        let started = Instant::now();
        while acks.lock().expect("acks").is_empty() && started.elapsed() < PATIENCE {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Up to several flush intervals under load: a flush that stops firing under
        // load shows as a loss window far beyond the bound.
        let run_for = Duration::from_millis(rand::rng().random_range(200..3000));
        tokio::time::sleep(run_for).await;
        server.kill().await;
        let crashed_at = Instant::now();
        for driver in drivers {
            driver.await.expect("driver");
        }
        server = Server::start_in(&data_dir, &args).await;
        let client = setup.clients[0].at(&server);
        let new_acks = acks.lock().expect("acks").clone();
        assert!(
            !new_acks.is_empty(),
            "cycle {cycle}: no message was acknowledged"
        );
        let audit = audit(&client, &setup.rooms, &mut acked, &new_acks, crashed_at).await;
        totals.acknowledged += audit.acknowledged;
        totals.lost += audit.lost;
        totals.widest_loss = totals.widest_loss.max(audit.widest_loss);
    }
    eprintln!(
        "durability={durability}: {cycles} kill -9 cycles, {} messages acknowledged, {} lost, widest loss window {} ms",
        totals.acknowledged,
        totals.lost,
        totals.widest_loss.as_millis()
    );
    match durability {
        "sync" => assert_eq!(totals.lost, 0, "sync mode lost acknowledged messages"),
        _ => assert!(
            totals.widest_loss <= BUFFERED_LOSS_BOUND,
            "buffered mode lost a message acknowledged {} ms before the crash",
            totals.widest_loss.as_millis()
        ),
    }
    // After all those crashes, a graceful stop and start still loses nothing.
    assert!(server.stop().await.success());
}

#[tokio::test]
async fn kill_9_in_sync_mode_loses_nothing_acknowledged() {
    kill_cycles("sync").await;
}

#[tokio::test]
async fn kill_9_in_buffered_mode_loses_only_the_last_interval() {
    kill_cycles("buffered").await;
}

async fn sigterm_under_load(durability: &str) {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let config = write_config(tmp.path(), durability);
    let args = ["--config", config.to_str().expect("path")];
    let data_dir = tmp.path().join("data");
    let mut server = Server::start_in(&data_dir, &args).await;
    let setup = setup(&server).await;
    let (acks, drivers) = load(&setup, &server, 0).await;
    let started = Instant::now();
    while acks.lock().expect("acks").len() < 20 && started.elapsed() < PATIENCE {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = server.stop().await;
    assert!(status.success(), "{status:?}\n{}", server.logs());
    for driver in drivers {
        driver.await.expect("driver");
    }
    let server = Server::start_in(&data_dir, &args).await;
    let new_acks = acks.lock().expect("acks").clone();
    let mut acked = BTreeMap::new();
    let audit = audit(
        &setup.clients[0].at(&server),
        &setup.rooms,
        &mut acked,
        &new_acks,
        Instant::now(),
    )
    .await;
    assert!(audit.acknowledged > 10, "too little load: {audit:?}");
    assert_eq!(
        audit.lost, 0,
        "SIGTERM lost acknowledged messages: {audit:?}"
    );
}

#[tokio::test]
async fn sigterm_under_load_loses_nothing_buffered() {
    sigterm_under_load("buffered").await;
}

#[tokio::test]
async fn sigterm_under_load_loses_nothing_sync() {
    sigterm_under_load("sync").await;
}

/// All `chat` events up to and including `until_msg_id` in `room`, in arrival order.
async fn chats_until(ws: &mut Ws, room: u64, until_msg_id: u64) -> Vec<u64> {
    let mut seen = Vec::new();
    while seen.last() != Some(&until_msg_id) {
        let (event, data) = ws.next_event().await;
        assert_eq!(event, "chat", "{data}");
        if data["chatSeq"] == room {
            seen.push(data["msgId"].as_u64().expect("id"));
        }
    }
    seen
}

#[tokio::test]
async fn resume_replays_what_was_missed_once_and_in_order() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let config = write_config(tmp.path(), "buffered");
    let server = Server::start_with(&["--config", config.to_str().expect("path")]).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room("public", "general", None).await;
    bob.join(room, None).await;

    let (mut ws, _) = bob.connect().await;
    for n in 1..=3 {
        alice.say(room, &format!("seen {n}")).await;
    }
    assert_eq!(chats_until(&mut ws, room, 3).await, [1, 2, 3]);
    drop(ws);
    for n in 4..=8 {
        alice.say(room, &format!("missed {n}")).await;
    }

    // Alice keeps talking while Bob reconnects and resumes.
    let talker = {
        let alice = alice.clone();
        tokio::spawn(async move {
            for n in 9..=40 {
                alice.say(room, &format!("live {n}")).await;
            }
        })
    };
    let (mut ws, rooms) = bob.connect_resuming(&format!("{room}:3")).await;
    assert!(rooms[0]["lastMsgId"].as_u64().expect("lastMsgId") >= 8);
    talker.await.expect("talker");
    assert_eq!(
        chats_until(&mut ws, room, 40).await,
        (4..=40).collect::<Vec<_>>(),
        "no hole, no duplicate"
    );
    ws.expect_silence().await;

    // Too far behind for a replay (replay_max = 50): an explicit resync instead.
    for n in 41..=100 {
        alice.say(room, &format!("flood {n}")).await;
    }
    let (mut ws, _) = bob.connect_resuming(&format!("{room}:40")).await;
    let resync = ws.expect("resync").await;
    assert_eq!(
        resync,
        json!({"chatSeq": room, "lastMsgId": 100, "lastSeq": 100})
    );

    // Resuming a room one is not in is refused like any other frame.
    let carol = server.register("carol").await;
    let (mut ws, _) = carol.connect_resuming(&format!("{room}:0")).await;
    assert_eq!(ws.expect("error").await["error"], "not_a_member");
    // A malformed resume is refused before the upgrade.
    let url = format!(
        "{}&resume=oops",
        server.ws_url(&carol.token).replace("ws:", "http:")
    );
    let reply = crate::harness::send(
        reqwest::Client::new()
            .get(url)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    )
    .await;
    crate::harness::assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_resume");
}

#[tokio::test]
async fn resends_with_the_same_client_msg_id_store_one_message() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let config = write_config(tmp.path(), "buffered");
    let args = ["--config", config.to_str().expect("path")];
    let data_dir = tmp.path().join("data");
    let mut server = Server::start_in(&data_dir, &args).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room("public", "general", None).await;
    let other = alice.create_room("public", "other", None).await;
    bob.join(room, None).await;
    let (mut bob_ws, _) = bob.connect().await;

    // Over the socket: the resend is answered to the sender alone, with the original.
    let (mut ws, _) = alice.connect().await;
    let frame = json!({"event": "chat", "data": {"chatSeq": room, "content": "once", "clientMsgId": "k-1"}});
    ws.send_json(frame.clone()).await;
    let first = ws.expect("chat").await;
    ws.send_json(frame).await;
    let again = ws.expect("chat").await;
    assert_eq!(first, again);
    assert_eq!(bob_ws.expect("chat").await["msgId"], first["msgId"]);
    bob_ws.expect_silence().await;

    // Over HTTP: 201, then 200 with the same message.
    let body = json!({"content": "by http", "clientMsgId": "k-2"});
    let created = alice
        .post(&format!("/api/chatrooms/{room}/messages"), body.clone())
        .await;
    assert_eq!(created.0, StatusCode::CREATED);
    let resent = alice
        .post(&format!("/api/chatrooms/{room}/messages"), body.clone())
        .await;
    assert_eq!(resent.0, StatusCode::OK);
    assert_eq!(resent.1, created.1);
    // The same id in another room is a mistake, not a resend.
    let reply = alice
        .post(&format!("/api/chatrooms/{other}/messages"), body.clone())
        .await;
    assert_eq!(reply.0, StatusCode::CONFLICT, "{}", reply.1);
    assert_eq!(reply.1["error"], "client_msg_id_reused");

    // After the flush and after a restart, the id is still known.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        alice
            .post(&format!("/api/chatrooms/{room}/messages"), body.clone())
            .await
            .1,
        created.1
    );
    assert!(server.stop().await.success());
    let server = Server::start_in(&data_dir, &args).await;
    let alice = alice.at(&server);
    let after_restart = alice
        .post(&format!("/api/chatrooms/{room}/messages"), body)
        .await;
    assert_eq!(after_restart.0, StatusCode::OK);
    assert_eq!(after_restart.1, created.1);
    let history = alice.history(room, -1, 100).await;
    assert_eq!(history.len(), 2, "{history:?}");
}

/// In `sync` mode one connection's messages share disk flushes: the connection keeps
/// reading while earlier messages wait, and they are acknowledged in order.
#[tokio::test]
async fn sync_mode_groups_the_messages_of_one_connection() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let config = write_config(tmp.path(), "sync");
    let server = Server::start_with(&["--config", config.to_str().expect("path")]).await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    let (mut ws, _) = alice.connect().await;
    for n in 1..=200 {
        let frame = json!({"event": "chat", "data": {"chatSeq": room, "content": format!("m{n}"), "clientMsgId": format!("c{n}")}});
        ws.socket
            .send(Message::text(frame.to_string()))
            .await
            .expect("send");
    }
    for n in 1..=200u64 {
        let chat = ws.expect("chat").await;
        assert_eq!(chat["msgId"], n);
        assert_eq!(chat["clientMsgId"], format!("c{n}"));
    }
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let flushes: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("daehwa_flushes_total "))
        .and_then(|v| v.parse().ok())
        .expect("flushes_total");
    assert!(
        flushes < 100.0,
        "200 messages took {flushes} flushes: no grouping"
    );
}

/// Unmounts a test's tmpfs when the test ends, however it ends.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A disk that fills up: in `sync` mode the server refuses new messages with 503
/// rather than acknowledging what it cannot store, says so on /readyz, stays up, and
/// every message it did acknowledge is in history.
#[tokio::test]
async fn a_full_disk_in_sync_mode_refuses_instead_of_acknowledging() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&disk)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    }
    let _unmount = Mounted(disk.clone());
    let config = write_config(tmp.path(), "sync");
    let mut server = Server::start_in(
        &disk.join("data"),
        &["--config", config.to_str().expect("path")],
    )
    .await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;

    let content = "x".repeat(16_000);
    let mut acknowledged = 0u64;
    let mut refused = None;
    for n in 0..2000 {
        let reply = alice
            .post(
                &format!("/api/chatrooms/{room}/messages"),
                json!({"content": content, "clientMsgId": format!("m{n}")}),
            )
            .await;
        match reply.0 {
            StatusCode::CREATED => {
                acknowledged += 1;
                assert_eq!(
                    reply.1["msgId"], acknowledged,
                    "acknowledged ids are consecutive"
                );
            }
            _ => {
                refused = Some(reply);
                break;
            }
        }
    }
    let refused = refused.expect("4 MB of disk filled up");
    assert_eq!(refused.0, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.1);
    assert_eq!(refused.1["error"], "storage_unavailable");
    // Refused again, at once, while flushes fail.
    let again = alice
        .post(
            &format!("/api/chatrooms/{room}/messages"),
            json!({"content": "small"}),
        )
        .await;
    assert_eq!(again.0, StatusCode::SERVICE_UNAVAILABLE, "{}", again.1);
    let ready = send(reqwest::Client::new().get(server.url("/readyz"))).await;
    assert_eq!(ready.0, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.1);
    assert!(
        ready.1["problems"][0]
            .as_str()
            .is_some_and(|p| p.contains("flushes are failing")),
        "{}",
        ready.1
    );
    assert_eq!(
        send(reqwest::Client::new().get(server.url("/healthz")))
            .await
            .0,
        StatusCode::OK
    );
    assert!(
        server.logs().contains("flush failed"),
        "the failure is logged"
    );
    // The final flush cannot store what waits either: the exit says so.
    let status = server.stop().await;
    assert!(
        !status.success(),
        "a shutdown that could not store everything must not exit 0"
    );
    assert!(
        server.logs().contains("were not stored"),
        "{}",
        server.logs()
    );

    // With room on the disk again, everything acknowledged is there, in order.
    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&disk)
        .status()
        .is_ok_and(|s| s.success());
    assert!(grown, "remount the tmpfs larger");
    let server = Server::start_in(
        &disk.join("data"),
        &["--config", config.to_str().expect("path")],
    )
    .await;
    let alice = alice.at(&server);
    let ids: Vec<u64> = alice
        .full_history(room)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert!(
        ids.len() as u64 >= acknowledged,
        "lost acknowledged messages: {} of {acknowledged}",
        ids.len()
    );
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "a prefix, without holes"
    );
}

/// Issue 13: in `sync` mode a resend of a `clientMsgId` already stored was never
/// answered (it waited for a batch that no flush would write).
#[tokio::test]
async fn sync_mode_answers_a_resend_of_a_stored_message() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let config = write_config(tmp.path(), "sync");
    let server = Server::start_with(&["--config", config.to_str().expect("path")]).await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    let (mut ws, _) = alice.connect().await;
    let frame = json!({"event": "chat", "data": {"chatSeq": room, "content": "once", "clientMsgId": "dup-1"}});
    ws.send_json(frame.clone()).await;
    let first = ws.expect("chat").await;
    ws.send_json(frame).await;
    assert_eq!(ws.expect("chat").await, first);
    assert_eq!(alice.history(room, -1, 10).await.len(), 1);
}

/// An edit or a reaction the server acknowledged.
#[derive(Debug, Clone)]
enum AckedChange {
    Edit {
        room: u64,
        msg_id: u64,
        content: String,
    },
    React {
        room: u64,
        msg_id: u64,
        user: u64,
    },
}

/// Like [`drive`], and after each acknowledged message, edits it and reacts to it
/// over HTTP, recording what was acknowledged, until the server goes away.
async fn drive_with_changes(
    mut ws: Ws,
    client: Client,
    room: u64,
    tag: String,
    acks: Arc<Mutex<Vec<Ack>>>,
    changes: Arc<Mutex<Vec<AckedChange>>>,
) {
    for n in 1.. {
        let content = format!("{tag}-{n}");
        let frame = json!({"event": "chat", "data": {"chatSeq": room, "content": content, "clientMsgId": content}});
        if ws
            .socket
            .send(Message::text(frame.to_string()))
            .await
            .is_err()
        {
            return;
        }
        let msg_id = loop {
            let frame = match tokio::time::timeout(PATIENCE, ws.socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => return,
                Ok(Some(Ok(_))) => continue,
            };
            let value: Value = serde_json::from_str(frame.as_str()).expect("JSON");
            if value["event"] == "chat" && value["data"]["clientMsgId"] == content.as_str() {
                let msg_id = value["data"]["msgId"].as_u64().expect("msgId");
                acks.lock().expect("acks").push(Ack {
                    room,
                    msg_id,
                    content: content.clone(),
                    at: Instant::now(),
                });
                break msg_id;
            }
        };
        let edited = format!("{content} (edited)");
        let path = format!("/api/chatrooms/{room}/messages/{msg_id}");
        let reply = client
            .http
            .patch(client.url(&path))
            .bearer_auth(&client.token)
            .json(&json!({"content": edited}))
            .send()
            .await;
        match reply {
            Ok(r) if r.status() == StatusCode::OK => {
                changes.lock().expect("changes").push(AckedChange::Edit {
                    room,
                    msg_id,
                    content: edited,
                })
            }
            Ok(r) => panic!("edit refused under load: {}", r.status()),
            Err(_) => return,
        }
        let reply = client
            .http
            .put(client.url(&format!("{path}/reactions/%F0%9F%91%8D")))
            .bearer_auth(&client.token)
            .send()
            .await;
        match reply {
            Ok(r) if r.status() == StatusCode::NO_CONTENT => {
                changes.lock().expect("changes").push(AckedChange::React {
                    room,
                    msg_id,
                    user: client.user_id,
                })
            }
            Ok(r) => panic!("reaction refused under load: {}", r.status()),
            Err(_) => return,
        }
    }
}

/// kill -9 cycles in `sync` mode with edits and reactions in the load: every
/// acknowledged message, edit and reaction is there after the restart.
#[tokio::test]
async fn kill_9_in_sync_mode_loses_no_acknowledged_change() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let config = write_config(tmp.path(), "sync");
    let args = ["--config", config.to_str().expect("path")];
    let data_dir = tmp.path().join("data");
    let mut server = Server::start_in(&data_dir, &args).await;
    let setup = setup(&server).await;
    let mut acked = BTreeMap::new();
    let (mut messages, mut edits, mut reactions) = (0, 0, 0);
    for cycle in 0..crash_cycles().min(4) {
        let acks = Arc::new(Mutex::new(Vec::new()));
        let changes = Arc::new(Mutex::new(Vec::new()));
        let mut drivers = Vec::new();
        for (c, client) in setup.clients.iter().enumerate() {
            for room in &setup.rooms {
                let client = client.at(&server);
                let (ws, _) = client.connect().await;
                drivers.push(tokio::spawn(drive_with_changes(
                    ws,
                    client,
                    *room,
                    format!("x{cycle}-u{c}-r{room}"),
                    Arc::clone(&acks),
                    Arc::clone(&changes),
                )));
            }
        }
        let started = Instant::now();
        while changes.lock().expect("changes").len() < 4 && started.elapsed() < PATIENCE {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(200..1500))).await;
        server.kill().await;
        let crashed_at = Instant::now();
        for driver in drivers {
            driver.await.expect("driver");
        }
        server = Server::start_in(&data_dir, &args).await;
        let client = setup.clients[0].at(&server);
        let new_acks = acks.lock().expect("acks").clone();
        // Messages: compared by their first content; an acknowledged edit replaced it.
        let edited: HashMap<(u64, u64), String> = changes
            .lock()
            .expect("changes")
            .iter()
            .filter_map(|c| match c {
                AckedChange::Edit {
                    room,
                    msg_id,
                    content,
                } => Some(((*room, *msg_id), content.clone())),
                AckedChange::React { .. } => None,
            })
            .collect();
        let mut stored: HashMap<(u64, u64), Value> = HashMap::new();
        for &room in &setup.rooms {
            for m in client
                .history(room, -1, 100)
                .await
                .into_iter()
                .chain(older(&client, room).await)
            {
                stored.insert((room, m["msgId"].as_u64().expect("id")), m);
            }
        }
        for ack in &new_acks {
            let m = stored
                .get(&(ack.room, ack.msg_id))
                .unwrap_or_else(|| panic!("cycle {cycle}: acknowledged message {ack:?} lost"));
            let content = m["content"].as_str().expect("content");
            match edited.get(&(ack.room, ack.msg_id)) {
                Some(edit) => assert_eq!(content, edit, "cycle {cycle}: acknowledged edit lost"),
                None => assert!(
                    content == ack.content || content == format!("{} (edited)", ack.content),
                    "cycle {cycle}: {content:?} for {ack:?}"
                ),
            }
            acked.insert((ack.room, ack.msg_id), ());
        }
        for change in changes.lock().expect("changes").iter() {
            if let AckedChange::React { room, msg_id, user } = change {
                let m = &stored[&(*room, *msg_id)];
                assert_eq!(m["reactions"][0]["emoji"], "👍", "cycle {cycle}: {m}");
                assert!(
                    m["reactions"][0]["userIds"]
                        .as_array()
                        .expect("ids")
                        .contains(&json!(user)),
                    "cycle {cycle}: acknowledged reaction lost: {m}"
                );
                reactions += 1;
            }
        }
        messages += new_acks.len();
        edits += edited.len();
        let _ = crashed_at;
    }
    eprintln!(
        "durability=sync with changes: {messages} messages, {edits} edits, {reactions} reactions acknowledged, 0 lost"
    );
    assert!(edits > 0 && reactions > 0, "the load had no changes");
    assert!(server.stop().await.success());
}

/// Every page of a room's history but the newest.
async fn older(client: &Client, room: u64) -> Vec<Value> {
    let mut all = Vec::new();
    let mut page = client.history(room, -1, 100).await;
    while let Some(first) = page.first() {
        let before = first["msgId"].as_i64().expect("id");
        page = client.history(room, before, 100).await;
        all.extend(page.iter().cloned());
    }
    all
}

/// What is answered outside the message buffer (accounts, rooms, memberships,
/// moderation) is on disk when answered: a kill -9 right after the answers undoes
/// none of it (sled alone would keep it in memory up to its own flush, 500 ms).
#[tokio::test]
async fn answered_accounts_rooms_and_joins_survive_a_kill_9_at_once() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data_dir = tmp.path().join("data");
    let mut server = Server::start_in(&data_dir, &[]).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room("public", "kept", None).await;
    assert_eq!(bob.join(room, None).await.0, StatusCode::OK);
    server.kill().await;

    let server = Server::start_in(&data_dir, &[]).await;
    let bob = bob.at(&server);
    assert_eq!(bob.get("/api/users/me").await.0, StatusCode::OK);
    let mine = bob.get("/api/chatrooms/mine").await.1;
    assert_eq!(mine[0]["chatSeq"], room, "{mine}");
    assert_eq!(mine[0]["memberCount"], 2, "{mine}");
}
