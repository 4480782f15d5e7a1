//! Search: Korean by substring and other text by word, only the caller's rooms and
//! never blocked senders, edits and deletes reflected (buffered and stored), pages,
//! bad queries, and the indexing of messages stored before the index existed.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{assert_error, send, Client, Server};

async fn search(client: &Client, query: &[(&str, &str)]) -> (StatusCode, Value) {
    send(
        client
            .http
            .get(client.url("/api/search"))
            .query(query)
            .bearer_auth(&client.token),
    )
    .await
}

/// The contents found for `q`, newest first.
async fn found(client: &Client, q: &str) -> Vec<String> {
    let (status, page) = search(client, &[("q", q)]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|m| m["content"].as_str().expect("content").to_owned())
        .collect()
}

#[tokio::test]
async fn korean_by_substring_and_english_by_word() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    for text in [
        "학교에 갔다",
        "오늘 학교는 쉬어요",
        "Deploy the API, please",
        "the api deploy failed at 3시",
        "학교 deploy",
        "deployment is done",
    ] {
        alice.say(room, text).await;
    }
    assert_eq!(
        found(&alice, "학교").await,
        ["학교 deploy", "오늘 학교는 쉬어요", "학교에 갔다"]
    );
    assert_eq!(found(&alice, "갔다").await, ["학교에 갔다"]);
    assert_eq!(found(&alice, "학교에").await, ["학교에 갔다"]);
    assert_eq!(found(&alice, "교").await.len(), 3, "one syllable");
    assert_eq!(
        found(&alice, "DEPLOY api").await,
        ["the api deploy failed at 3시", "Deploy the API, please"]
    );
    assert_eq!(found(&alice, "deploy 학교").await, ["학교 deploy"]);
    assert_eq!(found(&alice, "시").await, ["the api deploy failed at 3시"]);
    // Words, not pieces of words; every term must match.
    assert!(found(&alice, "deplo").await.is_empty());
    assert!(found(&alice, "학교 집").await.is_empty());

    // Results are messages, with their room.
    let (_, page) = search(&alice, &[("q", "갔다")]).await;
    assert_eq!(page["results"][0]["chatSeq"], room);
    assert_eq!(page["results"][0]["senderName"], "alice");
    assert_eq!(page["terms"], json!(["갔다"]));
    assert_eq!(page["nextBefore"], Value::Null);
}

