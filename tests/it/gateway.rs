//! The WebSocket gateway: the upgrade, every event, refused frames, isolation.

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{assert_error, send, Server};

#[tokio::test]
async fn the_upgrade_checks_the_token_and_the_headers() {
    let server = Server::start().await;
    let http = reqwest::Client::new();
    let upgrade_with = |url: String, version: &str, key: &str| {
        http.get(url)
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", version)
            .header("sec-websocket-key", key)
    };
    let upgrade = |url: String| upgrade_with(url, "13", "dGhlIHNhbXBsZSBub25jZQ==");
    assert_error(
        &send(upgrade(server.ws_url("nope").replace("ws:", "http:"))).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &send(upgrade(server.url("/ws"))).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let alice = server.register("alice").await;
    let url = server.ws_url(&alice.token).replace("ws:", "http:");
    assert_error(
        &send(http.get(&url)).await,
        StatusCode::BAD_REQUEST,
        "bad_upgrade",
    );
    assert_error(
        &send(upgrade_with(url.clone(), "13", "short")).await,
        StatusCode::BAD_REQUEST,
        "bad_upgrade",
    );
    assert_error(
        &send(upgrade_with(url.clone(), "8", "dGhlIHNhbXBsZSBub25jZQ==")).await,
        StatusCode::UPGRADE_REQUIRED,
        "bad_upgrade",
    );
    // A real client with a real token gets through, and is answered with the
    // accept key of RFC 6455's own example.
    let response = upgrade(url).send().await.expect("upgrade");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        response.headers()["sec-websocket-accept"],
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[tokio::test]
async fn rooms_on_connect_and_chat_both_ways() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room("public", "general", None).await;
    bob.join(room, None).await;

    let (mut alice_ws, rooms) = alice.connect().await;
    assert_eq!(rooms.as_array().expect("array").len(), 1);
    assert_eq!(rooms[0]["chatSeq"], room);
    assert_eq!(rooms[0]["chatName"], "general");
    let (mut bob_ws, _) = bob.connect().await;

    alice_ws
        .send_json(json!({"event": "chat", "data": {"chatSeq": room, "content": "hello", "clientMsgId": "c-1"}}))
        .await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        let chat = ws.expect("chat").await;
        assert_eq!(chat["msgId"], 1);
        assert_eq!(chat["content"], "hello");
        assert_eq!(chat["senderId"], alice.user_id);
        assert_eq!(chat["senderName"], "alice");
        assert_eq!(
            chat["clientMsgId"], "c-1",
            "the sender learns which msgId its message got"
        );
    }
    // A message sent over HTTP reaches the sockets through the bus.
    bob.say(room, "from http").await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        let chat = ws.expect("chat").await;
        assert_eq!(chat["msgId"], 2);
        assert_eq!(chat["content"], "from http");
    }
    assert_eq!(alice.history(room, -1, 10).await.len(), 2);
}

#[tokio::test]
async fn every_connection_of_a_user_gets_every_event() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    let (mut tab1, _) = alice.connect().await;
    let (mut tab2, _) = alice.connect().await;
    tab1.chat(room, "from tab 1").await;
    assert_eq!(tab1.expect("chat").await["content"], "from tab 1");
    assert_eq!(tab2.expect("chat").await["content"], "from tab 1");
}

#[tokio::test]
async fn two_rooms_do_not_see_each_other() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let alice_room = alice.create_room("public", "alice's", None).await;
    let bob_room = bob.create_room("public", "bob's", None).await;
    let (mut alice_ws, _) = alice.connect().await;
    let (mut bob_ws, _) = bob.connect().await;

    alice_ws.chat(alice_room, "for alice's room").await;
    bob_ws.chat(bob_room, "for bob's room").await;
    assert_eq!(alice_ws.expect("chat").await["content"], "for alice's room");
    assert_eq!(bob_ws.expect("chat").await["content"], "for bob's room");
    alice_ws.expect_silence().await;
    bob_ws.expect_silence().await;

    // Writing into a room one is not in is refused, and nothing leaks into it.
    alice_ws.chat(bob_room, "intrusion").await;
    let error = alice_ws.expect("error").await;
    assert_eq!(error["error"], "not_a_member");
    assert_eq!(error["ref"]["chatSeq"], bob_room);
    bob_ws.expect_silence().await;
    assert_eq!(bob.history(bob_room, -1, 10).await.len(), 1);
}

