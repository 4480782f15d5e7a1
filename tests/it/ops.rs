//! Operating daehwa: health, readiness, metrics, logs, the admin commands, backup and
//! restore, check-config.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{send, Server};

fn daehwa(args: &[&str], stdin: Option<&str>) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_daehwa"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run daehwa");
    if let Some(text) = stdin {
        use std::io::Write;
        // A command that refuses early never reads it: a broken pipe is fine.
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes());
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().expect("wait");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Samples of an OpenMetrics text: `name{labels}` → value.
fn scrape(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn metrics(server: &Server) -> HashMap<String, f64> {
    let response = reqwest::get(server.url("/metrics")).await.expect("scrape");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("type")
        .contains("openmetrics"));
    scrape(&response.text().await.expect("text"))
}

#[tokio::test]
async fn health_readiness_and_metrics_that_move() {
    let server = Server::start().await;
    assert_eq!(
        send(reqwest::Client::new().get(server.url("/healthz"))).await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        send(reqwest::Client::new().get(server.url("/readyz"))).await,
        (StatusCode::OK, json!({"status": "ready"}))
    );

    let before = metrics(&server).await;
    assert_eq!(before["daehwa_messages_received_total"], 0.0);
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    let (mut ws, _) = alice.connect().await;
    for n in 0..5 {
        ws.chat(room, &format!("m{n}")).await;
        ws.expect("chat").await;
    }
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let after = metrics(&server).await;
    assert_eq!(after["daehwa_messages_received_total"], 5.0);
    assert_eq!(after["daehwa_messages_delivered_total"], 5.0);
    assert_eq!(after["daehwa_websocket_connections"], 1.0);
    assert_eq!(after["daehwa_users_online"], 1.0);
    assert_eq!(after["daehwa_buffered_messages"], 0.0);
    assert!(after["daehwa_flushes_total"] >= 1.0);
    assert!(after["daehwa_flush_duration_seconds_count"] >= 1.0);
    assert_eq!(after["daehwa_flush_errors_total"], 0.0);
    assert!(after["daehwa_database_size_bytes"] > 0.0);
    assert_eq!(
        after["daehwa_http_requests_total{route=\"POST /api/chatrooms/new\",status=\"201\"}"],
        1.0
    );
    assert!(after.contains_key("daehwa_http_requests_total{route=\"GET /ws\",status=\"101\"}"));
    // One log line per request, with route, status and latency.
    let logs = server.logs();
    assert!(
        logs.lines().any(|l| l.contains("request")
            && l.contains("route=POST /api/chatrooms/new")
            && l.contains("status=201")
            && l.contains("micros=")),
        "{logs}"
    );
}

#[tokio::test]
async fn json_logs() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let config = tmp.path().join("daehwa.toml");
    std::fs::write(&config, "[log]\nformat = \"json\"\n").expect("config");
    let server = Server::start_with(&["--config", config.to_str().expect("path")]).await;
    reqwest::get(server.url("/healthz")).await.expect("get");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = server.logs();
    let request = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "request")
        .unwrap_or_else(|| panic!("no JSON request line in:\n{logs}"));
    assert_eq!(request["fields"]["route"], "GET /healthz");
    assert_eq!(request["fields"]["status"], 200);
}