#[tokio::test]
async fn only_rooms_one_is_in_and_never_blocked_senders() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let shared = alice.create_room("public", "shared", None).await;
    let private = alice.create_room("private", "private", None).await;
    assert_eq!(bob.join(shared, None).await.0, StatusCode::OK);
    assert_eq!(carol.join(shared, None).await.0, StatusCode::OK);
    alice.say(shared, "회의 자료 공유합니다").await;
    alice.say(private, "회의 비밀 자료").await;
    carol.say(shared, "회의 시간 바뀜").await;

    assert_eq!(found(&alice, "회의").await.len(), 3);
    assert_eq!(
        found(&bob, "회의").await,
        ["회의 시간 바뀜", "회의 자료 공유합니다"]
    );
    // A room one is not in: refused by name, absent otherwise.
    assert_error(
        &search(&bob, &[("q", "회의"), ("room", &private.to_string())]).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
    let other = alice.create_room("public", "other", None).await;
    alice.say(other, "회의 다른 방").await;
    assert_error(
        &search(&bob, &[("q", "회의"), ("room", &other.to_string())]).await,
        StatusCode::FORBIDDEN,
        "not_a_member",
    );
    // Blocking hides the blocked sender's messages.
    assert_eq!(
        bob.put(&format!("/api/users/blocks/{}", carol.user_id), json!({}))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(found(&bob, "회의").await, ["회의 자료 공유합니다"]);
    // Leaving a room takes its messages out of one's results.
    assert_eq!(
        bob.delete(&format!("/api/chatrooms/leave/{shared}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert!(found(&bob, "회의").await.is_empty());
}

async fn edit(client: &Client, room: u64, msg: u64, content: &str) {
    let (status, body) = client
        .patch(
            &format!("/api/chatrooms/{room}/messages/{msg}"),
            json!({ "content": content }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn delete(client: &Client, room: u64, msg: u64) {
    let (status, body) = client
        .delete(&format!("/api/chatrooms/{room}/messages/{msg}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

#[tokio::test]
async fn edits_and_deletes_change_what_is_found_before_and_after_the_flush() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data = tmp.path().join("data");
    let mut server = Server::start_in(&data, &[]).await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    let first = alice.say(room, "회의는 내일 열려요").await;
    let second = alice.say(room, "lunch at noon").await;
    let third = alice.say(room, "keep this 회의록").await;

    // While the changes are buffered.
    edit(&alice, room, first, "회의는 모레 열려요").await;
    delete(&alice, room, second).await;
    assert!(found(&alice, "내일").await.is_empty(), "old text");
    assert_eq!(found(&alice, "모레").await, ["회의는 모레 열려요"]);
    assert!(found(&alice, "lunch").await.is_empty(), "deleted");

    // Stored (a graceful restart flushes), then changed again.
    server.stop().await;
    let server = Server::start_in(&data, &[]).await;
    let alice = alice.at(&server);
    assert!(found(&alice, "내일").await.is_empty());
    assert_eq!(found(&alice, "모레").await, ["회의는 모레 열려요"]);
    assert!(found(&alice, "lunch").await.is_empty());
    assert_eq!(found(&alice, "회의").await.len(), 2);
    edit(&alice, room, third, "keep this 메모").await;
    delete(&alice, room, first).await;
    assert!(found(&alice, "회의").await.is_empty());
    assert_eq!(found(&alice, "메모").await, ["keep this 메모"]);
}

/// Every page of `q`, 10 at a time: (createdAt, content) of each result, and the
/// number of pages.
async fn all_pages(client: &Client, q: &str) -> (Vec<(String, String)>, usize) {
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![("q", q.to_owned()), ("limit", "10".to_owned())];
        if let Some(b) = &before {
            query.push(("before", b.clone()));
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, page) = search(client, &query).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        for m in page["results"].as_array().expect("results") {
            seen.push((
                m["createdAt"].as_str().expect("createdAt").to_owned(),
                m["content"].as_str().expect("content").to_owned(),
            ));
        }
        match page["nextBefore"].as_str() {
            Some(next) => before = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pages never end");
    }
    (seen, pages)
}

#[tokio::test]
async fn pages_go_newest_first_without_gaps_or_repeats() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data = tmp.path().join("data");
    let mut server = Server::start_in(&data, &[]).await;
    let alice = server.register("alice").await;
    let rooms = [
        alice.create_room("public", "one", None).await,
        alice.create_room("public", "two", None).await,
    ];
    let mut sent = Vec::new();
    for n in 0..25 {
        let room = rooms[n % 2];
        let text = format!("페이지 {n}");
        let msg = alice.say(room, &text).await;
        sent.push((room, msg, text));
        if n % 3 == 0 {
            // Within the burst of the rate limit (40).
            alice.say(room, "noise").await;
        }
    }
    let mut expected: Vec<String> = sent.iter().map(|(_, _, t)| t.clone()).collect();
    expected.sort();
    // From the buffer, then (after a graceful restart) from the index.
    for stored in [false, true] {
        let alice = if stored {
            server.stop().await;
            server = Server::start_in(&data, &[]).await;
            alice.at(&server)
        } else {
            alice.clone()
        };
        let (seen, pages) = all_pages(&alice, "페이지").await;
        // Newest first (messages of the same millisecond in two rooms may come in
        // either order), each once.
        assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "{seen:?}");
        let mut contents: Vec<String> = seen.into_iter().map(|(_, c)| c).collect();
        contents.sort();
        assert_eq!(contents, expected, "stored: {stored}");
        assert_eq!(pages, 3);

        // In one room, below one of its messages.
        let (room, msg, _) = &sent[10];
        let (status, page) = search(
            &alice,
            &[
                ("q", "페이지"),
                ("room", &room.to_string()),
                ("before", &msg.to_string()),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let contents: Vec<&str> = page["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|m| m["content"].as_str().expect("content"))
            .collect();
        assert_eq!(
            contents,
            ["페이지 8", "페이지 6", "페이지 4", "페이지 2", "페이지 0"]
        );
    }
}

#[tokio::test]
async fn bad_queries_are_refused() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    for q in ["", "   ", "?!"] {
        assert_error(
            &search(&alice, &[("q", q)]).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        );
    }
    assert_error(
        &search(&alice, &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    let long = "가".repeat(100);
    assert_error(
        &search(&alice, &[("q", &long)]).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    for limit in ["0", "51", "x"] {
        assert_error(
            &search(&alice, &[("q", "a"), ("limit", limit)]).await,
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        );
    }
    assert_error(
        &search(&alice, &[("q", "a"), ("before", "nonsense")]).await,
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    );
    assert_error(
        &search(&alice, &[("q", "a"), ("unknown", "1")]).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    let anonymous = send(reqwest::Client::new().get(server.url("/api/search?q=a"))).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized");
}

/// Waits (a few seconds at most) for `line` in the server's log.
async fn wait_for_log(server: &Server, line: &str) {
    for _ in 0..200 {
        if server.logs().contains(line) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no {line:?} in the log:\n{}", server.logs());
}

/// Waits (a few seconds at most) until `q` finds `expected`: what the index holds
/// once a flush and its commit have passed.
async fn wait_until_found(client: &Client, q: &str, expected: &[&str]) {
    let mut last = Vec::new();
    for _ in 0..200 {
        last = found(client, q).await;
        if last == expected {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{q:?} found {last:?}, not {expected:?}");
}

/// A server that searches its index alone (no tail of the log): what it finds, the
/// indexer put there.
async fn index_only_server(data: &Path) -> Server {
    let config = data.with_extension("toml");
    std::fs::write(
        &config,
        "[limits]\nsearch_tail_changes = 0\n[storage]\nflush_interval = \"100ms\"\n",
    )
    .expect("config");
    Server::start_in(data, &["--config", config.to_str().expect("path")]).await
}

#[tokio::test]
async fn the_index_follows_posts_edits_and_deletes_and_survives_a_kill() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data = tmp.path().join("data");
    let mut server = index_only_server(&data).await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    let first = alice.say(room, "회의는 내일 열려요").await;
    let second = alice.say(room, "lunch at noon").await;
    alice.say(room, "회의록 keep").await;
    wait_until_found(&alice, "회의", &["회의록 keep", "회의는 내일 열려요"]).await;
    wait_until_found(&alice, "lunch", &["lunch at noon"]).await;

    edit(&alice, room, first, "모레 열려요").await;
    delete(&alice, room, second).await;
    // The stored text decides at once; the index follows.
    assert_eq!(found(&alice, "회의").await, ["회의록 keep"]);
    assert!(found(&alice, "lunch").await.is_empty());
    wait_until_found(&alice, "모레", &["모레 열려요"]).await;

    // Killed: what the index had not committed is indexed from the log at the
    // next start.
    alice.say(room, "after the 마지막 commit").await;
    wait_until_found(&alice, "마지막", &["after the 마지막 commit"]).await;
    server.kill().await;
    std::fs::remove_dir_all(data.join("search")).expect("remove the index");
    let server = index_only_server(&data).await;
    let alice = alice.at(&server);
    wait_until_found(&alice, "마지막", &["after the 마지막 commit"]).await;
    wait_until_found(&alice, "모레", &["모레 열려요"]).await;
    assert!(found(&alice, "lunch").await.is_empty());
    assert!(found(&alice, "내일").await.is_empty());
}

/// Copies the `daehwa/1` fixture into `to`.
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

#[tokio::test]
async fn messages_stored_before_the_index_are_found_after_the_upgrade() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data = tmp.path().join("data");
    copy_fixture(&data);
    let server = Server::start_in(&data, &[]).await;
    wait_for_log(&server, "search index: caught up with the log").await;
    assert!(
        server
            .logs()
            .contains("search index: indexing the log after its marks"),
        "{}",
        server.logs()
    );
    let (status, body) = send(
        reqwest::Client::new()
            .post(server.url("/api/auth/login"))
            .json(&json!({"username": "alice", "password": "correct horse"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let alice = Client::with_token(
        &server,
        body["token"].as_str().expect("token"),
        body["userId"].as_u64().expect("userId"),
    );
    assert_eq!(found(&alice, "안녕").await, ["안녕하세요"]);
    assert_eq!(found(&alice, "between").await, ["just between us"]);
    assert_eq!(found(&alice, "hello").await, ["hello everyone"]);
    // Once: the next start does not index again.
    let mut server = server;
    server.stop().await;
    let server = Server::start_in(&data, &[]).await;
    assert!(!server.logs().contains("search index: indexing the log"));
    let alice = alice.at(&server);
    assert_eq!(found(&alice, "안녕").await, ["안녕하세요"]);
}

#[tokio::test]
async fn without_the_index_search_is_unavailable_and_turned_back_on_it_catches_up() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data = tmp.path().join("data");
    let off = tmp.path().join("off.toml");
    std::fs::write(&off, "[storage]\nsearch_index = false\n").expect("config");
    let mut server = Server::start_in(&data, &["--config", off.to_str().expect("path")]).await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "general", None).await;
    alice.say(room, "written while search was off").await;
    assert_error(
        &search(&alice, &[("q", "off")]).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "search_unavailable",
    );
    assert!(!data.join("search").exists());
    server.stop().await;

    let server = index_only_server(&data).await;
    let alice = alice.at(&server);
    wait_until_found(&alice, "off", &["written while search was off"]).await;
}
