//! History paging: `/api/chatrooms/message/{roomId}/{msgID}/{count}`.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{assert_error, Server};

fn msg_ids(page: &[serde_json::Value]) -> Vec<u64> {
    page.iter()
        .map(|m| m["msgId"].as_u64().expect("msgId"))
        .collect()
}

#[tokio::test]
async fn pages_oldest_first_from_newest_or_before_an_id() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    for n in 1..=25 {
        assert_eq!(
            alice.say(room, &format!("message {n}")).await,
            n,
            "msgIds count 1, 2, 3, …"
        );
    }
    let newest = alice.history(room, -1, 10).await;
    assert_eq!(msg_ids(&newest), (16..=25).collect::<Vec<_>>());
    assert_eq!(newest[9]["content"], "message 25");
    assert_eq!(newest[9]["senderName"], "alice");
    assert_eq!(newest[9]["senderId"], alice.user_id);
    assert_eq!(newest[9]["chatSeq"], room);
    assert!(newest[9]["createdAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    assert_eq!(
        msg_ids(&alice.history(room, 16, 10).await),
        (6..=15).collect::<Vec<_>>()
    );
    assert_eq!(
        msg_ids(&alice.history(room, 6, 10).await),
        (1..=5).collect::<Vec<_>>()
    );
    assert!(alice.history(room, 1, 10).await.is_empty());
    assert_eq!(msg_ids(&alice.history(room, 1000, 3).await), [23, 24, 25]);

    // After the flush the same pages come from disk.
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    assert_eq!(
        msg_ids(&alice.history(room, -1, 100).await),
        (1..=25).collect::<Vec<_>>()
    );
    assert_eq!(
        msg_ids(&alice.history(room, 16, 10).await),
        (6..=15).collect::<Vec<_>>()
    );
    // New messages join the flushed ones without a gap.
    alice.say(room, "after the flush").await;
    assert_eq!(msg_ids(&alice.history(room, -1, 3).await), [24, 25, 26]);
}

#[tokio::test]
async fn refusals() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room("public", "general", None).await;
    let hidden = alice.create_room("private", "hidden", None).await;
    alice.say(room, "hi").await;

    let page = |who: &crate::harness::Client, path: String| {
        let who = who.clone();
        async move { who.get(&path).await }
    };
    for count in ["0", "101", "-5", "many", "99999999999999999999"] {
        assert_error(
            &page(&alice, format!("/api/chatrooms/message/{room}/-1/{count}")).await,
            StatusCode::BAD_REQUEST,
            "invalid_count",
        );
    }
    for before in ["0", "-2", "x"] {
        assert_error(
            &page(&alice, format!("/api/chatrooms/message/{room}/{before}/10")).await,
            StatusCode::BAD_REQUEST,
            "invalid_id",
        );
    }
    assert_error(
        &page(&bob, format!("/api/chatrooms/message/{room}/-1/10")).await,
        StatusCode::FORBIDDEN,
        "not_a_member",
    );
    assert_error(
        &page(&bob, format!("/api/chatrooms/message/{hidden}/-1/10")).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
    assert_error(
        &page(&alice, "/api/chatrooms/message/777/-1/10".into()).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
}

#[tokio::test]
async fn sending_over_http_is_checked() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room("public", "general", None).await;
    let path = format!("/api/chatrooms/{room}/messages");
    let send = |body| alice.post(&path, body);
    assert_error(
        &send(json!({"content": ""})).await,
        StatusCode::BAD_REQUEST,
        "empty_message",
    );
    assert_error(
        &send(json!({"content": "x".repeat(16 * 1024 + 1)})).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "message_too_large",
    );
    assert_eq!(
        send(json!({"content": "x".repeat(16 * 1024)})).await.0,
        StatusCode::CREATED
    );
    assert_error(
        &send(json!({"content": 5})).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    assert_error(
        &bob.post(
            &format!("/api/chatrooms/{room}/messages"),
            json!({"content": "hi"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "not_a_member",
    );
    // Content is stored and returned as text, never interpreted.
    let html = "<script>alert('x')</script> & \u{0} 대화 🙂";
    alice.say(room, html).await;
    assert_eq!(alice.history(room, -1, 1).await[0]["content"], html);
}