#[tokio::test]
async fn admin_commands_on_a_data_dir() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data = tmp.path().join("data");
    let dir = data.to_str().expect("path");
    let admin = |args: &[&str], stdin: Option<&str>| {
        let mut all = vec!["admin", "--data-dir", dir];
        all.extend_from_slice(args);
        daehwa(&all, stdin)
    };
    let (code, out, err) = admin(&["create-user", "alice"], Some("first password\n"));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("created user 1 (alice)"), "{out}");
    let (code, _, err) = admin(&["create-user", "alice"], Some("another one\n"));
    assert_eq!(code, Some(1));
    assert!(err.contains("taken"), "{err}");
    let (code, _, err) = admin(&["create-user", "bob"], Some(""));
    assert_eq!(code, Some(1));
    assert!(err.contains("standard input"), "{err}");
    admin(&["create-user", "bob"], Some("bob's password\n"));
    assert_eq!(
        admin(&["reset-password", "alice"], Some("second password\n")).0,
        Some(0)
    );
    assert_eq!(admin(&["disable-user", "bob"], None).0, Some(0));
    let (_, out, _) = admin(&["list-users"], None);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "ID  USERNAME  ROOMS  STATE",
            "1   alice     0      active",
            "2   bob       0      disabled"
        ]
    );
    let (code, _, err) = admin(&["disable-user", "nobody"], None);
    assert_eq!(code, Some(1), "{err}");

    // The server sees what the commands did.
    let mut server = Server::start_in(&data, &[]).await;
    let http = reqwest::Client::new();
    let login = |name: &str, password: &str| {
        send(
            http.post(server.url("/api/auth/login"))
                .json(&json!({"username": name, "password": password})),
        )
    };
    assert_eq!(
        login("alice", "first password").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, session) = login("alice", "second password").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        login("bob", "bob's password").await.1["error"],
        "account_disabled"
    );
    let token = session["token"].as_str().expect("token");
    send(
        http.post(server.url("/api/chatrooms/new"))
            .bearer_auth(token)
            .json(&json!({"chatType": "public", "chatName": "general"})),
    )
    .await;
    let say = |server: &Server, token: &str| {
        send(
            reqwest::Client::new()
                .post(server.url("/api/chatrooms/1/messages"))
                .bearer_auth(token)
                .json(&json!({"content": "hello"})),
        )
    };
    assert_eq!(say(&server, token).await.1["msgId"], 1);

    // While the server holds the directory, the commands refuse and change nothing.
    let (code, _, err) = admin(&["create-user", "carol"], Some("carol's password\n"));
    assert_eq!(code, Some(1));
    assert!(err.contains("in use by a running daehwa"), "{err}");
    assert!(server.stop().await.success());
    let (_, out, _) = admin(&["list-rooms"], None);
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("1   general  public  1")),
        "{out}"
    );
    assert!(!admin(&["list-users"], None).1.contains("carol"));
    // The commands left the directory as cleanly shut down as they found it: ids go
    // on at 2, not above a crash's reserved block.
    let server = Server::start_in(&data, &[]).await;
    assert_eq!(say(&server, token).await.1["msgId"], 2);
    assert!(
        !server.logs().contains("did not shut down cleanly"),
        "{}",
        server.logs()
    );
}

#[tokio::test]
async fn check_config() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, "[server]\nbind = \"0.0.0.0:9000\"\n").expect("write");
    let (code, out, _) = daehwa(
        &["check-config", "--config", good.to_str().expect("path")],
        None,
    );
    assert_eq!(code, Some(0));
    assert!(
        out.contains("bind = \"0.0.0.0:9000\"") && out.contains("flush_interval = \"1s\""),
        "{out}"
    );
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[storage]\nflush_intervall = \"1s\"\n").expect("write");
    let (code, _, err) = daehwa(
        &["check-config", "--config", bad.to_str().expect("path")],
        None,
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("flush_intervall"), "{err}");
}

