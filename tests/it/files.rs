//! Files: upload (streamed, limited, checked), download by members only (headers,
//! ranges, the browser's cookie), names made harmless, backup and restore.

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{assert_error, send, Client, Server, PATIENCE};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR fake but signed";

async fn upload(
    client: &Client,
    room: u64,
    name: &str,
    content_type: &str,
    bytes: &[u8],
) -> (StatusCode, Value) {
    send(
        client
            .http
            .post(client.url(&format!("/api/chatrooms/{room}/files")))
            .query(&[("filename", name)])
            .bearer_auth(&client.token)
            .header("content-type", content_type)
            .body(bytes.to_vec()),
    )
    .await
}

async fn download(client: &Client, file: u64) -> reqwest::Response {
    client
        .http
        .get(client.url(&format!("/api/files/{file}")))
        .bearer_auth(&client.token)
        .send()
        .await
        .expect("download")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Sends `head` and then `parts` of a body on a raw connection, reading the
/// reply as soon as the server gives one; the reply's text.
async fn raw_exchange(server: &Server, head: &str, parts: &[&[u8]]) -> String {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    for part in parts {
        // The server may already have answered and closed: writing may fail.
        if stream.write_all(part).await.is_err() {
            break;
        }
    }
    let mut reply = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                reply.extend_from_slice(&buffer[..n]);
                if reply.windows(4).any(|w| w == b"\r\n\r\n") && reply.ends_with(b"}") {
                    break;
                }
            }
            Err(_) => panic!("no reply; got {:?}", String::from_utf8_lossy(&reply)),
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("daehwa.toml");
    std::fs::write(&path, text).expect("config");
    path.to_str().expect("path").to_owned()
}

