//! The session core in-process, on a real `Chat` over a sled store in a temp dir:
//! what it sends, in which order, and when it closes.

use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::*;
use crate::chat::{NewRoom, ResumeFrom};
use crate::config::{Config, Durability};
use crate::model::{MsgId, Seq};

const PATIENCE: Duration = Duration::from_secs(10);

struct World {
    _dir: TempDir,
    chat: Arc<Chat>,
}

async fn world(edit: impl FnOnce(&mut Config)) -> World {
    let dir = TempDir::new().expect("temp dir");
    let mut config = Config::default();
    config.storage.path = dir.path().join("data");
    config.limits.messages_per_second = 1e6;
    config.limits.message_burst = 1_000_000;
    edit(&mut config);
    let (_, chat) = Chat::load(&config).expect("open");
    World { _dir: dir, chat }
}

impl World {
    async fn user(&self, name: &str) -> Caller {
        let view = self
            .chat
            .register(name.into(), "correct horse".into(), None)
            .await
            .expect("register");
        self.chat.authenticate(&view.token).expect("token")
    }

    async fn room(&self, owner: Caller, name: &str) -> RoomId {
        let request = NewRoom {
            chat_type: Some(crate::chat::view::ChatType::Public),
            chat_name: Some(name.into()),
            password: None,
            is_directed: false,
            target_user_id: None,
        };
        let (view, _) = self.chat.create_room(owner, request).await.expect("room");
        view.chat_seq
    }

    async fn say(&self, caller: Caller, room: RoomId, content: &str) -> MsgId {
        let sent = self
            .chat
            .send(caller, room, content.into(), None, Vec::new())
            .await
            .expect("sent");
        sent.view.message.msg_id
    }

    fn session(&self, caller: Caller, resume: &str) -> Session {
        let resume = parse_resume(&self.chat, caller, resume).expect("resume");
        let subscription = self.chat.connect(caller).expect("connect");
        Session::open(Arc::clone(&self.chat), caller, subscription, resume)
    }
}

/// What the session has queued, as (name, data); acknowledgements as
/// ("ack <id>", reply).
fn drain(session: &mut Session) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    while let Some(outgoing) = session.pop() {
        out.push(match outgoing {
            Outgoing::Event(delivery) => (
                delivery.event.name().to_owned(),
                serde_json::to_value(&delivery.event).expect("JSON"),
            ),
            Outgoing::Ack { id, reply } => (
                format!("ack {id}"),
                serde_json::to_value(&reply).expect("JSON"),
            ),
        });
    }
    out
}

/// Steps until the session has something queued (or closes); what it queued.
async fn next(session: &mut Session) -> Result<Vec<(String, Value)>, CloseReason> {
    while !session.has_outgoing() {
        tokio::time::timeout(PATIENCE, session.step())
            .await
            .expect("a step in time")?;
    }
    Ok(drain(session))
}

fn msg_ids(events: &[(String, Value)]) -> Vec<u64> {
    events
        .iter()
        .filter(|(name, _)| name == "chat")
        .map(|(_, data)| data["msgId"].as_u64().expect("msgId"))
        .collect()
}

fn chat(room: RoomId, content: &str, client_msg_id: Option<&str>) -> Result<Command, ErrorEvent> {
    Ok(Command::Chat {
        room_id: room,
        content: content.into(),
        client_msg_id: client_msg_id.map(Into::into),
        attachments: Vec::new(),
    })
}

#[tokio::test]
async fn rooms_first_then_live_events() {
    let w = world(|_| {}).await;
    let alice = w.user("alice").await;
    let room = w.room(alice, "general").await;
    let mut session = w.session(alice, "");
    let first = drain(&mut session);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, "rooms");
    assert_eq!(first[0].1[0]["chatSeq"], room.get());

    session.command(chat(room, "hi", None), None);
    assert!(
        !session.has_outgoing(),
        "a new message comes through the bus"
    );
    let events = next(&mut session).await.expect("open");
    assert_eq!(events[0].0, "chat");
    assert_eq!(events[0].1["content"], "hi");
}

