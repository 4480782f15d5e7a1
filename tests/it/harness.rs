//! Starts the real `daehwa` binary on port 0 with a temp data dir, and talks to it
//! with a real HTTP client and real WebSocket clients.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// Keeps the temp dir alive; `None` when the test owns the dir.
    _tmp: Option<TempDir>,
    /// Everything the server logged, for failure messages.
    pub logs: Arc<Mutex<String>>,
    /// The thread that drains stderr; it ends when the process closes it.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// A server on a new temp data dir.
    pub async fn start() -> Server {
        Self::start_with(&[]).await
    }

    /// A server on a new temp data dir, with extra `serve` arguments.
    pub async fn start_with(args: &[&str]) -> Server {
        let tmp = TempDir::new().expect("temp dir");
        let data_dir = tmp.path().join("data");
        let mut server = Self::start_in(&data_dir, args).await;
        server._tmp = Some(tmp);
        server
    }

    /// A server on `data_dir`, e.g. to restart on the data of a stopped one.
    pub async fn start_in(data_dir: &Path, args: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_daehwa"));
        command
            .arg("serve")
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("RUST_LOG", "info,daehwa=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn daehwa");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&logs);
        let reader = std::thread::spawn(move || {
            // Drains stderr for the life of the process, so the pipe never fills.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = listening_addr(&line) {
                    let _ = tx.send(addr);
                }
                let mut logs = sink.lock().expect("logs");
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(PATIENCE))
            .await
            .expect("join")
            .unwrap_or_else(|_| {
                let status = child.try_wait();
                panic!(
                    "daehwa did not start ({status:?}); logs:\n{}",
                    logs.lock().expect("logs")
                )
            });
        Server {
            child: Some(child),
            addr,
            _tmp: None,
            logs,
            reader: Some(reader),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, token: &str) -> String {
        format!("ws://{}/ws?token={}", self.addr, token)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM, then waits for the exit.
    pub async fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait().await
    }

    /// SIGINT (Ctrl-C), then waits for the exit.
    pub async fn interrupt(&mut self) -> ExitStatus {
        self.signal("INT");
        self.wait().await
    }

    /// kill -9, then waits for the exit.
    pub async fn kill(&mut self) -> ExitStatus {
        self.signal("KILL");
        self.wait().await
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the exit, and for the last log lines to be read.
    async fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let reader = self.reader.take();
        tokio::task::spawn_blocking(move || {
            let status = child.wait().expect("wait");
            if let Some(reader) = reader {
                let _ = reader.join();
            }
            status
        })
        .await
        .expect("join")
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("logs").clone()
    }

    pub async fn register(&self, username: &str) -> Client {
        let http = reqwest::Client::new();
        let (status, body) = send(
            http.post(self.url("/api/auth/register"))
                .json(&json!({"username": username, "password": "correct horse"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        Client {
            http,
            base: self.url(""),
            ws_base: self.ws_url(""),
            token: body["token"].as_str().expect("token").to_owned(),
            user_id: body["userId"].as_u64().expect("userId"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The address of the "listening" log line, in the pretty or the JSON format.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("listening") {
        return None;
    }
    let rest = line
        .split("addr=")
        .nth(1)
        .or_else(|| line.split("\"addr\":\"").nth(1))?;
    rest.split(|c: char| c.is_whitespace() || c == '"')
        .next()?
        .parse()
        .ok()
}

/// Sends a request and checks the response against the API contract
/// (`docs/openapi.json`, see `contract`); the status, the headers and the body.
pub async fn exchange(
    request: reqwest::RequestBuilder,
) -> (StatusCode, reqwest::header::HeaderMap, bytes::Bytes) {
    let (client, request) = request.build_split();
    let request = request.expect("a well-formed request");
    let method = request.method().clone();
    let path = request.url().path().to_owned();
    let response = client.execute(request).await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    crate::contract::check(&method, &path, status, content_type, &bytes);
    (status, headers, bytes)
}

/// Sends a request, checked against the API contract; the status and the JSON body
/// (`Null` when empty).
pub async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let (status, _, bytes) = exchange(request).await;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&bytes)))
    };
    (status, body)
}

/// Asserts an error reply: the status and the `error` code, with a message.
#[track_caller]
pub fn assert_error(reply: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(reply.0, status, "{}", reply.1);
    assert_eq!(reply.1["error"], code, "{}", reply.1);
    assert!(
        reply.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        reply.1
    );
}

/// A registered user.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    base: String,
    ws_base: String,
    pub token: String,
    pub user_id: u64,
}