#[tokio::test]
async fn a_backup_under_load_restores_a_prefix_of_every_room() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data = tmp.path().join("data");
    let config = tmp.path().join("daehwa.toml");
    std::fs::write(
        &config,
        "[admin]\ntoken = \"an admin token of some length\"\n[storage]\nflush_interval = \"500ms\"\n\
         [limits]\nmessages_per_second = 100000.0\nmessage_burst = 100000\n",
    )
    .expect("config");
    let config_arg = config.to_str().expect("path");
    let server = Server::start_in(&data, &["--config", config_arg]).await;
    let alice = server.register("alice").await;
    let rooms = [
        alice.create_room("public", "one", None).await,
        alice.create_room("public", "two", None).await,
    ];
    // Load: both rooms keep receiving messages until the backup is done.
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = rooms
        .iter()
        .map(|&room| {
            let alice = alice.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut sent = Vec::new();
                for n in 0..20_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let content = format!("r{room}-{n}");
                    alice.say(room, &content).await;
                    sent.push(content);
                }
                sent
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = tmp.path().join("daehwa.backup");
    let args: Vec<String> = vec![
        "backup".into(),
        "--config".into(),
        config_arg.into(),
        "--data-dir".into(),
        data.to_str().expect("path").into(),
        "--server".into(),
        server.addr.to_string(),
        "--out".into(),
        out.to_str().expect("path").into(),
    ];
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        daehwa(&args.iter().map(String::as_str).collect::<Vec<_>>(), None)
    })
    .await
    .expect("join");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("backup written"), "{stdout}");
    // A wrong token is refused, and the reason shown.
    let wrong = tmp.path().join("wrong.toml");
    std::fs::write(&wrong, "[admin]\ntoken = \"not the admin token at all\"\n").expect("config");
    let wrong_out = tmp.path().join("wrong.backup");
    let args = [
        "backup",
        "--config",
        wrong.to_str().expect("path"),
        "--data-dir",
        data.to_str().expect("path"),
        "--server",
        &server.addr.to_string(),
        "--out",
        wrong_out.to_str().expect("path"),
    ]
    .map(str::to_owned);
    let (code, _, stderr) = tokio::task::spawn_blocking(move || {
        daehwa(&args.iter().map(String::as_str).collect::<Vec<_>>(), None)
    })
    .await
    .expect("join");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("refused the backup (401"), "{stderr}");
    assert!(!wrong_out.exists());
    // A few more messages after the snapshot, then stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    for sender in senders {
        sent.push(sender.await.expect("sender"));
    }

    let restored = tmp.path().join("restored");
    let (code, _, stderr) = daehwa(
        &[
            "restore",
            out.to_str().expect("path"),
            "--data-dir",
            restored.to_str().expect("path"),
        ],
        None,
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = daehwa(
        &[
            "restore",
            out.to_str().expect("path"),
            "--data-dir",
            restored.to_str().expect("path"),
        ],
        None,
    );
    assert_eq!(code, Some(1), "restore only into an empty directory");
    assert!(stderr.contains("not empty"), "{stderr}");

    let copy = Server::start_in(&restored, &[]).await;
    let alice = alice.at(&copy);
    let mut total = 0;
    for (room, sent) in rooms.iter().zip(&sent) {
        let history: Vec<String> = alice
            .full_history(*room)
            .await
            .into_iter()
            .map(|(_, content)| content)
            .collect();
        assert_eq!(
            history.as_slice(),
            &sent[..history.len()],
            "room {room}: not a prefix of what was sent"
        );
        total += history.len();
        // New messages go on from the restored history.
        assert_eq!(
            alice.say(*room, "after restore").await,
            history.len() as u64 + 1
        );
    }
    let all: usize = sent.iter().map(Vec::len).sum();
    assert!(
        total > 0 && total < all,
        "the backup should land mid-load: {total} of {all}"
    );
}

/// `Type=notify`: READY=1 once serving, STOPPING=1 on the way out.
#[tokio::test]
async fn tells_systemd_when_ready_and_when_stopping() {
    use std::os::unix::net::UnixDatagram;
    let tmp = tempfile::TempDir::new().expect("tmp");
    let socket_path = tmp.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_daehwa"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .env("NOTIFY_SOCKET", &socket_path)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut buffer = [0u8; 64];
    let n = socket.recv(&mut buffer).expect("READY=1 within 10 s");
    // One state per line, as sd_notify(3) allows.
    assert_eq!(buffer[..n].trim_ascii_end(), b"READY=1");
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    let n = socket.recv(&mut buffer).expect("STOPPING=1");
    assert_eq!(buffer[..n].trim_ascii_end(), b"STOPPING=1");
    assert!(child.wait().expect("wait").success());
}
