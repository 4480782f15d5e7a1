//! The upgrade of a `daehwa/1` data directory (tests/fixtures/daehwa1, made by the
//! binary of schema 1) to `daehwa/3` (through `daehwa/2`): every kind of record survives it.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{assert_error, send, Client, Server};

/// Copies the fixture into `to` (the fixture itself is never opened).
fn copy_fixture(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/daehwa1/data");
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(&from).expect("fixture") {
        let entry = entry.expect("entry");
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

async fn login(server: &Server, username: &str) -> (StatusCode, Value) {
    send(
        reqwest::Client::new()
            .post(server.url("/api/auth/login"))
            .json(&json!({"username": username, "password": "correct horse"})),
    )
    .await
}

async fn user(server: &Server, username: &str) -> Client {
    let (status, body) = login(server, username).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Client::with_token(
        server,
        body["token"].as_str().expect("token"),
        body["userId"].as_u64().expect("userId"),
    )
}

fn room(rooms: &Value, id: u64) -> &Value {
    rooms
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["chatSeq"] == id)
        .unwrap_or_else(|| panic!("room {id} in {rooms}"))
}

#[tokio::test]
async fn a_daehwa_1_directory_is_upgraded_with_everything_in_it() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data = tmp.path().join("data");
    copy_fixture(&data);
    let mut server = Server::start_in(&data, &[]).await;
    let logs = server.logs();
    assert!(
        logs.contains("upgrading the database from daehwa/1"),
        "{logs}"
    );
    assert!(logs.contains("database upgraded to daehwa/2"), "{logs}");
    assert!(logs.contains("database upgraded to daehwa/3"), "{logs}");

    // Accounts: passwords, ids, the disabled one.
    let alice = user(&server, "alice").await;
    assert_eq!(alice.user_id, 1);
    let bob = user(&server, "bob").await;
    let carol = user(&server, "carol").await;
    let dave = login(&server, "dave").await;
    assert_error(&dave, StatusCode::FORBIDDEN, "account_disabled");

    // Rooms of every type, with their numbering: seq = msgId after the upgrade.
    let (_, mine) = alice.get("/api/chatrooms/mine").await;
    for (id, name, kind, last) in [
        (1, "general", "public", 6),
        (2, "secret", "protected", 1),
        (3, "hideout", "private", 1),
        (4, "alice, bob", "private", 2),
    ] {
        let r = room(&mine, id);
        assert_eq!(r["chatName"], name, "{r}");
        assert_eq!(r["chatType"], kind, "{r}");
        assert_eq!(r["lastMsgId"], last, "{r}");
        assert_eq!(r["lastSeq"], last, "{r}");
    }
    assert_eq!(room(&mine, 4)["isDirected"], true);
    let (_, listed) = alice.get("/api/chatrooms").await;
    assert!(
        listed
            .as_array()
            .expect("rooms")
            .iter()
            .all(|r| r["chatSeq"] != 5),
        "the closed room stays closed: {listed}"
    );
    // Read markers: bob read general up to 2 of 6.
    let (_, bobs) = bob.get("/api/chatrooms/mine").await;
    assert_eq!(room(&bobs, 1)["lastReadMsgId"], 2);
    assert_eq!(room(&bobs, 1)["unreadCount"], 4);
    // Carol left her direct room with dave: hidden from her list.
    let (_, carols) = carol.get("/api/chatrooms/mine").await;
    assert!(
        carols
            .as_array()
            .expect("rooms")
            .iter()
            .all(|r| r["chatSeq"] != 6),
        "{carols}"
    );

    // Messages, with their client ids, as history shows them now.
    let history = alice.history(1, -1, 100).await;
    let ids: Vec<u64> = history
        .iter()
        .map(|m| m["msgId"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    for m in &history {
        assert_eq!(m["seq"], m["msgId"], "{m}");
        assert_eq!(m["reactions"], json!([]), "{m}");
        assert!(
            m.get("editedAt").is_none() && m.get("deleted").is_none(),
            "{m}"
        );
    }
    assert_eq!(history[0]["clientMsgId"], "a-1");
    assert_eq!(history[2]["content"], "안녕하세요");
    // A resend of a client id from before the upgrade finds the original.
    let resent = alice
        .post(
            "/api/chatrooms/1/messages",
            json!({"content": "hello everyone", "clientMsgId": "a-1"}),
        )
        .await;
    assert_eq!(resent.0, StatusCode::OK, "{}", resent.1);
    assert_eq!(resent.1["msgId"], 1);
    // Carol blocks bob: his message is not in her history.
    let (_, blocks) = carol.get("/api/users/blocks").await;
    assert_eq!(blocks, json!([{"userId": 2, "username": "bob"}]));
    let carol_sees: Vec<u64> = carol
        .history(1, -1, 100)
        .await
        .iter()
        .map(|m| m["msgId"].as_u64().expect("id"))
        .collect();
    assert_eq!(carol_sees, [1, 3, 4, 5, 6]);

    // Moderation: the ban for ever, the timed ban, the mute, the invitation.
    let erin = user(&server, "erin").await;
    assert_error(&erin.join(1, None).await, StatusCode::FORBIDDEN, "banned");
    let gina = user(&server, "gina").await;
    assert_error(
        &gina.join(2, Some("open sesame")).await,
        StatusCode::FORBIDDEN,
        "banned",
    );
    assert_eq!(gina.join(3, None).await.0, StatusCode::OK, "the invitation");
    let frank = user(&server, "frank").await;
    let muted = frank
        .post(
            "/api/chatrooms/1/messages",
            json!({"content": "still here"}),
        )
        .await;
    assert_error(&muted, StatusCode::FORBIDDEN, "muted");
    let (_, members) = alice.get("/api/chatrooms/1/members").await;
    assert_eq!(members["bans"][0]["userId"], 5, "{members}");

    // The log goes on from the upgraded numbering, and resumes from it.
    let sent = alice
        .post(
            "/api/chatrooms/1/messages",
            json!({"content": "after the upgrade"}),
        )
        .await;
    assert_eq!(
        (sent.1["msgId"].clone(), sent.1["seq"].clone()),
        (json!(7), json!(7))
    );
    let (mut ws, _) = bob.connect_resuming("1:6:5").await;
    assert_eq!(ws.expect("chat").await["msgId"], 6);
    assert_eq!(ws.expect("chat").await["msgId"], 7);
    ws.expect_silence().await;

    // A second start does not upgrade again.
    assert!(server.stop().await.success());
    let server = Server::start_in(&data, &[]).await;
    assert!(!server.logs().contains("upgrading the database"));
    assert_eq!(alice.at(&server).history(1, -1, 100).await.len(), 7);
}