#[tokio::test]
async fn a_replay_comes_before_live_events_without_duplicates() {
    let w = world(|_| {}).await;
    let alice = w.user("alice").await;
    let room = w.room(alice, "general").await;
    for n in 1..=5 {
        w.say(alice, room, &format!("m{n}")).await;
    }
    let mut session = w.session(alice, &format!("{room}:2"));
    // Published after the subscription, before the replay is read: both in the
    // replay and in the queue.
    w.say(alice, room, "m6").await;
    w.say(alice, room, "m7").await;
    assert!(
        !session.accepts_commands(),
        "no command before the replay is sent"
    );
    let mut seen = Vec::new();
    while seen.len() < 6 {
        seen.extend(next(&mut session).await.expect("open"));
    }
    assert_eq!(seen[0].0, "rooms");
    assert_eq!(msg_ids(&seen), [3, 4, 5, 6, 7]);
    assert!(session.accepts_commands());
    // The queued live copies of 6 and 7 are dropped; 8 comes through.
    w.say(alice, room, "m8").await;
    assert_eq!(msg_ids(&next(&mut session).await.expect("open")), [8]);
}

#[tokio::test]
async fn resume_pairs_are_deduplicated_and_capped() {
    let w = world(|_| {}).await;
    let alice = w.user("alice").await;
    let room = w.room(alice, "general").await;
    assert_eq!(
        parse_resume(&w.chat, alice, &format!("{room}:5,{room}:3,{room}:9,")).expect("valid"),
        [(room, ResumeFrom::Msg(MsgId::new(3)))]
    );
    assert_eq!(parse_resume(&w.chat, alice, "").expect("valid"), []);
    assert_eq!(
        parse_resume(&w.chat, alice, &format!("{room}:5:9,{room}:4:7,{room}:2")).expect("valid"),
        [(room, ResumeFrom::Seq(Seq::new(7)))],
        "the earlier change; a change number wins over a message id"
    );
    for bad in ["3", "3:x", "a:1", "3:-1", "1:2:x", "1:2:3:4", "1::3"] {
        assert!(parse_resume(&w.chat, alice, bad).is_err(), "{bad}");
    }
    // One room of alice's, and room for rooms she has just left: no more.
    let most = 1 + resume::RESUME_EXTRA_PAIRS;
    let pairs = |n: usize| {
        (1..=n as u64)
            .map(|r| format!("{r}:0"))
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(
        parse_resume(&w.chat, alice, &pairs(most))
            .expect("valid")
            .len(),
        most
    );
    let refused = parse_resume(&w.chat, alice, &pairs(most + 1)).expect_err("too many");
    assert_eq!(refused.code(), "invalid_resume");
    // The same pair many times is one pair.
    let repeated = vec![format!("{room}:0"); 15_000].join(",");
    assert_eq!(
        parse_resume(&w.chat, alice, &repeated).expect("valid"),
        [(room, ResumeFrom::Msg(MsgId::ZERO))]
    );
}

#[tokio::test]
async fn the_replay_is_bounded_in_all() {
    let w = world(|c| c.limits.replay_total_max = 5).await;
    let alice = w.user("alice").await;
    let first = w.room(alice, "first").await;
    let second = w.room(alice, "second").await;
    for n in 0..4 {
        w.say(alice, first, &format!("a{n}")).await;
        w.say(alice, second, &format!("b{n}")).await;
    }
    let mut session = w.session(alice, &format!("{first}:0,{second}:0"));
    let mut seen = Vec::new();
    while !seen.iter().any(|(name, _)| name == "resync") {
        seen.extend(next(&mut session).await.expect("open"));
    }
    // Four of the first room fit in five; the second's four do not: resync.
    assert_eq!(msg_ids(&seen), [1, 2, 3, 4]);
    let resync = &seen.last().expect("resync").1;
    assert_eq!(resync["chatSeq"], second.get());
    assert_eq!(resync["lastMsgId"], 4);
}

#[tokio::test]
async fn a_logout_during_a_replay_closes_at_once() {
    let w = world(|_| {}).await;
    let alice = w.user("alice").await;
    let room = w.room(alice, "general").await;
    for n in 0..(3 * MAX_BATCH) {
        w.say(alice, room, &format!("m{n}")).await;
    }
    let mut session = w.session(alice, &format!("{room}:0"));
    drain(&mut session);
    let batch = next(&mut session).await.expect("open");
    assert_eq!(batch.len(), MAX_BATCH, "the replay goes out in batches");
    w.chat.logout(alice).expect("logout");
    assert_eq!(
        session.step().await.expect_err("closed"),
        CloseReason::LoggedOut
    );
}

#[tokio::test]
async fn a_full_queue_closes_the_session_as_a_slow_consumer() {
    let w = world(|c| c.limits.ws_send_queue = 2).await;
    let alice = w.user("alice").await;
    let room = w.room(alice, "general").await;
    let mut session = w.session(alice, "");
    drain(&mut session);
    for n in 0..3 {
        w.say(alice, room, &format!("m{n}")).await;
    }
    assert_eq!(
        next(&mut session).await.expect_err("closed"),
        CloseReason::SlowConsumer
    );
}

#[tokio::test]
async fn refusals_are_error_events_or_acknowledgements() {
    let w = world(|_| {}).await;
    let alice = w.user("alice").await;
    let room = w.room(alice, "general").await;
    let mut session = w.session(alice, "");
    drain(&mut session);

    session.command(chat(RoomId::new(4242), "lost", None), None);
    let events = drain(&mut session);
    assert_eq!(events[0].0, "error");
    assert_eq!(events[0].1["error"], "room_not_found");
    assert_eq!(events[0].1["ref"]["chatSeq"], 4242);

    session.command(chat(RoomId::new(4242), "lost", None), Some(7));
    let events = drain(&mut session);
    assert_eq!(events[0].0, "ack 7");
    assert_eq!(events[0].1["error"], "room_not_found");

    session.command(chat(room, "kept", Some("c-1")), Some(8));
    let events = drain(&mut session);
    assert_eq!(events[0].0, "ack 8");
    assert_eq!(events[0].1["msgId"], 1);
    assert_eq!(events[0].1["clientMsgId"], "c-1");
    // The sender gets the message like every member, too.
    assert_eq!(msg_ids(&next(&mut session).await.expect("open")), [1]);
    // A resend without an acknowledgement: the original, to the sender alone.
    session.command(chat(room, "kept", Some("c-1")), None);
    assert_eq!(msg_ids(&drain(&mut session)), [1]);
}

#[tokio::test]
async fn sync_mode_answers_in_order_within_the_window() {
    let w = world(|c| c.storage.durability = Durability::Sync).await;
    let alice = w.user("alice").await;
    let room = w.room(alice, "general").await;
    let mut session = w.session(alice, "");
    drain(&mut session);
    for n in 0..MAX_WAITING {
        assert!(session.accepts_commands());
        session.command(chat(room, &format!("m{n}"), None), Some(n as AckId));
    }
    assert!(
        !session.accepts_commands(),
        "a full window reads no further command"
    );
    assert!(
        !session.has_outgoing(),
        "nothing is answered before the disk"
    );
    w.chat.flush().await.expect("flush");
    let mut acks = Vec::new();
    let mut delivered = Vec::new();
    while acks.len() < MAX_WAITING || delivered.len() < MAX_WAITING {
        for (name, data) in next(&mut session).await.expect("open") {
            if name == "chat" {
                delivered.push(data["msgId"].as_u64().expect("msgId"));
            } else {
                assert_eq!(name, format!("ack {}", acks.len()));
                acks.push(data["msgId"].as_u64().expect("msgId"));
            }
        }
    }
    let expected: Vec<u64> = (1..=MAX_WAITING as u64).collect();
    assert_eq!(acks, expected, "acknowledged in order");
    assert_eq!(delivered, expected, "delivered in order");
    assert!(session.accepts_commands());
}

/// Issue 13's bug: in `sync` mode a resend of a stored `clientMsgId` waited for a
/// batch that no flush would write, and was never answered.
#[tokio::test]
async fn sync_mode_answers_a_resend_of_a_stored_message() {
    let w = world(|c| c.storage.durability = Durability::Sync).await;
    let alice = w.user("alice").await;
    let room = w.room(alice, "general").await;
    let mut session = w.session(alice, "");
    drain(&mut session);
    session.command(chat(room, "once", Some("dup-1")), None);
    w.chat.flush().await.expect("flush");
    assert_eq!(msg_ids(&next(&mut session).await.expect("open")), [1]);

    session.command(chat(room, "once", Some("dup-1")), None);
    // No flush: nothing new waits for the disk, and the answer comes anyway.
    assert_eq!(msg_ids(&next(&mut session).await.expect("open")), [1]);
}

#[tokio::test]
async fn a_resume_by_change_number_replays_the_log_once() {
    let w = world(|_| {}).await;
    let alice = w.user("alice").await;
    let room = w.room(alice, "general").await;
    for n in 1..=5 {
        w.say(alice, room, &format!("m{n}")).await;
    }
    let mut session = w.session(alice, &format!("{room}:1:3"));
    w.say(alice, room, "m6").await;
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.extend(next(&mut session).await.expect("open"));
    }
    assert_eq!(seen[0].0, "rooms");
    assert_eq!(seen[0].1[0]["lastSeq"], 5, "{:?}", seen[0]);
    let seqs: Vec<u64> = seen[1..]
        .iter()
        .map(|(_, data)| data["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [4, 5, 6], "LASTMSGID is not used, LASTSEQ is");
    w.say(alice, room, "m7").await;
    assert_eq!(msg_ids(&next(&mut session).await.expect("open")), [7]);
}
