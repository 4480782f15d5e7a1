//! Edits, deletes, reactions, typing, presence and mentions, end to end: each
//! endpoint and event, who may, the errors; and resume after changes made while
//! away.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{assert_error, Client, Server, Ws};

/// A room of alice (owner) with bob and carol, and its first message by bob.
async fn room_with_message(server: &Server) -> (Client, Client, Client, u64, u64) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = alice.create_room("public", "general", None).await;
    bob.join(room, None).await;
    carol.join(room, None).await;
    let msg = bob.say(room, "helo").await;
    (alice, bob, carol, room, msg)
}

fn path(room: u64, msg: u64) -> String {
    format!("/api/chatrooms/{room}/messages/{msg}")
}

fn reaction(room: u64, msg: u64, emoji: &str) -> String {
    let encoded: String = emoji
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b':' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{}/reactions/{encoded}", path(room, msg))
}

/// The newest message of a room as history shows it.
async fn newest(client: &Client, room: u64) -> Value {
    client.history(room, -1, 1).await.pop().expect("a message")
}

async fn last_seq(client: &Client, room: u64) -> u64 {
    let (_, rooms) = client.get("/api/chatrooms/mine").await;
    rooms
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["chatSeq"] == room)
        .expect("room")["lastSeq"]
        .as_u64()
        .expect("lastSeq")
}

