//! Rooms over HTTP: create, list, join, leave, direct rooms, and their refusals.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{assert_error, Server};

fn ids(rooms: &serde_json::Value) -> Vec<u64> {
    rooms
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["chatSeq"].as_u64().expect("chatSeq"))
        .collect()
}

#[tokio::test]
async fn create_list_and_visibility() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;

    let created = alice
        .post(
            "/api/chatrooms/new",
            json!({"chatType": "public", "chatName": "general", "password": "", "isDirected": false}),
        )
        .await;
    assert_eq!(created.0, StatusCode::CREATED);
    assert_eq!(created.1["chatName"], "general");
    assert_eq!(created.1["ownerId"], alice.user_id);
    let general = created.1["chatSeq"].as_u64().expect("id");
    let secret = alice
        .create_room("protected", "secret", Some("open sesame"))
        .await;
    let hidden = alice.create_room("private", "hidden", None).await;

    assert_eq!(
        ids(&alice.get("/api/chatrooms").await.1),
        [general, secret, hidden]
    );
    assert_eq!(
        ids(&bob.get("/api/chatrooms").await.1),
        [general, secret],
        "private rooms are not listed"
    );
    assert_eq!(
        ids(&alice.get("/api/chatrooms/mine").await.1),
        [general, secret, hidden]
    );
    assert_eq!(
        ids(&bob.get("/api/chatrooms/mine").await.1),
        Vec::<u64>::new()
    );
}

#[tokio::test]
async fn create_refusals() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let create = |body| alice.post("/api/chatrooms/new", body);
    assert_error(
        &create(json!({"chatType": "secret", "chatName": "x"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    assert_error(
        &create(json!({"chatName": "x"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_chat_type",
    );
    assert_error(
        &create(json!({"chatType": "public", "chatName": "  "})).await,
        StatusCode::BAD_REQUEST,
        "invalid_chat_name",
    );
    assert_error(
        &create(json!({"chatType": "public", "chatName": "x".repeat(65)})).await,
        StatusCode::BAD_REQUEST,
        "invalid_chat_name",
    );
    assert_error(
        &create(json!({"chatType": "protected", "chatName": "x"})).await,
        StatusCode::BAD_REQUEST,
        "password_required",
    );
    assert_error(
        &create(json!({"chatType": "public", "chatName": "x", "password": "something"})).await,
        StatusCode::BAD_REQUEST,
        "unexpected_password",
    );
    assert_error(
        &create(json!({"chatType": "public", "chatName": 5})).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    assert_error(
        &alice.post_raw("/api/chatrooms/new", "{not json").await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
}

#[tokio::test]
async fn join_public_protected_private() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let general = alice.create_room("public", "general", None).await;
    let secret = alice
        .create_room("protected", "secret", Some("open sesame"))
        .await;
    let hidden = alice.create_room("private", "hidden", None).await;

    let joined = bob.join(general, None).await;
    assert_eq!(joined.0, StatusCode::OK, "{}", joined.1);
    assert_eq!(joined.1["chatSeq"], general);
    assert_eq!(
        joined.1["members"],
        json!([
            {"userId": alice.user_id, "username": "alice", "role": "owner", "online": false},
            {"userId": bob.user_id, "username": "bob", "role": "member", "online": false},
        ])
    );
    let again = bob.join(general, None).await;
    assert_eq!(again.0, StatusCode::OK, "joining twice is harmless");
    assert_eq!(again.1["memberCount"], 2);

    assert_error(
        &bob.join(secret, None).await,
        StatusCode::FORBIDDEN,
        "wrong_password",
    );
    assert_error(
        &bob.join(secret, Some("guess")).await,
        StatusCode::FORBIDDEN,
        "wrong_password",
    );
    assert_eq!(
        bob.join(secret, Some("open sesame")).await.0,
        StatusCode::OK
    );

    // A private room is invisible to outsiders: the same 404 as a room that never was.
    assert_error(
        &bob.join(hidden, None).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
    assert_error(
        &bob.join(9999, None).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
    assert_error(
        &bob.put("/api/chatrooms/join/abc", json!({})).await,
        StatusCode::BAD_REQUEST,
        "invalid_id",
    );
    assert_error(
        &bob.put(
            &format!("/api/chatrooms/join/{general}"),
            json!({"chatSeq": general + 1}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "chat_seq_mismatch",
    );
}

#[tokio::test]
async fn leave_passes_ownership_and_the_last_one_closes_the_room() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = alice.create_room("public", "general", None).await;
    bob.join(room, None).await;
    carol.join(room, None).await;

    assert_eq!(
        alice
            .delete(&format!("/api/chatrooms/leave/{room}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (_, rooms) = bob.get("/api/chatrooms").await;
    assert_eq!(
        rooms[0]["ownerId"], bob.user_id,
        "the oldest member inherits the room"
    );
    assert_error(
        &alice.delete(&format!("/api/chatrooms/leave/{room}")).await,
        StatusCode::CONFLICT,
        "not_a_member",
    );

    bob.delete(&format!("/api/chatrooms/leave/{room}")).await;
    let (_, rooms) = carol.get("/api/chatrooms").await;
    assert_eq!(rooms[0]["ownerId"], carol.user_id);
    carol.delete(&format!("/api/chatrooms/leave/{room}")).await;

    assert_eq!(
        ids(&alice.get("/api/chatrooms").await.1),
        Vec::<u64>::new(),
        "an empty room is closed"
    );
    assert_error(
        &alice.join(room, None).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
}

#[tokio::test]
async fn direct_rooms_are_one_per_pair_and_private() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let direct = json!({"isDirected": true, "targetUserId": bob.user_id});

    let first = alice.post("/api/chatrooms/new", direct.clone()).await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    assert_eq!(first.1["isDirected"], true);
    let room = first.1["chatSeq"].as_u64().expect("id");
    let again = alice.post("/api/chatrooms/new", direct).await;
    assert_eq!(again.0, StatusCode::OK);
    assert_eq!(again.1["chatSeq"], room);
    let from_bob = bob
        .post(
            "/api/chatrooms/new",
            json!({"isDirected": true, "targetUserId": alice.user_id}),
        )
        .await;
    assert_eq!(
        from_bob.1["chatSeq"], room,
        "the pair has one room, whoever opens it"
    );

    assert_eq!(ids(&bob.get("/api/chatrooms/mine").await.1), [room]);
    assert_eq!(ids(&carol.get("/api/chatrooms").await.1), Vec::<u64>::new());
    assert_error(
        &carol.join(room, None).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );

    assert_error(
        &alice
            .post(
                "/api/chatrooms/new",
                json!({"isDirected": true, "targetUserId": alice.user_id}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_target",
    );
    assert_error(
        &alice
            .post(
                "/api/chatrooms/new",
                json!({"isDirected": true, "targetUserId": 999}),
            )
            .await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    );
    assert_error(
        &alice
            .post("/api/chatrooms/new", json!({"isDirected": true}))
            .await,
        StatusCode::BAD_REQUEST,
        "target_required",
    );
}
