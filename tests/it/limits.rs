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

/// The open connections the server counts, from `/metrics`.
async fn open_connections(server: &Server) -> u64 {
    let text = reqwest::get(server.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix("daehwa_websocket_connections "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the connections gauge")
}

/// Waits until the server counts `n` open connections.
async fn until_open_connections(server: &Server, n: u64) {
    let deadline = std::time::Instant::now() + crate::harness::PATIENCE;
    loop {
        let open = open_connections(server).await;
        if open == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{open} connections open, expected {n}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Issue 11, finding 4: a client that sends frames but never reads. Its error
/// replies used to block the session in a write that raced nothing, so the close
/// that its queue's overflow asked for never came. Now the server drops it while it
/// still reads nothing.
#[tokio::test]
async fn a_client_that_sends_but_never_reads_is_closed() {
    let (server, _tmp) = server_with(
        "[limits]\nws_send_queue = 8\nmessages_per_second = 100000.0\nmessage_burst = 100000\n",
    )
    .await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room("public", "general", None).await;
    bob.join(room, None).await;
    let (sleeper, _) = bob.connect().await;
    let (mut sink, mut stream) = sleeper.socket.split();
    // Each frame is refused with an error that echoes its 60 KB clientMsgId: a few
    // hundred fill every socket buffer, and the server's writes block.
    let frame = json!({"event": "chat", "data": {"chatSeq": room, "content": "", "clientMsgId": "k".repeat(60_000)}}).to_string();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&sent);
    let sending = tokio::spawn(async move {
        while sink.send(Message::text(frame.clone())).await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    // Until the server stops reading (it is stuck writing the errors).
    let mut last = 0;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = sent.load(std::sync::atomic::Ordering::Relaxed);
        if now == last && now > 0 {
            break;
        }
        last = now;
    }
    // The room overflows the sleeper's queue of 8 (once its writes block, if they
    // did not yet): the bus asks for the close.
    for n in 0..2000 {
        alice.say(room, &format!("flood {n}")).await;
        if n % 20 == 19 && open_connections(&server).await == 0 {
            break;
        }
    }
    until_open_connections(&server, 0).await;
    sending.abort();
    // What was written before can still be read; then the socket ends.
    let ended = tokio::time::timeout(crate::harness::PATIENCE, async {
        while let Some(Ok(frame)) = stream.next().await {
            if let Message::Close(frame) = frame {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("the socket ends");
    assert!(matches!(ended, None | Some(4000)), "{ended:?}");
}

/// Issue 11, finding 5: a resume naming one room 15 000 times replayed it 15 000
/// times. Now a room counts once, and more rooms than the user has are refused.
#[tokio::test]
async fn a_resume_replays_each_room_once_and_is_bounded() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    for n in 0..3 {
        alice.say(room, &format!("m{n}")).await;
    }
    let repeated = vec![format!("{room}:0"); 15_000].join(",");
    let (mut ws, _) = alice.connect_resuming(&repeated).await;
    for msg_id in 1..=3 {
        assert_eq!(ws.expect("chat").await["msgId"], msg_id);
    }
    ws.expect_silence().await;

    let too_many: Vec<String> = (1..=100).map(|r| format!("{r}:0")).collect();
    let refused = tokio_tungstenite::connect_async(format!(
        "{}&resume={}",
        server.ws_url(&alice.token),
        too_many.join(",")
    ))
    .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::BAD_REQUEST)
        }
        other => panic!("a resume of 100 rooms should be refused: {other:?}"),
    }
}

/// Issue 11, finding 5: a logout during a long replay closed nothing until the
/// replay was written. Now the close request wins while the client reads nothing.
#[tokio::test]
async fn a_logout_ends_a_replay_the_client_does_not_read() {
    let (server, _tmp) =
        server_with("[limits]\nmessages_per_second = 100000.0\nmessage_burst = 100000\n").await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    // 16 MB of replay: more than the socket buffers hold.
    let content = "x".repeat(16000);
    for _ in 0..1000 {
        alice.say(room, &content).await;
    }
    let url = format!("{}&resume={room}:0", server.ws_url(&alice.token));
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    until_open_connections(&server, 1).await;
    alice.post("/api/auth/logout", json!({})).await;
    until_open_connections(&server, 0).await;
    drop(socket);
}

/// Issue 11, finding 9: upgrades arriving together were each checked against the
/// limit before any of them was counted (17 sessions with a limit of 16).
#[tokio::test]
async fn upgrades_arriving_together_do_not_pass_the_limit() {
    let (server, _tmp) = server_with("[limits]\nconnections_per_user = 16\n").await;
    let alice = server.register("alice").await;
    let request = format!(
        "GET /ws?token={} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        alice.token, server.addr
    );
    // A race: several rounds make it likely to show, were it there.
    for _ in 0..3 {
        upgrade_together(&server, &request).await;
        until_open_connections(&server, 0).await;
    }
}

/// Opens 200 connections, sends the upgrade `request` on all at once, and checks
/// that 16 were upgraded.
async fn upgrade_together(server: &Server, request: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Every connection is open before any request is sent; then all are sent at once.
    let mut sockets = Vec::new();
    for _ in 0..200 {
        sockets.push(
            tokio::net::TcpStream::connect(server.addr)
                .await
                .expect("connect"),
        );
    }
    for socket in &mut sockets {
        socket.write_all(request.as_bytes()).await.expect("send");
    }
    let mut upgraded = 0;
    for socket in &mut sockets {
        let mut head = [0u8; 12];
        tokio::time::timeout(crate::harness::PATIENCE, socket.read_exact(&mut head))
            .await
            .expect("a reply in time")
            .expect("a status line");
        match &head[9..12] {
            b"101" => upgraded += 1,
            b"429" => {}
            other => panic!("unexpected status {}", String::from_utf8_lossy(other)),
        }
    }
    assert_eq!(upgraded, 16);
    until_open_connections(server, 16).await;
}