#[tokio::test]
async fn edits_deletes_and_reactions_reach_the_room_and_history() {
    let server = Server::start().await;
    let (alice, bob, _carol, room, msg) = room_with_message(&server).await;
    let (mut alice_ws, _) = alice.connect().await;

    let edited = bob
        .patch(&path(room, msg), json!({"content": "hello @alice"}))
        .await;
    assert_eq!(edited.0, StatusCode::OK, "{}", edited.1);
    assert_eq!(edited.1["content"], "hello @alice");
    assert!(edited.1["editedAt"].is_string(), "{}", edited.1);
    assert_eq!(edited.1["mentions"], json!([alice.user_id]));
    let event = alice_ws.expect("message edited").await;
    assert_eq!(event["msgId"], msg);
    assert_eq!(event["chatSeq"], room);
    assert_eq!(event["seq"], 2);
    assert_eq!(event["content"], "hello @alice");
    assert_eq!(event["mentions"], json!([alice.user_id]));
    let shown = newest(&alice, room).await;
    assert_eq!(shown["content"], "hello @alice");
    assert_eq!(shown["editedAt"], edited.1["editedAt"]);
    assert_eq!(
        shown["seq"], 1,
        "a message's seq is the change that posted it"
    );

    // Reactions: idempotent, aggregated, announced once.
    for _ in 0..2 {
        assert_eq!(
            alice.put(&reaction(room, msg, "👍"), Value::Null).await.0,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        bob.put(&reaction(room, msg, "👍"), Value::Null).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        bob.put(&reaction(room, msg, ":tada:"), Value::Null).await.0,
        StatusCode::NO_CONTENT
    );
    let first = alice_ws.expect("reaction").await;
    assert_eq!(
        first,
        json!({"chatSeq": room, "seq": 3, "msgId": msg, "emoji": "👍", "userId": alice.user_id, "added": true})
    );
    assert_eq!(alice_ws.expect("reaction").await["userId"], bob.user_id);
    assert_eq!(alice_ws.expect("reaction").await["emoji"], ":tada:");
    assert_eq!(
        newest(&bob, room).await["reactions"],
        json!([
            {"emoji": "👍", "count": 2, "userIds": [alice.user_id, bob.user_id]},
            {"emoji": ":tada:", "count": 1, "userIds": [bob.user_id]}
        ])
    );
    assert_eq!(
        alice.delete(&reaction(room, msg, "👍")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        alice.delete(&reaction(room, msg, "👍")).await.0,
        StatusCode::NO_CONTENT
    );
    let removed = alice_ws.expect("reaction").await;
    assert_eq!(
        (removed["added"].clone(), removed["seq"].clone()),
        (json!(false), json!(6))
    );
    alice_ws.expect_silence().await;

    // The owner takes bob's message back: a tombstone, its text gone.
    assert_eq!(
        alice.delete(&path(room, msg)).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        alice_ws.expect("message deleted").await,
        json!({"chatSeq": room, "seq": 7, "msgId": msg, "byUserId": alice.user_id})
    );
    let tombstone = newest(&bob, room).await;
    assert_eq!(tombstone["deleted"], true);
    assert_eq!(tombstone["deletedBy"], alice.user_id);
    assert!(tombstone.get("content").is_none(), "{tombstone}");
    assert_eq!(tombstone["reactions"], json!([]));
    // Deleting again changes nothing.
    assert_eq!(bob.delete(&path(room, msg)).await.0, StatusCode::NO_CONTENT);
    alice_ws.expect_silence().await;
    assert_eq!(last_seq(&alice, room).await, 7);
}

#[tokio::test]
async fn who_may_change_what_and_the_errors() {
    let server = Server::start_with(&["--config", &limits_config()]).await;
    let (alice, bob, carol, room, msg) = room_with_message(&server).await;
    let outsider = server.register("dave").await;
    let before = last_seq(&alice, room).await;

    assert_error(
        &carol
            .patch(&path(room, msg), json!({"content": "mine now"}))
            .await,
        StatusCode::FORBIDDEN,
        "not_allowed",
    );
    assert_error(
        &carol.delete(&path(room, msg)).await,
        StatusCode::FORBIDDEN,
        "not_allowed",
    );
    assert_error(
        &outsider.put(&reaction(room, msg, "👍"), Value::Null).await,
        StatusCode::FORBIDDEN,
        "not_a_member",
    );
    assert_error(
        &bob.patch(&path(room, 99), json!({"content": "x"})).await,
        StatusCode::NOT_FOUND,
        "message_not_found",
    );
    assert_error(
        &bob.put(&reaction(room, 99, "👍"), Value::Null).await,
        StatusCode::NOT_FOUND,
        "message_not_found",
    );
    for bad in ["a", "ab", "👍👍", ":Tada:", "::", ":no spaces:"] {
        assert_error(
            &bob.put(&reaction(room, msg, bad), Value::Null).await,
            StatusCode::BAD_REQUEST,
            "invalid_emoji",
        );
    }
    assert_error(
        &bob.put(
            &format!("{}/reactions/%F0%9F", path(room, msg)),
            Value::Null,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_emoji",
    );
    assert_error(
        &bob.patch(&path(room, msg), json!({"content": ""})).await,
        StatusCode::BAD_REQUEST,
        "empty_message",
    );
    assert_error(
        &bob.patch(&path(room, msg), json!({"content": "x".repeat(300)}))
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "message_too_large",
    );
    assert_error(
        &bob.patch(&path(room, msg), json!({"text": "x"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    // A muted member cannot edit or react, but may take a message back.
    let muted = alice
        .post(
            &format!("/api/chatrooms/{room}/mute/{}", bob.user_id),
            json!({"minutes": 5}),
        )
        .await;
    assert_eq!(muted.0, StatusCode::NO_CONTENT, "{}", muted.1);
    assert_error(
        &bob.patch(&path(room, msg), json!({"content": "edited"}))
            .await,
        StatusCode::FORBIDDEN,
        "muted",
    );
    assert_error(
        &bob.put(&reaction(room, msg, "👍"), Value::Null).await,
        StatusCode::FORBIDDEN,
        "muted",
    );
    assert_eq!(last_seq(&alice, room).await, before, "nothing was logged");
    assert_eq!(newest(&alice, room).await["content"], "helo");
    assert_eq!(bob.delete(&path(room, msg)).await.0, StatusCode::NO_CONTENT);
    // A deleted message is not edited nor reacted to.
    assert_error(
        &alice.put(&reaction(room, msg, "👍"), Value::Null).await,
        StatusCode::CONFLICT,
        "message_deleted",
    );
    let own = alice.say(room, "mine").await;
    alice.delete(&path(room, own)).await;
    assert_error(
        &alice
            .patch(&path(room, own), json!({"content": "back"}))
            .await,
        StatusCode::CONFLICT,
        "message_deleted",
    );
    // Edits share the message rate limit (burst 5 in this config).
    let fresh = alice.say(room, "v0").await;
    let mut limited = None;
    for n in 1..=20 {
        let reply = alice
            .patch(&path(room, fresh), json!({"content": format!("v{n}")}))
            .await;
        if reply.0 != StatusCode::OK {
            limited = Some(reply);
            break;
        }
    }
    assert_error(
        &limited.expect("limited"),
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    );
}

fn limits_config() -> String {
    let dir = std::env::temp_dir().join(format!("daehwa-changes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("limits.toml");
    std::fs::write(
        &path,
        "[limits]\nmax_message_bytes = 200\nmessages_per_second = 0.5\nmessage_burst = 12\n",
    )
    .expect("config");
    path.to_str().expect("path").to_owned()
}

#[tokio::test]
async fn a_blocked_users_reactions_and_typing_do_not_reach_the_blocker() {
    let server = Server::start().await;
    let (alice, bob, carol, room, _) = room_with_message(&server).await;
    let msg = alice.say(room, "hello").await;
    assert_eq!(
        carol
            .put(&format!("/api/users/blocks/{}", bob.user_id), Value::Null)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (mut carol_ws, _) = carol.connect().await;
    let (mut alice_ws, _) = alice.connect().await;
    let (mut bob_ws, _) = bob.connect().await;
    assert_eq!(
        bob.put(&reaction(room, msg, "👍"), Value::Null).await.0,
        StatusCode::NO_CONTENT
    );
    alice_ws.expect_skipping("reaction", &["presence"]).await;
    bob_ws
        .send_json(json!({"event": "typing", "data": {"chatSeq": room}}))
        .await;
    let typing = alice_ws.expect_skipping("typing", &["presence"]).await;
    assert_eq!(
        typing,
        json!({"chatSeq": room, "userId": bob.user_id, "username": "bob"})
    );
    // Carol hears neither, and her history hides bob's reaction.
    assert_eq!(
        alice.put(&reaction(room, msg, "🎉"), Value::Null).await.0,
        StatusCode::NO_CONTENT
    );
    let next = carol_ws.expect_skipping("reaction", &["presence"]).await;
    assert_eq!(
        next["userId"], alice.user_id,
        "bob's came first and was not sent: {next}"
    );
    let shown = newest(&carol, room).await;
    assert_eq!(
        shown["reactions"],
        json!([{"emoji": "🎉", "count": 1, "userIds": [alice.user_id]}])
    );
    let shown = newest(&alice, room).await;
    assert_eq!(shown["reactions"][0]["userIds"], json!([bob.user_id]));
}

#[tokio::test]
async fn typing_reaches_the_other_members_at_most_every_two_seconds() {
    let server = Server::start().await;
    let (alice, bob, _carol, room, _) = room_with_message(&server).await;
    let outsider = server.register("dave").await;
    let (mut alice_ws, _) = alice.connect().await;
    let (mut bob_ws, _) = bob.connect().await;
    let typing = json!({"event": "typing", "data": {"chatSeq": room}});
    bob_ws.send_json(typing.clone()).await;
    let event = alice_ws.expect_skipping("typing", &["presence"]).await;
    assert_eq!(event["userId"], bob.user_id);
    bob_ws.send_json(typing.clone()).await;
    let refused = bob_ws.expect("error").await;
    assert_eq!(refused["error"], "rate_limited", "{refused}");
    assert_eq!(refused["ref"]["event"], "typing");
    alice_ws.expect_silence().await;
    // Not to oneself; not in a room one is not in; not malformed.
    let (mut dave_ws, _) = outsider.connect().await;
    dave_ws.send_json(typing).await;
    assert_eq!(dave_ws.expect("error").await["error"], "not_a_member");
    dave_ws
        .send_json(json!({"event": "typing", "data": {}}))
        .await;
    assert_eq!(dave_ws.expect("error").await["error"], "invalid_frame");
    bob_ws.expect_silence().await;
}

/// Presence with a grace of 1 s (`server.presence_grace`).
#[tokio::test]
async fn presence_goes_online_at_once_and_offline_after_the_grace() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let config = dir.path().join("presence.toml");
    std::fs::write(&config, "[server]\npresence_grace = \"1s\"\n").expect("config");
    let server = Server::start_with(&["--config", config.to_str().expect("path")]).await;
    let (alice, bob, _carol, room, _) = room_with_message(&server).await;
    let outsider = server.register("dave").await;
    let (mut alice_ws, _) = alice.connect().await;
    let (mut dave_ws, _) = outsider.connect().await;

    let (bob_ws, _) = bob.connect().await;
    assert_eq!(
        alice_ws.expect("presence").await,
        json!({"userId": bob.user_id, "status": "online"})
    );
    let (_, members) = alice.get(&format!("/api/chatrooms/{room}/members")).await;
    let online: HashMap<u64, bool> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["userId"].as_u64().expect("id"),
                m["online"].as_bool().expect("online"),
            )
        })
        .collect();
    assert!(online[&bob.user_id]);
    assert!(online[&alice.user_id]);
    // A reload: closed and opened again within the grace, no event.
    drop(bob_ws);
    let (bob_ws, _) = bob.connect().await;
    alice_ws.expect_no_event().await;
    drop(bob_ws);
    assert_eq!(
        alice_ws.expect("presence").await,
        json!({"userId": bob.user_id, "status": "offline"})
    );
    let (_, members) = alice.get(&format!("/api/chatrooms/{room}/members")).await;
    let bob_member = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["userId"] == bob.user_id)
        .cloned()
        .expect("bob");
    assert_eq!(bob_member["online"], false);
    // Dave shares no room with bob: he heard nothing.
    dave_ws.expect_no_event().await;
}

#[tokio::test]
async fn mentions_are_found_counted_and_listed() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data = tmp.path().join("data");
    let mut server = Server::start_in(&data, &[]).await;
    let (alice, bob, carol, room, _) = room_with_message(&server).await;
    let unread_mentions = |rooms: Value| {
        rooms
            .as_array()
            .expect("rooms")
            .iter()
            .find(|r| r["chatSeq"] == room)
            .expect("room")["unreadMentions"]
            .as_u64()
            .expect("unreadMentions")
    };
    let (mut alice_ws, _) = alice.connect().await;
    let first = bob.say(room, "@alice look, and @nobody, and @carol.").await;
    let event = alice_ws.expect("chat").await;
    assert_eq!(event["mentions"], json!([alice.user_id, carol.user_id]));
    // A plain member's @room is plain text; the owner's mentions everyone.
    bob.say(room, "@room hello").await;
    assert_eq!(alice_ws.expect("chat").await["mentions"], json!([]));
    let everyone = alice.say(room, "@room meeting now").await;
    let event = alice_ws.expect("chat").await;
    assert_eq!(event["mentionsRoom"], true);
    // Alice's own message marked the room read for her, past bob's mention.
    assert_eq!(unread_mentions(alice.get("/api/chatrooms/mine").await.1), 0);
    assert_eq!(unread_mentions(carol.get("/api/chatrooms/mine").await.1), 2);
    assert_eq!(unread_mentions(bob.get("/api/chatrooms/mine").await.1), 1);

    let (status, page) = carol.get("/api/users/me/mentions?limit=1").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["mentions"][0]["msgId"], everyone);
    let next = page["nextBefore"].as_str().expect("more").to_owned();
    let (_, page) = carol
        .get(&format!("/api/users/me/mentions?limit=1&before={next}"))
        .await;
    assert_eq!(page["mentions"][0]["msgId"], first);
    let (_, page) = carol
        .get(&format!(
            "/api/users/me/mentions?before={}",
            page["nextBefore"].as_str().expect("cursor")
        ))
        .await;
    assert_eq!(page, json!({"mentions": [], "nextBefore": null}));

    // Reading past a mention clears it; an edit that drops one takes it back.
    assert_eq!(
        carol
            .put(
                &format!("/api/chatrooms/{room}/read/{everyone}"),
                Value::Null
            )
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(unread_mentions(carol.get("/api/chatrooms/mine").await.1), 0);
    bob.patch(&path(room, first), json!({"content": "never mind"}))
        .await;
    alice
        .patch(&path(room, everyone), json!({"content": "meeting now"}))
        .await;
    assert_eq!(unread_mentions(bob.get("/api/chatrooms/mine").await.1), 0);
    carol.say(room, "@bob one more thing").await;
    let (_, page) = alice.get("/api/users/me/mentions").await;
    let ids: Vec<u64> = page["mentions"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["msgId"].as_u64().expect("id"))
        .collect();
    assert!(ids.is_empty(), "{page}");
    assert_error(
        &alice.get("/api/users/me/mentions?limit=0").await,
        StatusCode::BAD_REQUEST,
        "invalid_limit",
    );
    assert_error(
        &alice.get("/api/users/me/mentions?before=x").await,
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    );
    // After a restart the counts come back from the store.
    drop(alice_ws);
    assert!(server.stop().await.success());
    let server = Server::start_in(&data, &[]).await;
    let bob = bob.at(&server);
    assert_eq!(unread_mentions(bob.get("/api/chatrooms/mine").await.1), 1);
}

/// What a client has of a room: each message by id, as events made it.
#[derive(Default, Debug, PartialEq)]
struct Mirror {
    messages: std::collections::BTreeMap<u64, Value>,
    seqs: Vec<u64>,
}

impl Mirror {
    fn apply(&mut self, name: &str, data: &Value) {
        let seq = data["seq"].as_u64().expect("seq");
        self.seqs.push(seq);
        let msg = data["msgId"].as_u64().expect("msgId");
        match name {
            "chat" => {
                self.messages.insert(msg, data.clone());
            }
            "message edited" => {
                let m = self.messages.get_mut(&msg).expect("known");
                m["content"] = data["content"].clone();
                m["editedAt"] = data["editedAt"].clone();
            }
            "message deleted" => {
                let m = self.messages.get_mut(&msg).expect("known");
                *m = json!({"msgId": msg, "deleted": true, "deletedBy": data["byUserId"]});
            }
            "reaction" => {
                let m = self.messages.get_mut(&msg).expect("known");
                let reactions = m["reactions"].as_array_mut().expect("reactions");
                let emoji = data["emoji"].clone();
                let user = data["userId"].clone();
                let at = reactions.iter().position(|r| r["emoji"] == emoji);
                // Set semantics, as docs/API.md asks of clients: a replayed message
                // shows its reactions as they are now, so a reaction event replayed
                // after it may already be in it (or its removal already out of it).
                match (data["added"].as_bool().expect("added"), at) {
                    (true, Some(at)) => {
                        let ids = reactions[at]["userIds"].as_array_mut().expect("ids");
                        if !ids.contains(&user) {
                            ids.push(user);
                        }
                    }
                    (true, None) => reactions.push(json!({"emoji": emoji, "userIds": [user]})),
                    (false, Some(at)) => {
                        let ids = reactions[at]["userIds"].as_array_mut().expect("ids");
                        ids.retain(|u| *u != user);
                        if ids.is_empty() {
                            reactions.remove(at);
                        }
                    }
                    (false, None) => {}
                }
            }
            other => panic!("not a change: {other}"),
        }
    }

    /// The state history shows, in the mirror's terms.
    fn from_history(history: &[Value]) -> std::collections::BTreeMap<u64, Value> {
        history
            .iter()
            .map(|m| {
                let id = m["msgId"].as_u64().expect("id");
                let v = if m["deleted"] == true {
                    json!({"msgId": id, "deleted": true, "deletedBy": m["deletedBy"]})
                } else {
                    json!({
                        "content": m["content"],
                        "editedAt": m.get("editedAt").cloned().unwrap_or(Value::Null),
                        "reactions": m["reactions"].as_array().expect("r").iter()
                            .map(|r| json!({"emoji": r["emoji"], "userIds": r["userIds"]})).collect::<Vec<_>>(),
                    })
                };
                (id, v)
            })
            .collect()
    }

    fn comparable(&self) -> std::collections::BTreeMap<u64, Value> {
        self.messages
            .iter()
            .map(|(id, m)| {
                let v = if m["deleted"] == true {
                    json!({"msgId": id, "deleted": true, "deletedBy": m["deletedBy"]})
                } else {
                    json!({
                        "content": m["content"],
                        "editedAt": m.get("editedAt").cloned().unwrap_or(Value::Null),
                        "reactions": m["reactions"].as_array().expect("r").iter()
                            .map(|r| json!({"emoji": r["emoji"], "userIds": r["userIds"]})).collect::<Vec<_>>(),
                    })
                };
                (*id, v)
            })
            .collect()
    }
}

async fn mirror_until(ws: &mut Ws, mirror: &mut Mirror, seq: u64) {
    while mirror.seqs.last().is_none_or(|&s| s < seq) {
        let (name, data) = ws.next_event().await;
        if name == "presence" || name == "typing" {
            continue;
        }
        mirror.apply(&name, &data);
    }
}

#[tokio::test]
async fn a_resume_gets_every_change_made_while_away_once() {
    let server = Server::start().await;
    let (alice, bob, _carol, room, first) = room_with_message(&server).await;
    let second = alice.say(room, "second").await;
    let kept = alice.say(room, "kept").await;
    // What bob has: history, up to the room's lastSeq now.
    let mut mirror = Mirror::default();
    for m in bob.history(room, -1, 100).await {
        mirror.messages.insert(m["msgId"].as_u64().expect("id"), m);
    }
    let (last_msg, seen) = (kept, last_seq(&alice, room).await);
    assert_eq!(seen, 3);

    // While bob is away: edits, reactions added and removed, deletes, new messages
    // edited and deleted.
    alice
        .patch(&path(room, second), json!({"content": "second, edited"}))
        .await;
    alice.put(&reaction(room, first, "👍"), Value::Null).await;
    alice.put(&reaction(room, kept, "😀"), Value::Null).await;
    alice.delete(&reaction(room, first, "👍")).await;
    alice.put(&reaction(room, first, "🎉"), Value::Null).await;
    let gone = alice.say(room, "to be taken back").await;
    alice.put(&reaction(room, gone, "👍"), Value::Null).await;
    alice
        .patch(
            &path(room, gone),
            json!({"content": "edited then taken back"}),
        )
        .await;
    alice.delete(&path(room, gone)).await;
    alice.delete(&path(room, second)).await;
    let fresh = alice.say(room, "fresh").await;
    alice
        .patch(&path(room, fresh), json!({"content": "fresh, edited"}))
        .await;

    // And more while bob resumes.
    let talker = {
        let alice = alice.clone();
        tokio::spawn(async move {
            for n in 0..10 {
                let id = alice.say(room, &format!("live {n}")).await;
                alice.put(&reaction(room, id, "👍"), Value::Null).await;
            }
        })
    };
    let (mut ws, rooms) = bob
        .connect_resuming(&format!("{room}:{last_msg}:{seen}"))
        .await;
    assert!(rooms[0]["lastSeq"].as_u64().expect("lastSeq") > seen);
    talker.await.expect("talker");
    let end = last_seq(&alice, room).await;
    mirror.seqs.clear();
    mirror_until(&mut ws, &mut mirror, end).await;
    ws.expect_silence().await;
    let mut sorted = mirror.seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, mirror.seqs, "in order, nothing twice");
    // Left out: the reaction and the edit of the message deleted since.
    let skipped: Vec<u64> = ((seen + 1)..=end)
        .filter(|s| !mirror.seqs.contains(s))
        .collect();
    // Left out: the edit of `second` and the reaction and edit of `gone`, both
    // deleted since.
    assert_eq!(skipped, [seen + 1, seen + 7, seen + 8]);
    assert_eq!(
        mirror.comparable(),
        Mirror::from_history(&bob.history(room, -1, 100).await),
        "nothing missing: the mirror is what history shows"
    );
}