impl Client {
    /// A user who logged in with `token`, on `server`.
    pub fn with_token(server: &Server, token: &str, user_id: u64) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: server.url(""),
            ws_base: server.ws_url(""),
            token: token.to_owned(),
            user_id,
        }
    }

    /// The same user and token, talking to another server (e.g. after a restart).
    pub fn at(&self, server: &Server) -> Client {
        Client {
            base: server.url(""),
            ws_base: server.ws_url(""),
            ..self.clone()
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn with_auth(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.bearer_auth(&self.token)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        send(self.with_auth(self.http.get(format!("{}{path}", self.base)))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.with_auth(self.http.post(format!("{}{path}", self.base)).json(&body))).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.with_auth(self.http.put(format!("{}{path}", self.base)).json(&body))).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.with_auth(self.http.patch(format!("{}{path}", self.base)).json(&body))).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        send(self.with_auth(self.http.delete(format!("{}{path}", self.base)))).await
    }

    /// Sends raw bytes as a body.
    pub async fn post_raw(&self, path: &str, body: &'static str) -> (StatusCode, Value) {
        send(
            self.with_auth(
                self.http
                    .post(format!("{}{path}", self.base))
                    .header("content-type", "application/json")
                    .body(body),
            ),
        )
        .await
    }

    /// Creates a room; its id.
    pub async fn create_room(&self, chat_type: &str, name: &str, password: Option<&str>) -> u64 {
        let reply = self
            .post(
                "/api/chatrooms/new",
                json!({"chatType": chat_type, "chatName": name, "password": password, "isDirected": false}),
            )
            .await;
        assert_eq!(reply.0, StatusCode::CREATED, "{}", reply.1);
        reply.1["chatSeq"].as_u64().expect("chatSeq")
    }

    pub async fn join(&self, room: u64, password: Option<&str>) -> (StatusCode, Value) {
        self.put(
            &format!("/api/chatrooms/join/{room}"),
            json!({"chatSeq": room, "password": password}),
        )
        .await
    }

    pub async fn say(&self, room: u64, content: &str) -> u64 {
        let reply = self
            .post(
                &format!("/api/chatrooms/{room}/messages"),
                json!({"content": content}),
            )
            .await;
        assert_eq!(reply.0, StatusCode::CREATED, "{}", reply.1);
        reply.1["msgId"].as_u64().expect("msgId")
    }

    pub async fn history(&self, room: u64, before: i64, count: u32) -> Vec<Value> {
        let reply = self
            .get(&format!("/api/chatrooms/message/{room}/{before}/{count}"))
            .await;
        assert_eq!(reply.0, StatusCode::OK, "{}", reply.1);
        reply.1.as_array().expect("array").clone()
    }

    /// The whole history of a room, oldest first, as (msgId, content), read page by
    /// page from the newest.
    pub async fn full_history(&self, room: u64) -> Vec<(u64, String)> {
        let mut all = Vec::new();
        let mut before = -1i64;
        loop {
            let page = self.history(room, before, 100).await;
            if page.is_empty() {
                break;
            }
            before = page[0]["msgId"].as_i64().expect("msgId");
            let mut entries: Vec<_> = page
                .iter()
                .map(|m| {
                    let id = m["msgId"].as_u64().expect("id");
                    (id, m["content"].as_str().expect("content").to_owned())
                })
                .collect();
            entries.append(&mut all);
            all = entries;
        }
        all
    }

    /// Opens a WebSocket and reads its `rooms` event.
    pub async fn connect(&self) -> (Ws, Value) {
        self.connect_url(format!("{}{}", self.ws_base, self.token))
            .await
    }

    /// Opens a WebSocket that resumes (`ROOM:LASTMSGID,…`) and reads its `rooms` event.
    pub async fn connect_resuming(&self, resume: &str) -> (Ws, Value) {
        self.connect_url(format!("{}{}&resume={resume}", self.ws_base, self.token))
            .await
    }

    async fn connect_url(&self, url: String) -> (Ws, Value) {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket connect");
        let mut ws = Ws { socket };
        let rooms = ws.expect("rooms").await;
        (ws, rooms)
    }
}

pub struct Ws {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// The next event, as (name, data), passing over `presence` events (users of
    /// a test come online as its clients connect; `expect("presence")` reads them).
    pub async fn next_event(&mut self) -> (String, Value) {
        loop {
            let (name, data) = self.next_any_event().await;
            if name != "presence" {
                return (name, data);
            }
        }
    }

    /// The next event, whatever it is.
    pub async fn next_any_event(&mut self) -> (String, Value) {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("an event in time")
                .expect("the socket is open")
                .expect("a readable frame");
            match frame {
                Message::Text(text) => {
                    let mut value: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
                    let name = value["event"].as_str().expect("event name").to_owned();
                    return (name, value["data"].take());
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next event, which must be `name`; its data.
    pub async fn expect(&mut self, name: &str) -> Value {
        let (got, data) = if name == "presence" {
            self.next_any_event().await
        } else {
            self.next_event().await
        };
        assert_eq!(got, name, "expected {name:?}, got {got:?}: {data}");
        data
    }

    /// The next event named `name`, passing over events named in `skip`.
    pub async fn expect_skipping(&mut self, name: &str, skip: &[&str]) -> Value {
        loop {
            let (got, data) = self.next_event().await;
            if got == name {
                return data;
            }
            assert!(
                skip.contains(&got.as_str()),
                "expected {name:?}, got {got:?}: {data}"
            );
        }
    }

    /// Asserts that no event but `presence` arrives for a while.
    pub async fn expect_silence(&mut self) {
        let until = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(Some(frame)) = tokio::time::timeout_at(until, self.socket.next()).await {
            let presence = matches!(&frame, Ok(Message::Text(text)) if text.as_str().starts_with(r#"{"event":"presence""#));
            assert!(presence, "expected silence, got {frame:?}");
        }
    }

    /// Asserts that no event at all arrives for a while.
    pub async fn expect_no_event(&mut self) {
        if let Ok(Some(frame)) =
            tokio::time::timeout(Duration::from_millis(300), self.socket.next()).await
        {
            panic!("expected no event, got {frame:?}");
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.expect("send");
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn chat(&mut self, room: u64, content: &str) {
        self.send_json(json!({"event": "chat", "data": {"chatSeq": room, "content": content}}))
            .await;
    }

    /// Reads until the server closes; the close frame's code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("close in time")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}
