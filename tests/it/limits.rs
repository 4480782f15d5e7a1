//! Every limit, hit on purpose, and hostile frames thrown at the gateway.

use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{assert_error, send, Server};

async fn server_with(config: &str) -> (Server, tempfile::TempDir) {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let path = tmp.path().join("daehwa.toml");
    std::fs::write(&path, config).expect("config");
    let server = Server::start_with(&["--config", path.to_str().expect("path")]).await;
    (server, tmp)
}

#[tokio::test]
async fn messages_per_second_per_user() {
    let (server, _tmp) =
        server_with("[limits]\nmessages_per_second = 0.5\nmessage_burst = 3\n").await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room("public", "general", None).await;
    bob.join(room, None).await;
    for n in 0..3 {
        alice.say(room, &format!("burst {n}")).await;
    }
    let path = format!("/api/chatrooms/{room}/messages");
    let response = alice
        .http
        .post(alice.url(&path))
        .bearer_auth(&alice.token)
        .json(&json!({"content": "one too many"}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let (mut ws, _) = alice.connect().await;
    ws.chat(room, "still too many").await;
    assert_eq!(ws.expect("error").await["error"], "rate_limited");
    // The limit is per user: bob is not slowed by alice.
    assert_eq!(bob.say(room, "bob's turn").await, 4);
}

#[tokio::test]
async fn connections_per_user() {
    let (server, _tmp) = server_with("[limits]\nconnections_per_user = 2\n").await;
    let alice = server.register("alice").await;
    let (first, _) = alice.connect().await;
    let (_second, _) = alice.connect().await;
    let refused = tokio_tungstenite::connect_async(server.ws_url(&alice.token)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS)
        }
        other => panic!("a third connection should be refused: {other:?}"),
    }
    drop(first);
    // Once one closes, there is room again (the server notices the close first).
    let mut reconnected = false;
    for _ in 0..50 {
        if tokio_tungstenite::connect_async(server.ws_url(&alice.token))
            .await
            .is_ok()
        {
            reconnected = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(reconnected);
}

#[tokio::test]
async fn login_attempts_per_name() {
    let (server, _tmp) = server_with("[limits]\nlogin_attempts_per_minute = 3\n").await;
    server.register("alice").await;
    let http = reqwest::Client::new();
    let login = |password: &str| {
        send(
            http.post(server.url("/api/auth/login"))
                .json(&json!({"username": "alice", "password": password})),
        )
    };
    for _ in 0..3 {
        assert_error(
            &login("wrong guess").await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        );
    }
    // Even the right password waits now.
    assert_error(
        &login("correct horse").await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
}

/// A WebSocket upgrade request with an optional `Origin`, its status and error code.
async fn upgrade_from(server: &Server, token: &str, origin: Option<&str>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .get(server.ws_url(token).replace("ws:", "http:"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let reply = request.send().await.expect("reply");
    let status = reply.status();
    let body = if status == StatusCode::SWITCHING_PROTOCOLS {
        Value::Null
    } else {
        reply.json().await.expect("json")
    };
    (status, body)
}

#[tokio::test]
async fn allowed_origins() {
    let (server, _tmp) =
        server_with("[server]\nallowed_origins = [\"http://chat.example\"]\n").await;
    let alice = server.register("alice").await;
    let refused = upgrade_from(&server, &alice.token, Some("http://evil.example")).await;
    assert_eq!(refused.0, StatusCode::FORBIDDEN);
    assert_eq!(refused.1["error"], "origin_not_allowed");
    // With a list, the server's own origin is only allowed if listed.
    let own = format!("http://{}", server.addr);
    assert_eq!(
        upgrade_from(&server, &alice.token, Some(&own)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        upgrade_from(&server, &alice.token, Some("http://chat.example"))
            .await
            .0,
        StatusCode::SWITCHING_PROTOCOLS
    );
    assert_eq!(
        upgrade_from(&server, &alice.token, None).await.0,
        StatusCode::SWITCHING_PROTOCOLS
    );
}

#[tokio::test]
async fn by_default_only_the_servers_own_origin() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let port = server.addr.port();
    let own = format!("http://{}", server.addr);
    assert_eq!(
        upgrade_from(&server, &alice.token, Some(&own)).await.0,
        StatusCode::SWITCHING_PROTOCOLS
    );
    // Non-browser clients send no Origin and are not refused for it.
    assert_eq!(
        upgrade_from(&server, &alice.token, None).await.0,
        StatusCode::SWITCHING_PROTOCOLS
    );
    for other in [
        "http://evil.example".to_owned(),
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        format!("https://127.0.0.1:{port}/"),
        "null".to_owned(),
    ] {
        let refused = upgrade_from(&server, &alice.token, Some(&other)).await;
        assert_eq!(refused.0, StatusCode::FORBIDDEN, "{other}");
        assert_eq!(refused.1["error"], "origin_not_allowed", "{other}");
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_and_the_room_goes_on() {
    let (server, _tmp) = server_with(
        "[limits]\nws_send_queue = 8\nmessages_per_second = 100000.0\nmessage_burst = 100000\n",
    )
    .await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room("public", "general", None).await;
    bob.join(room, None).await;
    let (mut sleeper, _) = bob.connect().await;
    let (mut reader, _) = alice.connect().await;

    // Enough to fill the kernel's socket buffers and then the queue of 8.
    let content = "x".repeat(16000);
    for n in 0..5000 {
        alice.say(room, &content).await;
        reader.expect("chat").await;
        // Stop once the server gave up on the sleeper: the close frame waits behind
        // what it has not read, for a few seconds only.
        if n % 20 == 0 && server.logs().contains("the bus closes a connection") {
            break;
        }
    }
    assert_eq!(sleeper.expect_close().await, Some(4000));
    // The room and the other connection were never held up.
    alice.say(room, "still flowing").await;
    assert_eq!(reader.expect("chat").await["content"], "still flowing");
}

/// Random bytes and mangled JSON: each frame gets an `error` (or, when it happens to
/// be a valid chat, its message), the connection stays open, the server stays up.
#[tokio::test]
async fn hostile_frames_get_errors_and_nothing_breaks() {
    let (server, _tmp) =
        server_with("[limits]\nmessages_per_second = 100000.0\nmessage_burst = 100000\n").await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    let (mut ws, _) = alice.connect().await;
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let pieces = [
        "{",
        "}",
        "[",
        "]",
        "\"event\"",
        "\"data\"",
        "\"chat\"",
        ":",
        ",",
        "\"chatSeq\"",
        "\"content\"",
        "\"clientMsgId\"",
        "1",
        "-1",
        "1e999",
        "null",
        "true",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "9999999999999999999999",
        &room.to_string(),
        "\"x\"",
        " ",
    ];
    for i in 0..400 {
        let frame = if i % 3 == 0 {
            let bytes: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            (0..rng.random_range(1..24))
                .map(|_| pieces[rng.random_range(0..pieces.len())])
                .collect()
        };
        ws.socket
            .send(Message::text(frame.clone()))
            .await
            .expect("send");
        let (event, data) = ws.next_event().await;
        assert!(
            event == "error" || event == "chat",
            "seed {seed}: frame {frame:?} got {event}: {data}"
        );
        if event == "error" {
            assert!(
                data["error"].as_str().is_some_and(|e| !e.is_empty()),
                "seed {seed}: {data}"
            );
        }
    }
    ws.chat(room, "alive").await;
    assert_eq!(ws.expect("chat").await["content"], "alive");
    assert!(ws.socket.next().now_or_never_pending());
    assert_eq!(alice.get("/api/users/me").await.0, StatusCode::OK);
}

trait PendingExt {
    fn now_or_never_pending(self) -> bool;
}

impl<F: std::future::Future> PendingExt for F {
    /// True when the future is not ready at once (no stray frame is waiting).
    fn now_or_never_pending(self) -> bool {
        futures_util::FutureExt::now_or_never(self).is_none()
    }
}
