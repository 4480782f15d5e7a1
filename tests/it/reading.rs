//! Read markers and unread counts: they move forward only, a send and a join mark
//! the room read, every connection of the reader hears of a move, and they survive a
//! restart.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{assert_error, Client, Server};

/// The caller's view of `room` in one of the room lists.
async fn room_in(client: &Client, list: &str, room: u64) -> Value {
    let (status, rooms) = client.get(list).await;
    assert_eq!(status, StatusCode::OK, "{rooms}");
    rooms
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["chatSeq"] == room)
        .unwrap_or_else(|| panic!("room {room} not in {list}: {rooms}"))
        .clone()
}

/// (lastMsgId, lastReadMsgId, unreadCount) of `room` for `client`, checked to agree in
/// both lists.
async fn unread(client: &Client, room: u64) -> (u64, u64, u64) {
    let mine = room_in(client, "/api/chatrooms/mine", room).await;
    let all = room_in(client, "/api/chatrooms", room).await;
    let triple = |r: &Value| {
        (
            r["lastMsgId"].as_u64().expect("lastMsgId"),
            r["lastReadMsgId"].as_u64().expect("lastReadMsgId"),
            r["unreadCount"].as_u64().expect("unreadCount"),
        )
    };
    assert_eq!(triple(&mine), triple(&all), "{mine} {all}");
    triple(&mine)
}

async fn mark_read(client: &Client, room: u64, msg: &str) -> (StatusCode, Value) {
    client
        .put(&format!("/api/chatrooms/{room}/read/{msg}"), Value::Null)
        .await
}

#[tokio::test]
async fn markers_move_forward_only_and_unread_counts_follow() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = alice.create_room("public", "general", None).await;
    for n in 1..=5 {
        alice.say(room, &format!("before bob {n}")).await;
    }
    assert_eq!(unread(&alice, room).await, (5, 5, 0), "sending marks read");

    // A newcomer starts with the room read.
    let (status, joined) = bob.join(room, None).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["lastReadMsgId"], 5);
    assert_eq!(joined["unreadCount"], 0);
    assert_eq!(unread(&bob, room).await, (5, 5, 0));

    for n in 6..=8 {
        alice.say(room, &format!("for bob {n}")).await;
    }
    assert_eq!(unread(&bob, room).await, (8, 5, 3));

    assert_eq!(mark_read(&bob, room, "7").await.0, StatusCode::NO_CONTENT);
    assert_eq!(unread(&bob, room).await, (8, 7, 1));
    // Never back.
    assert_eq!(mark_read(&bob, room, "6").await.0, StatusCode::NO_CONTENT);
    assert_eq!(unread(&bob, room).await, (8, 7, 1));
    // Beyond the newest: read up to the newest.
    assert_eq!(
        mark_read(&bob, room, "1000000").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(unread(&bob, room).await, (8, 8, 0));
    // Alice's marker is her own.
    assert_eq!(unread(&alice, room).await, (8, 8, 0));

    // Sending marks the room read up to one's message, over HTTP and the socket.
    alice.say(room, "9").await;
    alice.say(room, "10").await;
    assert_eq!(unread(&bob, room).await, (10, 8, 2));
    assert_eq!(bob.say(room, "11").await, 11);
    assert_eq!(unread(&bob, room).await, (11, 11, 0));
    alice.say(room, "12").await;
    let (mut ws, _) = bob.connect().await;
    ws.chat(room, "13").await;
    assert_eq!(ws.expect("chat").await["msgId"], 13);
    assert_eq!(unread(&bob, room).await, (13, 13, 0));
    assert_eq!(unread(&alice, room).await, (13, 12, 1));

    // Outsiders: 0 and 0 in the list, and no marker to move.
    let seen = room_in(&carol, "/api/chatrooms", room).await;
    assert_eq!(
        (&seen["lastReadMsgId"], &seen["unreadCount"]),
        (&json!(0), &json!(0))
    );
    assert_error(
        &mark_read(&carol, room, "3").await,
        StatusCode::FORBIDDEN,
        "not_a_member",
    );
    assert_error(
        &mark_read(&bob, 999, "3").await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
    for bad in ["0", "-1", "x"] {
        assert_error(
            &mark_read(&bob, room, bad).await,
            StatusCode::BAD_REQUEST,
            "invalid_id",
        );
    }

    // Leaving drops the marker; coming back starts read again.
    bob.delete(&format!("/api/chatrooms/leave/{room}")).await;
    alice.say(room, "14").await;
    let seen = room_in(&bob, "/api/chatrooms", room).await;
    assert_eq!(
        (&seen["lastReadMsgId"], &seen["unreadCount"]),
        (&json!(0), &json!(0))
    );
    bob.join(room, None).await;
    assert_eq!(unread(&bob, room).await, (14, 14, 0));
}

#[tokio::test]
async fn the_read_event_reaches_every_connection_of_the_reader() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room("public", "general", None).await;
    bob.join(room, None).await;
    let (mut alice_ws, _) = alice.connect().await;
    for n in 1..=4 {
        alice.say(room, &format!("hello {n}")).await;
        alice_ws.expect("chat").await;
    }

    // Two tabs: the `rooms` snapshot carries the counts.
    let (mut tab1, rooms1) = bob.connect().await;
    let (mut tab2, rooms2) = bob.connect().await;
    for rooms in [&rooms1, &rooms2] {
        assert_eq!(rooms[0]["chatSeq"], room, "{rooms}");
        assert_eq!(rooms[0]["lastReadMsgId"], 0, "{rooms}");
        assert_eq!(rooms[0]["unreadCount"], 4, "{rooms}");
    }

    assert_eq!(mark_read(&bob, room, "3").await.0, StatusCode::NO_CONTENT);
    for tab in [&mut tab1, &mut tab2] {
        assert_eq!(
            tab.expect("read").await,
            json!({"chatSeq": room, "lastReadMsgId": 3})
        );
    }
    // A marker that does not move says nothing; nor does anyone else hear of it.
    assert_eq!(mark_read(&bob, room, "2").await.0, StatusCode::NO_CONTENT);
    tab1.expect_silence().await;
    alice_ws.expect_silence().await;

    // A reconnecting tab sees the new count.
    let (_, rooms) = bob.connect().await;
    assert_eq!(rooms[0]["lastReadMsgId"], 3, "{rooms}");
    assert_eq!(rooms[0]["unreadCount"], 1, "{rooms}");
}

