//! The socket.io protocol, from its published description (Engine.IO v4, socket.io
//! v5), against `daehwa-bench sio-conformance`: daehwa's socket.io transport with the
//! settings and handlers of the protocol's test suite (ping interval 300 ms, ping
//! timeout 200 ms, maxPayload 1 000 000, connect timeout 1 000 ms; `auth`,
//! `message-back`, `message-with-ack`; `Invalid namespace`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(10);
const SEPARATOR: char = '\u{1e}';

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_daehwa-bench"))
        .args(["sio-conformance", "--bind", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the conformance server");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("a line").expect("readable");
        if let Some(addr) = line.split("addr=").nth(1) {
            break addr.trim().parse().expect("an address");
        }
    };
    // Keep draining stderr so that the pipe never fills.
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr }
}

impl Server {
    fn url(&self, query: &str) -> String {
        format!("http://{}/socket.io/?EIO=4&{query}", self.addr)
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn get(url: &str) -> (u16, String) {
    let response = tokio::time::timeout(PATIENCE, reqwest::get(url))
        .await
        .expect("a reply in time")
        .expect("a reply");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

async fn post(url: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .body(body)
        .send()
        .await
        .expect("a reply");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

/// Opens a long-polling session; its sid and the open packet's data.
async fn polling_session(server: &Server) -> (String, Value) {
    let (status, body) = get(&server.url("transport=polling")).await;
    assert_eq!(status, 200, "{body}");
    let open: Value =
        serde_json::from_str(body.strip_prefix('0').expect("an open packet")).expect("JSON");
    (open["sid"].as_str().expect("sid").to_owned(), open)
}

/// Polls until `want` packets have come; the packets.
async fn poll_packets(server: &Server, sid: &str, want: usize) -> Vec<String> {
    let mut packets = Vec::new();
    while packets.len() < want {
        let (status, body) = get(&server.url(&format!("transport=polling&sid={sid}"))).await;
        assert_eq!(status, 200, "{body}");
        packets.extend(
            body.split(SEPARATOR)
                .filter(|p| *p != "6")
                .map(str::to_owned),
        );
    }
    packets
}

async fn websocket(server: &Server, query: &str) -> Ws {
    let url = server
        .url(&format!("transport=websocket{query}"))
        .replace("http:", "ws:");
    tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket connect")
        .0
}

/// The next text frame (pings from the server answered on the way if `pong`).
async fn next_text(ws: &mut Ws) -> String {
    match next_frame(ws).await {
        Message::Text(text) => text.as_str().to_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

async fn next_frame(ws: &mut Ws) -> Message {
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("a readable frame");
        match frame {
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Text(ref text) if text.as_str() == "2" => {
                ws.send(Message::text("3")).await.expect("pong");
            }
            other => return other,
        }
    }
}

/// Reads until the server closes the socket.
async fn expect_closed(ws: &mut Ws) {
    tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(frame)) = ws.next().await {
            if let Message::Close(_) = frame {
                break;
            }
        }
    })
    .await
    .expect("closed in time");
}

/// A WebSocket connected to the main namespace, past `auth`.
async fn connected(server: &Server) -> Ws {
    let mut ws = websocket(server, "").await;
    assert!(next_text(&mut ws).await.starts_with('0'));
    ws.send(Message::text("40")).await.expect("send");
    assert!(next_text(&mut ws).await.starts_with("40{"));
    assert_eq!(next_text(&mut ws).await, r#"42["auth",{}]"#);
    ws
}

#[tokio::test]
async fn the_polling_handshake_tells_the_settings() {
    let server = start();
    let (sid, open) = polling_session(&server).await;
    assert!(!sid.is_empty());
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert_eq!(open["pingInterval"], 300);
    assert_eq!(open["pingTimeout"], 200);
    assert_eq!(open["maxPayload"], 1_000_000);
}

#[tokio::test]
async fn bad_handshakes_are_refused_with_the_protocol_codes() {
    let server = start();
    let addr = server.addr;
    let code = |body: &str| serde_json::from_str::<Value>(body).expect("JSON")["code"].clone();
    let (status, body) = get(&format!("http://{addr}/socket.io/?EIO=3&transport=polling")).await;
    assert_eq!((status, code(&body)), (400, json!(5)), "protocol version");
    let (status, body) = get(&format!("http://{addr}/socket.io/?transport=polling")).await;
    assert_eq!((status, code(&body)), (400, json!(5)), "no version");
    let (status, body) = get(&server.url("transport=carrier-pigeon")).await;
    assert_eq!((status, code(&body)), (400, json!(0)), "transport");
    let (status, body) = post(&server.url("transport=polling"), "40").await;
    assert_eq!((status, code(&body)), (400, json!(2)), "handshake method");
    let (status, body) = get(&server.url("transport=polling&sid=nope")).await;
    assert_eq!((status, code(&body)), (400, json!(1)), "session id");
}

#[tokio::test]
async fn the_websocket_handshake_offers_no_upgrade() {
    let server = start();
    let mut ws = websocket(&server, "").await;
    let open = next_text(&mut ws).await;
    let open: Value = serde_json::from_str(open.strip_prefix('0').expect("open")).expect("JSON");
    assert!(open["sid"].is_string());
    assert_eq!(open["upgrades"], json!([]));
    assert_eq!(open["pingInterval"], 300);
}

#[tokio::test]
async fn the_server_pings_and_a_pong_keeps_the_connection() {
    let server = start();
    let mut ws = websocket(&server, "").await;
    next_text(&mut ws).await;
    ws.send(Message::text("40")).await.expect("send");
    for _ in 0..3 {
        loop {
            let frame = tokio::time::timeout(PATIENCE, ws.next())
                .await
                .expect("in time")
                .expect("open")
                .expect("readable");
            if let Message::Text(text) = frame {
                if text.as_str() == "2" {
                    ws.send(Message::text("3")).await.expect("pong");
                    break;
                }
            }
        }
    }
    // Still there after three rounds (1.2 s, past two ping timeouts).
    ws.send(Message::text(r#"42["message","still"]"#))
        .await
        .expect("send");
    loop {
        let text = next_text(&mut ws).await;
        if text.starts_with("42") {
            assert_eq!(text, r#"42["message-back","still"]"#);
            break;
        }
    }
}

#[tokio::test]
async fn no_pong_closes_the_connection() {
    let server = start();
    let mut ws = websocket(&server, "").await;
    expect_closed(&mut ws).await;

    let (sid, _) = polling_session(&server).await;
    // The poll returns the ping; no pong follows; the session ends.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, _) = get(&server.url(&format!("transport=polling&sid={sid}"))).await;
        if status == 400 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session never ended"
        );
    }
}

#[tokio::test]
async fn the_client_may_close() {
    let server = start();
    let mut ws = websocket(&server, "").await;
    next_text(&mut ws).await;
    ws.send(Message::text("1")).await.expect("send");
    expect_closed(&mut ws).await;

    let (sid, _) = polling_session(&server).await;
    let (status, body) = post(&server.url(&format!("transport=polling&sid={sid}")), "1").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = get(&server.url(&format!("transport=polling&sid={sid}"))).await;
        if status == 400 || body == "1" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session never ended"
        );
    }
}

#[tokio::test]
async fn polling_carries_packets_both_ways() {
    let server = start();
    let (sid, _) = polling_session(&server).await;
    let url = server.url(&format!("transport=polling&sid={sid}"));
    assert_eq!(post(&url, "40").await, (200, "ok".to_owned()));
    let packets = poll_packets(&server, &sid, 2).await;
    assert!(packets[0].starts_with("40{\"sid\":"), "{packets:?}");
    assert_eq!(packets[1], r#"42["auth",{}]"#);
    // Several packets in one body, separated by \x1e.
    let body = format!(r#"42["message",1]{SEPARATOR}42["message",2]"#);
    assert_eq!(post(&url, body).await.0, 200);
    let packets = poll_packets(&server, &sid, 2).await;
    assert_eq!(
        packets,
        [r#"42["message-back",1]"#, r#"42["message-back",2]"#]
    );
    // A binary attachment travels as base64 after a `b`.
    let body = format!(r#"451-["message",{{"_placeholder":true,"num":0}}]{SEPARATOR}bAQID"#);
    assert_eq!(post(&url, body).await.0, 200);
    let packets = poll_packets(&server, &sid, 2).await;
    assert_eq!(
        packets,
        [
            r#"451-["message-back",{"_placeholder":true,"num":0}]"#,
            "bAQID"
        ]
    );
}

#[tokio::test]
async fn polling_bounds_what_a_client_sends_and_polls() {
    let server = start();
    let (sid, _) = polling_session(&server).await;
    let url = server.url(&format!("transport=polling&sid={sid}"));
    let (status, _) = post(&url, "4".repeat(1_000_001)).await;
    assert_eq!(status, 413, "a body over maxPayload");

    // Two polls at once break the session.
    let (sid, _) = polling_session(&server).await;
    let url = server.url(&format!("transport=polling&sid={sid}"));
    let first = tokio::spawn({
        let url = url.clone();
        async move { get(&url).await }
    });
    let mut refused = false;
    for _ in 0..50 {
        let (status, _) = get(&url).await;
        if status == 400 {
            refused = true;
            break;
        }
    }
    assert!(refused, "a second poll while one waits is refused");
    let _ = first.await;
}

#[tokio::test]
async fn polling_upgrades_to_websocket() {
    let server = start();
    let (sid, _) = polling_session(&server).await;
    let url = server.url(&format!("transport=polling&sid={sid}"));
    assert_eq!(post(&url, "40").await.0, 200);
    poll_packets(&server, &sid, 2).await;

    let mut ws = websocket(&server, &format!("&sid={sid}")).await;
    ws.send(Message::text("2probe")).await.expect("probe");
    assert_eq!(next_text(&mut ws).await, "3probe");
    // The pending (or next) poll gets a noop, so that the client can pause polling.
    let (status, body) = get(&url).await;
    assert_eq!(status, 200);
    assert!(body.split(SEPARATOR).any(|p| p == "6"), "{body}");
    ws.send(Message::text("5")).await.expect("upgrade");
    ws.send(Message::text(r#"42["message","over ws"]"#))
        .await
        .expect("send");
    assert_eq!(next_text(&mut ws).await, r#"42["message-back","over ws"]"#);
    // The session's HTTP requests are refused from now on.
    assert_eq!(get(&url).await.0, 400);
}

#[tokio::test]
async fn namespaces_connect_with_their_auth_or_are_refused() {
    let server = start();
    let mut ws = websocket(&server, "").await;
    next_text(&mut ws).await;
    ws.send(Message::text(r#"40{"token":"123"}"#))
        .await
        .expect("send");
    let connect = next_text(&mut ws).await;
    let data: Value =
        serde_json::from_str(connect.strip_prefix("40").expect("CONNECT")).expect("JSON");
    assert!(data["sid"].is_string());
    assert_eq!(next_text(&mut ws).await, r#"42["auth",{"token":"123"}]"#);

    ws.send(Message::text("40/custom,")).await.expect("send");
    assert!(next_text(&mut ws).await.starts_with("40/custom,{\"sid\":"));
    assert_eq!(next_text(&mut ws).await, r#"42/custom,["auth",{}]"#);

    ws.send(Message::text("40/random,")).await.expect("send");
    assert_eq!(
        next_text(&mut ws).await,
        r#"44/random,{"message":"Invalid namespace"}"#
    );
    // Events go to the namespace they name.
    ws.send(Message::text(r#"42/custom,["message","here"]"#))
        .await
        .expect("send");
    assert_eq!(
        next_text(&mut ws).await,
        r#"42/custom,["message-back","here"]"#
    );
}

#[tokio::test]
async fn an_invalid_packet_closes_the_connection() {
    let server = start();
    let mut ws = websocket(&server, "").await;
    next_text(&mut ws).await;
    ws.send(Message::text("4abc")).await.expect("send");
    expect_closed(&mut ws).await;
}

#[tokio::test]
async fn no_namespace_within_the_connect_timeout_closes_the_connection() {
    let server = start();
    let mut ws = websocket(&server, "").await;
    next_text(&mut ws).await;
    // Pongs keep the connection alive; only the missing CONNECT ends it.
    tokio::time::timeout(PATIENCE, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                    let _ = ws.send(Message::text("3")).await;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("closed in time");
}

#[tokio::test]
async fn events_and_acknowledgements() {
    let server = start();
    let mut ws = connected(&server).await;
    ws.send(Message::text(r#"42["message",1,"2",{"3":[true]}]"#))
        .await
        .expect("send");
    assert_eq!(
        next_text(&mut ws).await,
        r#"42["message-back",1,"2",{"3":[true]}]"#
    );
    ws.send(Message::text(
        r#"42456["message-with-ack",1,"2",{"3":[false]}]"#,
    ))
    .await
    .expect("send");
    assert_eq!(next_text(&mut ws).await, r#"43456[1,"2",{"3":[false]}]"#);
}

#[tokio::test]
async fn binary_attachments_follow_their_packet() {
    let server = start();
    let mut ws = connected(&server).await;
    ws.send(Message::text(
        r#"451-["message",{"_placeholder":true,"num":0}]"#,
    ))
    .await
    .expect("send");
    ws.send(Message::binary(vec![1, 2, 3])).await.expect("send");
    assert_eq!(
        next_text(&mut ws).await,
        r#"451-["message-back",{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(next_frame(&mut ws).await, Message::binary(vec![1, 2, 3]));

    ws.send(Message::text(
        r#"452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    ))
    .await
    .expect("send");
    ws.send(Message::binary(vec![4])).await.expect("send");
    ws.send(Message::binary(vec![5, 6])).await.expect("send");
    assert_eq!(
        next_text(&mut ws).await,
        r#"462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
    );
    assert_eq!(next_frame(&mut ws).await, Message::binary(vec![4]));
    assert_eq!(next_frame(&mut ws).await, Message::binary(vec![5, 6]));
}