#[tokio::test]
async fn room_events_reach_whom_they_should() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let (mut alice_ws, _) = alice.connect().await;
    let (mut bob_ws, _) = bob.connect().await;
    let (mut carol_ws, _) = carol.connect().await;

    // A public room is announced to everyone.
    let room = alice.create_room("public", "general", None).await;
    for ws in [&mut alice_ws, &mut bob_ws, &mut carol_ws] {
        let new_room = ws.expect("new room").await;
        assert_eq!(new_room["chatSeq"], room);
        assert_eq!(new_room["chatType"], "public");
    }
    // A private room only to its creator, a direct room only to its pair.
    alice.create_room("private", "hidden", None).await;
    assert_eq!(alice_ws.expect("new room").await["chatName"], "hidden");
    alice
        .post(
            "/api/chatrooms/new",
            json!({"isDirected": true, "targetUserId": bob.user_id}),
        )
        .await;
    assert_eq!(alice_ws.expect("new room").await["isDirected"], true);
    assert_eq!(bob_ws.expect("new room").await["isDirected"], true);
    carol_ws.expect_silence().await;

    // join room: to the members, the joiner included.
    bob.join(room, None).await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        let join = ws.expect("join room").await;
        assert_eq!(join["chatSeq"], room);
        assert_eq!(join["userId"], bob.user_id);
        assert_eq!(join["username"], "bob");
        assert_eq!(join["room"]["memberCount"], 2);
    }
    carol_ws.expect_silence().await;

    // user leave: to the members, the one leaving included; then ownership passes.
    alice.delete(&format!("/api/chatrooms/leave/{room}")).await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        let leave = ws.expect("user leave").await;
        assert_eq!(leave["chatSeq"], room);
        assert_eq!(leave["userId"], alice.user_id);
        assert_eq!(leave["reason"], "leave");
        assert_eq!(leave["byUserId"], alice.user_id);
    }
    let role = bob_ws.expect("role change").await;
    assert_eq!(role["userId"], bob.user_id);
    assert_eq!(role["role"], "owner");
    alice_ws.expect_silence().await;
    carol_ws.expect_silence().await;

    // The one who left no longer receives the room's messages.
    bob_ws.chat(room, "alone now").await;
    assert_eq!(bob_ws.expect("chat").await["content"], "alone now");
    alice_ws.expect_silence().await;
}

#[tokio::test]
async fn refused_frames_get_an_error_and_the_connection_goes_on() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    let (mut ws, _) = alice.connect().await;

    let bad_frames = [
        ("not json", "invalid_frame"),
        ("[1,2,3]", "invalid_frame"),
        (r#"{"event":"chat"}"#, "invalid_frame"),
        (
            r#"{"event":"chat","data":{"chatSeq":"one","content":"x"}}"#,
            "invalid_frame",
        ),
        (
            r#"{"event":"chat","data":{"chatSeq":1,"content":7}}"#,
            "invalid_frame",
        ),
        (r#"{"event":"dance","data":{}}"#, "unknown_event"),
        (
            r#"{"event":"chat","data":{"chatSeq":424242,"content":"x"}}"#,
            "room_not_found",
        ),
        (
            r#"{"event":"chat","data":{"chatSeq":1,"content":""}}"#,
            "empty_message",
        ),
    ];
    for (frame, code) in bad_frames {
        ws.send_text(frame).await;
        let error = ws.expect("error").await;
        assert_eq!(error["error"], code, "{frame}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    ws.send_json(
        json!({"event": "chat", "data": {"chatSeq": room, "content": "x".repeat(16 * 1024 + 1)}}),
    )
    .await;
    assert_eq!(ws.expect("error").await["error"], "message_too_large");
    ws.socket
        .send(Message::binary(vec![1, 2, 3]))
        .await
        .expect("send");
    assert_eq!(ws.expect("error").await["error"], "invalid_frame");

    // Still open, still working.
    ws.chat(room, "still here").await;
    assert_eq!(ws.expect("chat").await["content"], "still here");
}

#[tokio::test]
async fn an_oversized_websocket_message_closes_only_that_connection() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    let (mut big, _) = alice.connect().await;
    let (mut other, _) = alice.connect().await;
    big.send_text(&"x".repeat(70 * 1024)).await;
    assert_eq!(big.expect_close().await, Some(1009));
    other.chat(room, "unaffected").await;
    assert_eq!(other.expect("chat").await["content"], "unaffected");
    assert_eq!(alice.get("/api/users/me").await.0, StatusCode::OK);
}

#[tokio::test]
async fn logout_closes_the_sockets_of_that_token() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let (mut ws, _) = alice.connect().await;
    alice.post("/api/auth/logout", json!({})).await;
    assert_eq!(ws.expect_close().await, Some(4001));
}

/// RFC 6455 §5.5.1: a close is answered with a close. Without the echo a client sees
/// 1006 (closed abnormally) for a close it asked for itself.
#[tokio::test]
async fn a_client_close_is_answered_on_both_gateways() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;

    let server = Server::start().await;
    let alice = server.register("alice").await;
    let (mut ws, _) = alice.connect().await;
    let (mut sio, _) = tokio_tungstenite::connect_async(
        server
            .url("/socket.io/?EIO=4&transport=websocket")
            .replace("http:", "ws:"),
    )
    .await
    .expect("socket.io over WebSocket");
    for socket in [&mut ws.socket, &mut sio] {
        socket
            .close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await
            .expect("send the close");
        let echo = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return None,
                }
            }
        })
        .await
        .expect("the server answers in time");
        assert_eq!(echo, Some(1000));
    }
}