#[tokio::test]
async fn markers_survive_a_graceful_restart() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data_dir = tmp.path().join("data");
    // No periodic flush before the SIGTERM: the shutdown alone must save the markers.
    let config = tmp.path().join("daehwa.toml");
    std::fs::write(&config, "[storage]\nflush_interval = \"1h\"\n").expect("config");
    let args = ["--config", config.to_str().expect("path")];

    let mut server = Server::start_in(&data_dir, &args).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let first = alice.create_room("public", "first", None).await;
    let second = alice.create_room("public", "second", None).await;
    bob.join(first, None).await;
    bob.join(second, None).await;
    carol.join(first, None).await;
    for n in 1..=6 {
        alice.say(first, &format!("first {n}")).await;
        alice.say(second, &format!("second {n}")).await;
    }
    mark_read(&bob, first, "4").await;
    bob.say(second, "bob's own").await;
    alice.say(second, "after bob").await;
    carol.delete(&format!("/api/chatrooms/leave/{first}")).await;
    let before = [
        unread(&bob, first).await,
        unread(&bob, second).await,
        unread(&alice, first).await,
    ];
    assert_eq!(before, [(6, 4, 2), (8, 7, 1), (6, 6, 0)]);

    let status = server.stop().await;
    assert!(status.success(), "{status:?}\n{}", server.logs());

    let server = Server::start_in(&data_dir, &args).await;
    let (alice, bob, carol) = (alice.at(&server), bob.at(&server), carol.at(&server));
    let after = [
        unread(&bob, first).await,
        unread(&bob, second).await,
        unread(&alice, first).await,
    ];
    assert_eq!(after, before);
    // Carol left: no marker survived for her.
    let seen = room_in(&carol, "/api/chatrooms", first).await;
    assert_eq!(seen["lastReadMsgId"], 0, "{seen}");
    // And markers go on moving, forward only, after the restart.
    assert_eq!(mark_read(&bob, first, "2").await.0, StatusCode::NO_CONTENT);
    assert_eq!(unread(&bob, first).await, (6, 4, 2));
    assert_eq!(mark_read(&bob, first, "6").await.0, StatusCode::NO_CONTENT);
    assert_eq!(unread(&bob, first).await, (6, 6, 0));
}

#[tokio::test]
async fn rooms_carry_the_time_of_their_newest_message_across_a_restart() {
    let tmp = tempfile::TempDir::new().expect("temp dir");
    let data_dir = tmp.path().join("data");
    let mut server = Server::start_in(&data_dir, &[]).await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    let newest_time = |rooms: &Value| -> Value {
        rooms
            .as_array()
            .expect("array")
            .iter()
            .find(|r| r["chatSeq"] == room)
            .expect("the room is listed")["lastMessageAt"]
            .clone()
    };
    let (_, rooms) = alice.get("/api/chatrooms/mine").await;
    assert_eq!(newest_time(&rooms), Value::Null, "no message yet: {rooms}");

    alice.say(room, "first").await;
    alice.say(room, "second").await;
    let history = alice.history(room, -1, 10).await;
    let sent_at = history.last().expect("a message")["createdAt"].clone();
    let (_, rooms) = alice.get("/api/chatrooms").await;
    assert_eq!(newest_time(&rooms), sent_at, "{rooms}");
    let (_ws, snapshot) = alice.connect().await;
    assert_eq!(
        newest_time(&snapshot),
        sent_at,
        "the rooms event: {snapshot}"
    );

    assert!(server.stop().await.success());
    let restarted = Server::start_in(&data_dir, &[]).await;
    let alice = alice.at(&restarted);
    let (_, rooms) = alice.get("/api/chatrooms/mine").await;
    assert_eq!(newest_time(&rooms), sent_at, "after a restart: {rooms}");
}
