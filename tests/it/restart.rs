//! Graceful shutdown and restart: nothing acknowledged is lost, ids continue.

use serde_json::json;

use crate::harness::Server;

#[tokio::test]
async fn everything_survives_a_graceful_restart() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data_dir = tmp.path().join("data");
    // A long flush interval: everything below is still in the buffer at SIGTERM.
    let config = tmp.path().join("daehwa.toml");
    std::fs::write(&config, "[storage]\nflush_interval = \"1h\"\n").expect("config");
    let args = ["--config", config.to_str().expect("path")];

    let mut server = Server::start_in(&data_dir, &args).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let general = alice.create_room("public", "general", None).await;
    let secret = alice
        .create_room("protected", "secret", Some("open sesame"))
        .await;
    bob.join(general, None).await;
    let (mut ws, _) = bob.connect().await;
    let mut sent = Vec::new();
    for n in 1..=30 {
        let content = format!("message {n}");
        if n % 2 == 0 {
            ws.chat(general, &content).await;
            ws.expect("chat").await;
        } else {
            alice.say(general, &content).await;
            ws.expect("chat").await;
        }
        sent.push(content);
    }
    alice.say(secret, "in the other room").await;

    let status = server.stop().await;
    assert!(
        status.success(),
        "SIGTERM exits 0: {status:?}\n{}",
        server.logs()
    );
    assert!(server.logs().contains("shutdown complete"));

    let server = Server::start_in(&data_dir, &args).await;
    let alice = alice.at(&server);
    let bob = bob.at(&server);
    // Tokens, accounts, rooms and memberships are back.
    let (_, me) = alice.get("/api/users/me").await;
    assert_eq!(me["username"], "alice");
    let (_, rooms) = bob.get("/api/chatrooms/mine").await;
    assert_eq!(rooms[0]["chatSeq"], general);
    assert_eq!(rooms[0]["lastMsgId"], 30);
    assert_eq!(rooms[0]["ownerId"], alice.user_id);
    assert_eq!(
        bob.join(secret, Some("open sesame")).await.0,
        reqwest::StatusCode::OK
    );

    // The whole history, in order, and msgIds go on from where they stopped.
    let history = bob.history(general, -1, 100).await;
    let contents: Vec<_> = history
        .iter()
        .map(|m| m["content"].as_str().expect("content"))
        .collect();
    assert_eq!(contents, sent);
    let ids: Vec<_> = history
        .iter()
        .map(|m| m["msgId"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, (1..=30).collect::<Vec<_>>());
    assert_eq!(alice.say(general, "after restart").await, 31);
    assert_eq!(
        alice.history(secret, -1, 10).await[0]["content"],
        "in the other room"
    );
    let login = alice
        .post(
            "/api/auth/login",
            json!({"username": "bob", "password": "correct horse"}),
        )
        .await;
    assert_eq!(login.0, reqwest::StatusCode::OK);
}

#[tokio::test]
async fn sigint_is_a_graceful_shutdown_too() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data_dir = tmp.path().join("data");
    let mut server = Server::start_in(&data_dir, &[]).await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    alice.say(room, "before ctrl-c").await;
    let status = server.interrupt().await;
    assert!(status.success(), "{status:?}\n{}", server.logs());
    assert!(server.logs().contains("shutdown complete"));
    let server = Server::start_in(&data_dir, &[]).await;
    assert_eq!(
        alice.at(&server).history(room, -1, 10).await[0]["content"],
        "before ctrl-c"
    );
}