#[tokio::test]
async fn members_download_what_members_upload() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room("public", "files", None).await;

    let text = "회의록: 다음 주 월요일\n".repeat(100);
    let (status, file) = upload(
        &alice,
        room,
        "회의록.txt",
        "text/plain; charset=utf-8",
        text.as_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["name"], "회의록.txt");
    assert_eq!(file["size"], text.len());
    assert_eq!(file["contentType"], "text/plain");
    let id = file["fileId"].as_u64().expect("fileId");

    // Not a member: neither upload nor download.
    assert_error(
        &upload(&bob, room, "x.txt", "text/plain", b"x").await,
        StatusCode::FORBIDDEN,
        "not_a_member",
    );
    let refused = download(&bob, id).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(bob.join(room, None).await.0, StatusCode::OK);

    let got = download(&bob, id).await;
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(header(&got, "content-type"), "text/plain");
    assert_eq!(header(&got, "x-content-type-options"), "nosniff");
    assert_eq!(header(&got, "content-security-policy"), "sandbox");
    assert_eq!(header(&got, "accept-ranges"), "bytes");
    let disposition = header(&got, "content-disposition").to_owned();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''%ED%9A%8C%EC%9D%98%EB%A1%9D.txt"),
        "{disposition}"
    );
    let etag = header(&got, "etag").to_owned();
    assert!(etag.starts_with('"'), "{etag}");
    assert_eq!(got.bytes().await.expect("body"), text.as_bytes());

    // A range, and a revalidation.
    let part = bob
        .http
        .get(bob.url(&format!("/api/files/{id}")))
        .bearer_auth(&bob.token)
        .header("range", "bytes=0-9")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&part, "content-range"),
        format!("bytes 0-9/{}", text.len())
    );
    assert_eq!(part.bytes().await.expect("body"), &text.as_bytes()[..10]);
    let beyond = bob
        .http
        .get(bob.url(&format!("/api/files/{id}")))
        .bearer_auth(&bob.token)
        .header("range", format!("bytes={}-", text.len()))
        .send()
        .await
        .expect("range");
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let cached = bob
        .http
        .get(bob.url(&format!("/api/files/{id}")))
        .bearer_auth(&bob.token)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("revalidate");
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    // Gone from the room, gone from the files.
    assert_eq!(
        bob.delete(&format!("/api/chatrooms/leave/{room}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(download(&bob, id).await.status(), StatusCode::FORBIDDEN);
    // A private room's files do not exist for outsiders; nor do unknown ones.
    let secret = alice.create_room("private", "secret", None).await;
    let (_, hidden) = upload(&alice, secret, "plan.txt", "text/plain", b"plan").await;
    let hidden = hidden["fileId"].as_u64().expect("fileId");
    assert_eq!(download(&bob, hidden).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        download(&alice, 999_999).await.status(),
        StatusCode::NOT_FOUND
    );
    let anonymous = reqwest::get(alice.url(&format!("/api/files/{id}")))
        .await
        .expect("anonymous");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn images_are_inline_only_when_they_are_images() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "pics", None).await;

    let (status, png) = upload(&alice, room, "shot.png", "image/png", PNG).await;
    assert_eq!(status, StatusCode::CREATED, "{png}");
    let shown = download(&alice, png["fileId"].as_u64().expect("id")).await;
    assert_eq!(header(&shown, "content-type"), "image/png");
    assert!(header(&shown, "content-disposition").starts_with("inline;"));

    // An image type on bytes that are not that image, a type that is no type.
    assert_error(
        &upload(
            &alice,
            room,
            "x.png",
            "image/png",
            b"<script>alert(1)</script>",
        )
        .await,
        StatusCode::BAD_REQUEST,
        "content_type_mismatch",
    );
    assert_error(
        &upload(&alice, room, "x", "not a type", b"x").await,
        StatusCode::BAD_REQUEST,
        "invalid_content_type",
    );
    // HTML and SVG are downloads, never pages.
    let (_, html) = upload(
        &alice,
        room,
        "page.html",
        "text/html",
        b"<script>alert(1)</script>",
    )
    .await;
    let served = download(&alice, html["fileId"].as_u64().expect("id")).await;
    assert!(header(&served, "content-disposition").starts_with("attachment;"));
    assert_eq!(header(&served, "content-security-policy"), "sandbox");
    let (_, svg) = upload(&alice, room, "a.svg", "image/svg+xml", b"<svg/>").await;
    let served = download(&alice, svg["fileId"].as_u64().expect("id")).await;
    assert!(header(&served, "content-disposition").starts_with("attachment;"));
}

#[tokio::test]
async fn a_path_in_a_file_name_is_stored_harmlessly() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data = tmp.path().join("data");
    let server = Server::start_in(&data, &[]).await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "files", None).await;
    let (status, file) = upload(&alice, room, "../../../../outside.txt", "text/plain", b"x").await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["name"], "outside.txt");
    let (_, file) = upload(&alice, room, "..", "text/plain", b"x").await;
    assert_eq!(file["name"], "file");
    assert!(!tmp.path().join("outside.txt").exists());
    assert!(!data.join("outside.txt").exists());
    let stored: Vec<String> = std::fs::read_dir(data.join("files"))
        .expect("files dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        stored.iter().all(|name| name == "tmp" || name.len() == 16),
        "{stored:?}"
    );
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused_while_it_streams() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let config = write_config(
        tmp.path(),
        "[limits]\nmax_file_bytes = 1000\n[server]\nbody_read_timeout = \"1s\"\n",
    );
    let data = tmp.path().join("data");
    let server = Server::start_in(&data, &["--config", &config]).await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "files", None).await;

    let (status, file) = upload(
        &alice,
        room,
        "fits.bin",
        "application/octet-stream",
        &[7; 1000],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");

    let head = |extra: &str| {
        format!(
            "POST /api/chatrooms/{room}/files?filename=big.bin HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/octet-stream\r\n{extra}\r\n",
            alice.token
        )
    };
    // A declared length over the limit: refused before any of the body is read.
    let reply = raw_exchange(&server, &head("Content-Length: 5000000\r\n"), &[]).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("file_too_large"), "{reply}");
    // No length (chunked): refused once the bytes pass the limit, before the end.
    let chunk = format!("258\r\n{}\r\n", "a".repeat(600));
    let reply = raw_exchange(
        &server,
        &head("Transfer-Encoding: chunked\r\n"),
        &[chunk.as_bytes(), chunk.as_bytes()],
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    // A body that stops coming: 408.
    let reply = raw_exchange(&server, &head("Content-Length: 900\r\n"), &[&[1; 100]]).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("body_timeout"), "{reply}");

    // Nothing of the refused uploads is left behind.
    let leftovers = std::fs::read_dir(data.join("files").join("tmp"))
        .expect("tmp")
        .count();
    assert_eq!(leftovers, 0);
    let stored = std::fs::read_dir(data.join("files"))
        .expect("files")
        .filter(|e| e.as_ref().expect("entry").file_name() != "tmp")
        .count();
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn a_browser_fetches_files_with_its_cookie() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "pics", None).await;
    let (_, png) = upload(&alice, room, "a.png", "image/png", PNG).await;
    let id = png["fileId"].as_u64().expect("id");

    let made = alice
        .http
        .post(alice.url("/api/files/cookie"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .expect("cookie");
    assert_eq!(made.status(), StatusCode::NO_CONTENT);
    let set = header(&made, "set-cookie").to_owned();
    assert!(set.contains("Path=/api/files/"), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().expect("pair").to_owned();

    let plain = reqwest::Client::new();
    let with_cookie = plain
        .get(alice.url(&format!("/api/files/{id}")))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("get");
    assert_eq!(with_cookie.status(), StatusCode::OK);
    assert_eq!(with_cookie.bytes().await.expect("body"), PNG);
    // A forged or altered cookie is nothing.
    // (Its last character changed: to `1` if it was `0`, which happens.)
    let last = if cookie.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &cookie[..cookie.len() - 1]);
    let refused = plain
        .get(alice.url(&format!("/api/files/{id}")))
        .header("cookie", forged)
        .send()
        .await
        .expect("get");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    // It opens files only: other endpoints do not take it.
    let elsewhere = plain
        .get(alice.url("/api/users/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("get");
    assert_eq!(elsewhere.status(), StatusCode::UNAUTHORIZED);
    let cleared = plain
        .delete(alice.url("/api/files/cookie"))
        .send()
        .await
        .expect("clear");
    assert!(header(&cleared, "set-cookie").contains("Max-Age=0"));
}

fn daehwa(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_daehwa"))
        .args(args)
        .output()
        .expect("run daehwa");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn backup_and_restore_carry_the_files() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let config = write_config(
        tmp.path(),
        "[admin]\ntoken = \"an admin token of some length\"\n",
    );
    let data = tmp.path().join("data");
    let mut server = Server::start_in(&data, &["--config", &config]).await;
    let alice = server.register("alice").await;
    let room = alice.create_room("public", "files", None).await;
    let big: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let (_, first) = upload(&alice, room, "big.bin", "application/octet-stream", &big).await;
    let (_, second) = upload(&alice, room, "a.png", "image/png", PNG).await;

    // From the running server, through its admin endpoint.
    let out = tmp.path().join("daehwa.backup");
    let args = [
        "backup",
        "--config",
        &config,
        "--data-dir",
        data.to_str().expect("path"),
        "--server",
        &server.addr.to_string(),
        "--out",
        out.to_str().expect("path"),
    ]
    .map(str::to_owned);
    let (code, _, stderr) = tokio::task::spawn_blocking(move || {
        daehwa(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .expect("join");
    assert_eq!(code, Some(0), "{stderr}");
    server.stop().await;

    let restored = tmp.path().join("restored");
    let (code, stdout, stderr) = daehwa(&[
        "restore",
        out.to_str().expect("path"),
        "--data-dir",
        restored.to_str().expect("path"),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("restored"), "{stdout}");
    let (code, usage, stderr) = daehwa(&[
        "admin",
        "--data-dir",
        restored.to_str().expect("path"),
        "usage",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let files_line: Vec<&str> = usage
        .lines()
        .find(|l| l.starts_with("files"))
        .expect("files line")
        .split_whitespace()
        .collect();
    let total = (big.len() + PNG.len()).to_string();
    assert_eq!(files_line[1..3], ["2", total.as_str()], "{usage}");

    let server = Server::start_in(&restored, &[]).await;
    let alice = alice.at(&server);
    for (file, bytes) in [(&first, &big[..]), (&second, PNG)] {
        let got = download(&alice, file["fileId"].as_u64().expect("id")).await;
        assert_eq!(got.status(), StatusCode::OK);
        assert_eq!(got.bytes().await.expect("body"), bytes);
    }
}

async fn say_with(
    client: &Client,
    room: u64,
    content: &str,
    attachments: &[u64],
) -> (StatusCode, Value) {
    client
        .post(
            &format!("/api/chatrooms/{room}/messages"),
            serde_json::json!({"content": content, "attachments": attachments}),
        )
        .await
}

#[tokio::test]
async fn messages_carry_files_until_they_are_deleted() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data = tmp.path().join("data");
    let mut server = Server::start_in(&data, &[]).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room("public", "files", None).await;
    let other = alice.create_room("public", "other", None).await;
    assert_eq!(bob.join(room, None).await.0, StatusCode::OK);
    let (mut bob_ws, _) = bob.connect().await;

    let (_, shot) = upload(&alice, room, "shot.png", "image/png", PNG).await;
    let shot = shot["fileId"].as_u64().expect("id");
    let (_, notes) = upload(&alice, room, "notes.txt", "text/plain", b"notes").await;
    let notes = notes["fileId"].as_u64().expect("id");

    // A screenshot alone, pasted: no text needed.
    let (status, message) = say_with(&alice, room, "", &[shot]).await;
    assert_eq!(status, StatusCode::CREATED, "{message}");
    let shown = serde_json::json!([{
        "fileId": shot, "name": "shot.png", "size": PNG.len(), "contentType": "image/png"
    }]);
    assert_eq!(message["attachments"], shown);
    assert_eq!(message["content"], "");
    let event = bob_ws.expect("chat").await;
    assert_eq!(event["attachments"], shown);
    let first = message["msgId"].as_u64().expect("msgId");
    // The same file on a second message, with another.
    let (status, second) = say_with(&alice, room, "both", &[notes, shot]).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second = second["msgId"].as_u64().expect("msgId");

    // Only files the sender uploaded to that room, each once, and not nothing.
    let (_, bobs) = upload(&bob, room, "b.txt", "text/plain", b"b").await;
    let bobs = bobs["fileId"].as_u64().expect("id");
    let (_, elsewhere) = upload(&alice, other, "o.txt", "text/plain", b"o").await;
    let elsewhere = elsewhere["fileId"].as_u64().expect("id");
    for attachments in [
        vec![bobs],
        vec![elsewhere],
        vec![notes, notes],
        vec![999_999],
    ] {
        assert_error(
            &say_with(&alice, room, "x", &attachments).await,
            StatusCode::BAD_REQUEST,
            "invalid_attachment",
        );
    }
    assert_error(
        &say_with(&alice, room, "", &[]).await,
        StatusCode::BAD_REQUEST,
        "empty_message",
    );

    // Stored with the messages: history shows them after a restart.
    server.stop().await;
    let mut server = Server::start_in(&data, &[]).await;
    let alice = alice.at(&server);
    let history = alice.history(room, -1, 10).await;
    let carried: Vec<usize> = history
        .iter()
        .map(|m| m["attachments"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(carried, [1, 2]);
    assert_eq!(history[0]["attachments"], shown);

    // Deleting the first message keeps the screenshot (the second carries it);
    // deleting the second too lets both files go, record and bytes.
    let delete = |msg: u64| {
        let alice = alice.clone();
        async move {
            let (status, body) = alice
                .delete(&format!("/api/chatrooms/{room}/messages/{msg}"))
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        }
    };
    delete(first).await;
    server.stop().await;
    let mut server = Server::start_in(&data, &[]).await;
    let alice = alice.at(&server);
    assert_eq!(download(&alice, shot).await.status(), StatusCode::OK);
    let delete = |msg: u64| {
        let alice = alice.clone();
        async move {
            let (status, body) = alice
                .delete(&format!("/api/chatrooms/{room}/messages/{msg}"))
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        }
    };
    delete(second).await;
    server.stop().await;
    // The restart's sweep removes the bytes of files without a record.
    let server = Server::start_in(&data, &[]).await;
    let alice = alice.at(&server);
    for file in [shot, notes] {
        assert_eq!(download(&alice, file).await.status(), StatusCode::NOT_FOUND);
        assert!(!data.join("files").join(format!("{file:016x}")).exists());
    }
    // Files no message carries (yet) stay, for a day.
    assert_eq!(download(&alice, elsewhere).await.status(), StatusCode::OK);
}
