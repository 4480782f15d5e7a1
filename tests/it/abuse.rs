//! What an unauthenticated (or merely hostile) client can do to the server: each
//! test is one finding of the abuse probe (issue 11), reproduced against the real
//! binary with small limits, and what the server must do instead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{assert_error, send, Server, PATIENCE};

async fn server_with(config: &str) -> (Server, tempfile::TempDir) {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let path = tmp.path().join("daehwa.toml");
    std::fs::write(&path, config).expect("config");
    let server = Server::start_with(&["--config", path.to_str().expect("path")]).await;
    (server, tmp)
}

/// Resident memory of a process, in KiB, from /proc/PID/status.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn login_request(
    server: &Server,
    http: &reqwest::Client,
    username: &str,
    password: &str,
    from: &str,
) -> reqwest::RequestBuilder {
    http.post(server.url("/api/auth/login"))
        .header("x-forwarded-for", from)
        .json(&json!({"username": username, "password": password}))
}

/// Sends raw bytes on a new connection and reads until the server closes it (or
/// PATIENCE runs out); what it answered.
async fn raw_exchange(server: &Server, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

/// Finding 1: every login's name became a rate-limiter key before anything checked
/// it: 3 000 logins with 60 KB names took RSS from 9 MB to 383 MB. Names longer
/// than a username can be never become keys, and the keys of the per-address limit
/// are bounded (here by many forwarded addresses, as from a botnet behind a proxy).
#[tokio::test]
async fn login_floods_with_huge_names_do_not_grow_memory() {
    let (server, _tmp) = server_with(
        // One login per address and minute: each address's key stays in use for a
        // minute, so the keys fill however slowly a loaded machine sends.
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n[limits]\nrate_limit_keys = 300\naddress_login_attempts_per_minute = 1\n",
    )
    .await;
    let http = reqwest::Client::new();
    // Warm up the allocator and the connection pool first.
    for n in 0..20 {
        let _ = send(login_request(
            &server,
            &http,
            "warm",
            "password",
            &format!("10.9.0.{n}"),
        ))
        .await;
    }
    let before = rss_kib(server.pid());
    let huge = "n".repeat(60_000);
    let refused_full = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..8u32 {
        let http = http.clone();
        let url = server.url("/api/auth/login");
        let huge = huge.clone();
        let refused_full = Arc::clone(&refused_full);
        tasks.push(tokio::spawn(async move {
            for n in 0..64u32 {
                let id = worker * 64 + n;
                let from = format!("10.{}.{}.{}", id / 65536, (id / 256) % 256, id % 256);
                let (status, body) = send(
                    http.post(&url)
                        .header("x-forwarded-for", from)
                        .json(&json!({"username": format!("{huge}{id}"), "password": "password"})),
                )
                .await;
                match status {
                    StatusCode::UNAUTHORIZED => assert_eq!(body["error"], "bad_credentials"),
                    StatusCode::TOO_MANY_REQUESTS => {
                        refused_full.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("unexpected {other}: {body}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("flood");
    }
    let after = rss_kib(server.pid());
    eprintln!("RSS before {before} KiB, after 512 logins with 60 KB names: {after} KiB");
    assert!(
        after < before + 20 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // 512 addresses against a bound of 300 keys: the limiter filled and refused.
    assert!(refused_full.load(Ordering::Relaxed) > 0);
}

/// Finding 8: 12 wrong logins for `alice` from anywhere locked her out. Now the
/// limit is per (name, address) and per address: the attacker's address is
/// refused, hers is not; behind a trusted proxy the forwarded address counts.
#[tokio::test]
async fn an_attacker_elsewhere_cannot_lock_a_user_out() {
    let (server, _tmp) = server_with(
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [limits]\nlogin_attempts_per_minute = 3\naddress_login_attempts_per_minute = 5\n",
    )
    .await;
    server.register("alice").await;
    let http = reqwest::Client::new();
    for _ in 0..3 {
        assert_error(
            &send(login_request(
                &server,
                &http,
                "alice",
                "wrong guess",
                "203.0.113.66",
            ))
            .await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        );
    }
    assert_error(
        &send(login_request(
            &server,
            &http,
            "alice",
            "wrong guess",
            "203.0.113.66",
        ))
        .await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
    // Alice, elsewhere, is not locked out.
    let (status, body) = send(login_request(
        &server,
        &http,
        "alice",
        "correct horse",
        "198.51.100.7",
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The attacker's address is limited whatever names it tries (5 a minute).
    assert_error(
        &send(login_request(
            &server,
            &http,
            "bob",
            "wrong guess",
            "203.0.113.66",
        ))
        .await,
        StatusCode::UNAUTHORIZED,
        "bad_credentials",
    );
    assert_error(
        &send(login_request(
            &server,
            &http,
            "carol",
            "wrong guess",
            "203.0.113.66",
        ))
        .await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
}

/// Without trusted proxies, X-Forwarded-For proves nothing: the TCP peer counts.
#[tokio::test]
async fn forwarded_for_is_ignored_unless_the_proxy_is_trusted() {
    let (server, _tmp) = server_with("[limits]\nlogin_attempts_per_minute = 2\n").await;
    server.register("alice").await;
    let http = reqwest::Client::new();
    for n in 0..2 {
        let from = format!("192.0.2.{n}");
        assert_eq!(
            send(login_request(&server, &http, "alice", "wrong guess", &from))
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_error(
        &send(login_request(
            &server,
            &http,
            "alice",
            "wrong guess",
            "192.0.2.99",
        ))
        .await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
}

/// Finding 6: registrations were unlimited and shared the hashing queue with
/// logins (a login went from 0.05 s to 1.5 s under a registration flood). Now
/// they are limited per address, and a login does not wait behind them.
#[tokio::test]
async fn registrations_are_limited_and_logins_do_not_queue_behind_them() {
    let (server, _tmp) = server_with(
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n[limits]\nregistrations_per_hour = 3\n",
    )
    .await;
    let http = reqwest::Client::new();
    let register = |name: String, from: &str| {
        send(
            http.post(server.url("/api/auth/register"))
                .header("x-forwarded-for", from)
                .json(&json!({"username": name, "password": "correct horse"})),
        )
    };
    for n in 0..3 {
        assert_eq!(
            register(format!("user{n}"), "203.0.113.1").await.0,
            StatusCode::CREATED
        );
    }
    assert_error(
        &register("user3".into(), "203.0.113.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_registrations",
    );
    assert_eq!(
        register("user4".into(), "203.0.113.2").await.0,
        StatusCode::CREATED,
        "another address may register"
    );

    // A flood of registrations from many addresses, and one login in the middle.
    const FLOOD: usize = 24;
    let done = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::new();
    for n in 0..FLOOD {
        let request = http
            .post(server.url("/api/auth/register"))
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .json(&json!({"username": format!("flood{n}"), "password": "correct horse"}));
        let done = Arc::clone(&done);
        flood.push(tokio::spawn(async move {
            let (status, _) = send(request).await;
            assert_eq!(status, StatusCode::CREATED);
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    // Once the first is through, the rest are queued for hashing.
    while done.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, body) = send(login_request(
        &server,
        &http,
        "user0",
        "correct horse",
        "192.0.2.1",
    ))
    .await;
    let done_at_login = done.load(Ordering::SeqCst);
    assert_eq!(status, StatusCode::OK, "{body}");
    for task in flood {
        task.await.expect("registration");
    }
    assert!(
        done_at_login < FLOOD / 2,
        "the login waited for {done_at_login} of {FLOOD} registrations"
    );
}

/// Finding 7: protected-room passwords could be guessed without limit. Now every
/// try costs a token per user and per room.
#[tokio::test]
async fn room_passwords_cannot_be_guessed_quickly() {
    let (server, _tmp) = server_with("[limits]\nroom_password_attempts_per_minute = 3\n").await;
    let alice = server.register("alice").await;
    let mallory = server.register("mallory").await;
    let carol = server.register("carol").await;
    let room = alice
        .create_room("protected", "vault", Some("open sesame"))
        .await;
    for _ in 0..3 {
        assert_error(
            &mallory.join(room, Some("guess guess")).await,
            StatusCode::FORBIDDEN,
            "wrong_password",
        );
    }
    let refused = mallory.join(room, Some("open sesame")).await;
    assert_error(&refused, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    // The room's own budget is spent too: another account does not reset it.
    assert_error(
        &carol.join(room, Some("guess again")).await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
}

/// Finding 10: look-alike names registered beside the real ones. Hangul names work.
#[tokio::test]
async fn lookalike_usernames_are_refused_and_hangul_names_work() {
    let (server, _tmp) = server_with("").await;
    for name in ["alice", "sam", "istanbul"] {
        server.register(name).await;
    }
    let http = reqwest::Client::new();
    let register = |name: &str| {
        send(
            http.post(server.url("/api/auth/register"))
                .json(&json!({"username": name, "password": "correct horse"})),
        )
    };
    for (name, status, code) in [
        ("\u{430}lice", StatusCode::BAD_REQUEST, "invalid_username"),
        ("ａｌｉｃｅ", StatusCode::BAD_REQUEST, "invalid_username"),
        ("ſam", StatusCode::BAD_REQUEST, "invalid_username"),
        ("alıce", StatusCode::CONFLICT, "username_taken"),
        ("İstanbul", StatusCode::CONFLICT, "username_taken"),
        ("Alice", StatusCode::CONFLICT, "username_taken"),
    ] {
        assert_error(&register(name).await, status, code);
    }
    let (status, body) = register("김철수").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["username"], "김철수");
    assert_eq!(register("김철호").await.0, StatusCode::CREATED);
    assert_eq!(register("kim철수").await.0, StatusCode::CREATED);
    assert_error(
        &register("김철수").await,
        StatusCode::CONFLICT,
        "username_taken",
    );
    let (status, body) = send(
        http.post(server.url("/api/auth/login"))
            .json(&json!({"username": "김철수", "password": "correct horse"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Finding 11: a blocked user's invitations still arrived, invitations could not
/// be declined, and room creation was unlimited.
#[tokio::test]
async fn blocked_users_cannot_invite_invitations_can_be_declined_rooms_are_limited() {
    let (server, _tmp) = server_with("[limits]\nrooms_per_hour = 3\n").await;
    let alice = server.register("alice").await;
    let mallory = server.register("mallory").await;
    let bob = server.register("bob").await;
    let early = mallory
        .create_room("private", "before the block", None)
        .await;
    assert_eq!(
        mallory
            .post(
                &format!("/api/chatrooms/{early}/invite/{}", alice.user_id),
                json!({})
            )
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let listed = |rooms: &Value, id: u64| {
        rooms
            .as_array()
            .expect("rooms")
            .iter()
            .any(|r| r["chatSeq"] == id)
    };
    assert!(listed(&alice.get("/api/chatrooms").await.1, early));
    // Blocking drops mallory's pending invitation, and refuses new ones.
    assert_eq!(
        alice
            .put(&format!("/api/users/blocks/{}", mallory.user_id), json!({}))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert!(!listed(&alice.get("/api/chatrooms").await.1, early));
    let (mut alice_ws, _) = alice.connect().await;
    let room = mallory.create_room("private", "spam", None).await;
    assert_error(
        &mallory
            .post(
                &format!("/api/chatrooms/{room}/invite/{}", alice.user_id),
                json!({}),
            )
            .await,
        StatusCode::FORBIDDEN,
        "blocked",
    );
    // The third room of the hour is the last.
    mallory.create_room("public", "third", None).await;
    assert_error(
        &mallory
            .post(
                "/api/chatrooms/new",
                json!({"chatType": "public", "chatName": "one too many", "isDirected": false}),
            )
            .await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_rooms",
    );

    // Bob's invitation arrives, and alice declines it.
    let bobs = bob.create_room("private", "bob's", None).await;
    assert_eq!(
        bob.post(
            &format!("/api/chatrooms/{bobs}/invite/{}", alice.user_id),
            json!({})
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let invite = alice_ws.expect_skipping("invite", &["new room"]).await;
    assert_eq!(
        invite["chatSeq"], bobs,
        "mallory's invitation never arrived first"
    );
    assert!(listed(&alice.get("/api/chatrooms").await.1, bobs));
    assert_eq!(
        alice
            .delete(&format!("/api/chatrooms/{bobs}/invite"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert!(!listed(&alice.get("/api/chatrooms").await.1, bobs));
    assert_error(
        &alice.join(bobs, None).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
    assert_error(
        &alice.delete(&format!("/api/chatrooms/{bobs}/invite")).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
}

/// Finding 12: a non-UTF-8 Authorization header answered 500 with a warning, and
/// malformed HTTP logged an ERROR per connection. Finding 13: HTTP/2 without TLS
/// is not served.
#[tokio::test]
async fn malformed_requests_get_4xx_and_quiet_logs() {
    let (server, _tmp) = server_with("").await;
    let reply = raw_exchange(
        &server,
        b"GET /api/users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    let reply = raw_exchange(
        &server,
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    let reply = raw_exchange(&server, b"GARBAGE\x01 / NONSENSE\r\n\r\n").await;
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
        "{reply}"
    );
    // The HTTP/2 preface: no SETTINGS frame comes back, only HTTP/1.1 or a close.
    let reply = raw_exchange(&server, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 4"),
        "{reply:?}"
    );
    assert_eq!(
        send(reqwest::Client::new().get(server.url("/healthz")))
            .await
            .0,
        StatusCode::OK
    );
    let logs = server.logs();
    assert!(
        !logs.contains("ERROR") && !logs.contains("WARN"),
        "client mistakes must not log warnings or errors:\n{logs}"
    );
}

/// Finding 2: every unknown path and custom method became a metrics label, kept
/// for ever (5 000 junk requests made /metrics 40 MB). They share one label now,
/// and the log never carries their paths.
#[tokio::test]
async fn unknown_routes_share_one_metrics_label() {
    let (server, _tmp) = server_with("").await;
    let http = reqwest::Client::new();
    let junk = "j".repeat(2000);
    for n in 0..300 {
        let method = reqwest::Method::from_bytes(format!("JUNK{n}").as_bytes()).expect("method");
        let _ = http
            .request(method, server.url(&format!("/api/{junk}{n}")))
            .send()
            .await
            .expect("reply");
        let _ = http
            .get(server.url(&format!("/nothing/{junk}{n}")))
            .send()
            .await
            .expect("reply");
    }
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.len() < 20_000,
        "/metrics is {} bytes",
        metrics.len()
    );
    assert!(!metrics.contains(&junk[..100]) && !metrics.contains("JUNK"));
    assert!(metrics.contains("route=\"OTHER (unmatched)\""), "{metrics}");
    assert!(metrics.contains("route=\"GET (unmatched)\""), "{metrics}");
    let logs = server.logs();
    assert!(!logs.contains(&junk[..100]) && !logs.contains("JUNK"));
}

/// Finding 3: connections that send half a request and stop held the server: no
/// header timeout, no connection limit, and SIGTERM did not stop it in 25 s.
#[tokio::test]
async fn half_open_requests_time_out_and_do_not_crowd_out_others() {
    let (server, _tmp) = server_with(
        "[server]\nmax_connections = 20\nheader_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"\n",
    )
    .await;
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        // Refused ones are closed by the server at once; the write may fail then.
        let _ = stream
            .write_all(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\n")
            .await;
        slow.push(stream);
    }
    // Every one of them is closed by the server: at once beyond the limit, after
    // the header timeout within it.
    for stream in &mut slow {
        let mut buf = [0u8; 512];
        let closed = tokio::time::timeout(PATIENCE, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a half-open request was never closed");
    }
    // And the server answers others.
    let http = reqwest::Client::new();
    assert_eq!(
        send(http.get(server.url("/healthz"))).await.0,
        StatusCode::OK
    );

    // A body sent too slowly: 408 after body_read_timeout.
    let reply = raw_exchange(
        &server,
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("body_timeout"), "{reply}");
}

/// The connection limit counts WebSockets too: an upgraded connection keeps its
/// place until it closes.
#[tokio::test]
async fn websockets_count_against_the_connection_limit() {
    // Alice's HTTP client keeps its connection (of the registration) open: 1 + 3.
    let (server, _tmp) = server_with("[server]\nmax_connections = 4\n").await;
    let alice = server.register("alice").await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(alice.connect().await.0);
    }
    // Full: a new connection is closed before it gets an answer.
    let refused = reqwest::Client::new()
        .get(server.url("/healthz"))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
    drop(sockets.pop());
    let mut answered = false;
    for _ in 0..100 {
        if let Ok(response) = reqwest::Client::new()
            .get(server.url("/healthz"))
            .send()
            .await
        {
            answered = response.status() == StatusCode::OK;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered, "a closed WebSocket gives its place back");
}

#[tokio::test]
async fn shutdown_does_not_wait_on_half_open_requests() {
    let (mut server, _tmp) = server_with(
        "[server]\nheader_read_timeout = \"60s\"\nshutdown_grace = \"1s\"\nbody_read_timeout = \"60s\"\n",
    )
    .await;
    let mut slow = Vec::new();
    for n in 0..30 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        let request: &[u8] = if n % 2 == 0 {
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        } else {
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
        };
        stream.write_all(request).await.expect("write");
        slow.push(stream);
    }
    // Let the server take them all in before the signal.
    assert_eq!(
        send(reqwest::Client::new().get(server.url("/healthz")))
            .await
            .0,
        StatusCode::OK
    );
    let status = tokio::time::timeout(PATIENCE, server.stop())
        .await
        .expect("SIGTERM must stop the server despite half-open requests");
    assert!(status.success(), "{status:?}: {}", server.logs());
    assert!(server.logs().contains("shutdown complete"));
}

/// Finding 13: room names accepted bidirectional overrides and zero-width
/// characters.
#[tokio::test]
async fn room_names_refuse_invisible_characters() {
    let (server, _tmp) = server_with("").await;
    let alice = server.register("alice").await;
    for name in [
        "evil\u{202e}gpj.exe",
        "gen\u{200b}eral",
        "\u{2066}x\u{2069}",
    ] {
        assert_error(
            &alice
                .post(
                    "/api/chatrooms/new",
                    json!({"chatType": "public", "chatName": name, "isDirected": false}),
                )
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_chat_name",
        );
    }
    alice.create_room("public", "잡담방 🎉", None).await;
}

/// Finding 13: a history page scans a bounded number of messages when the caller
/// blocks their senders (4 000 blocked messages slowed every page down).
#[tokio::test]
async fn history_scans_are_bounded_when_senders_are_blocked() {
    let (server, _tmp) =
        server_with("[limits]\nmessages_per_second = 100000.0\nmessage_burst = 100000\n").await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = alice.create_room("public", "general", None).await;
    bob.join(room, None).await;
    carol.join(room, None).await;
    carol.say(room, "far back").await;
    for n in 0..25 {
        bob.say(room, &format!("noise {n}")).await;
    }
    carol.say(room, "recent").await;
    alice
        .put(&format!("/api/users/blocks/{}", bob.user_id), json!({}))
        .await;
    // A page of 2 reads at most 10 pages' worth (20 messages): "far back" is 26
    // messages away, beyond that.
    let page = alice.history(room, -1, 2).await;
    let contents: Vec<&str> = page.iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(contents, ["recent"]);
    // A page large enough to reach it does.
    let page = alice.history(room, -1, 5).await;
    let contents: Vec<&str> = page.iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(contents, ["far back", "recent"]);
}

/// Finding 13: a disabled account's login answered 401 for a wrong password and
/// 403 for the right one, telling an attacker when the guess was right.
#[tokio::test]
async fn a_disabled_accounts_login_does_not_reveal_the_password() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data = tmp.path().join("data");
    let mut server = Server::start_in(&data, &[]).await;
    server.register("alice").await;
    assert!(server.stop().await.success());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_daehwa"))
        .args(["admin", "--data-dir"])
        .arg(&data)
        .args(["disable-user", "alice"])
        .output()
        .expect("run daehwa admin");
    assert!(output.status.success(), "{output:?}");
    let server = Server::start_in(&data, &[]).await;
    let http = reqwest::Client::new();
    for password in ["correct horse", "wrong guess"] {
        assert_error(
            &send(
                http.post(server.url("/api/auth/login"))
                    .json(&json!({"username": "alice", "password": password})),
            )
            .await,
            StatusCode::FORBIDDEN,
            "account_disabled",
        );
    }
}

/// Finding 3: out of file descriptors, accept errors were logged in a loop. Now
/// the loop backs off with one warning per 10 s, and recovers once descriptors are
/// free again.
#[tokio::test]
async fn accept_errors_back_off_and_recover() {
    let (mut server, _tmp) = server_with("[server]\nheader_read_timeout = \"60s\"\n").await;
    let pid = server.pid();
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .count();
    let limit = format!("--nofile={}", open_fds + 8);
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &limit])
        .status()
        .expect("run prlimit (util-linux)");
    assert!(status.success());
    let mut idle = Vec::new();
    for _ in 0..30 {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    // Long enough for a loop without back-off to log a line per attempt.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(idle);
    let http = reqwest::Client::new();
    let mut answered = false;
    for _ in 0..100 {
        if let Ok(response) = http.get(server.url("/healthz")).send().await {
            answered = response.status() == StatusCode::OK;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "{}", server.logs());
    let logs = server.logs();
    let warnings = logs.matches("cannot accept connections").count();
    assert_eq!(warnings, 1, "{logs}");
    // And it paused between tries (10 ms doubling to 1 s: about a dozen in 3 s),
    // instead of spinning on the error.
    let retries = logs.matches("accept still failing").count();
    assert!(retries < 50, "{retries} accept retries");
    assert!(!logs.contains("ERROR"), "{logs}");
    let status = tokio::time::timeout(PATIENCE, server.stop())
        .await
        .expect("stops");
    assert!(status.success(), "{}", server.logs());
}
