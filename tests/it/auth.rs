//! Accounts: register, login, me, logout, and their refusals.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{assert_error, send, Server};

#[tokio::test]
async fn register_login_me_logout() {
    let server = Server::start().await;
    let alice = server.register("alice").await;

    let me = alice.get("/api/users/me").await;
    assert_eq!(me.0, StatusCode::OK);
    assert_eq!(me.1, json!({"userId": alice.user_id, "username": "alice"}));

    let http = reqwest::Client::new();
    let login = send(
        http.post(server.url("/api/auth/login"))
            .json(&json!({"username": "ALICE", "password": "correct horse"})),
    )
    .await;
    assert_eq!(login.0, StatusCode::OK, "{}", login.1);
    assert_eq!(login.1["userId"], alice.user_id);
    let second_token = login.1["token"].as_str().expect("token");
    assert_ne!(second_token, alice.token, "every login gets its own token");
    assert_eq!(second_token.len(), 64);

    let logout = alice.post("/api/auth/logout", json!({})).await;
    assert_eq!(logout.0, StatusCode::NO_CONTENT);
    assert_error(
        &alice.get("/api/users/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // The other token still works.
    let me = send(
        http.get(server.url("/api/users/me"))
            .bearer_auth(second_token),
    )
    .await;
    assert_eq!(me.0, StatusCode::OK);
}

#[tokio::test]
async fn registration_refusals() {
    let server = Server::start().await;
    server.register("bob").await;
    let http = reqwest::Client::new();
    let register =
        |body: serde_json::Value| send(http.post(server.url("/api/auth/register")).json(&body));

    assert_error(
        &register(json!({"username": "Bob", "password": "long enough"})).await,
        StatusCode::CONFLICT,
        "username_taken",
    );
    assert_error(
        &register(json!({"username": "bad name", "password": "long enough"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_username",
    );
    assert_error(
        &register(json!({"username": "carol", "password": "short"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_password",
    );
    assert_error(
        &register(json!({"username": "carol", "password": 12345678})).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    assert_error(
        &register(json!({"username": "carol"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    let malformed = send(
        http.post(server.url("/api/auth/register"))
            .header("content-type", "application/json")
            .body("{\"username\": "),
    )
    .await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "invalid_json");
    let huge = send(
        http.post(server.url("/api/auth/register"))
            .body(format!("{{\"username\":\"{}\"}}", "x".repeat(100_000))),
    )
    .await;
    assert_error(&huge, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
}

#[tokio::test]
async fn login_refusals_do_not_say_which_part_was_wrong() {
    let server = Server::start().await;
    server.register("dave").await;
    let http = reqwest::Client::new();
    let login =
        |body: serde_json::Value| send(http.post(server.url("/api/auth/login")).json(&body));
    let wrong_password = login(json!({"username": "dave", "password": "incorrect"})).await;
    let unknown_user = login(json!({"username": "nobody", "password": "incorrect"})).await;
    assert_error(&wrong_password, StatusCode::UNAUTHORIZED, "bad_credentials");
    assert_eq!(wrong_password.1, unknown_user.1);
}

#[tokio::test]
async fn endpoints_need_a_valid_token() {
    let server = Server::start().await;
    let http = reqwest::Client::new();
    for path in [
        "/api/users/me",
        "/api/chatrooms",
        "/api/chatrooms/mine",
        "/api/chatrooms/message/1/-1/10",
    ] {
        assert_error(
            &send(http.get(server.url(path))).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
        assert_error(
            &send(http.get(server.url(path)).bearer_auth("not-a-token")).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
        // A header that is not text is no token either (not a server error).
        let garbled = reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").expect("value");
        assert_error(
            &send(http.get(server.url(path)).header("authorization", garbled)).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    let garbled = reqwest::header::HeaderValue::from_bytes(b"Bearer \xff").expect("value");
    assert_error(
        &send(
            http.get(server.url("/api/admin/backup"))
                .header("authorization", garbled),
        )
        .await,
        StatusCode::FORBIDDEN,
        "admin_disabled",
    );
    assert_error(
        &send(http.get(server.url("/nowhere"))).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn closed_registration_is_refused() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let config = tmp.path().join("daehwa.toml");
    std::fs::write(&config, "[auth]\nopen_registration = false\n").expect("write config");
    let server = Server::start_with(&["--config", config.to_str().expect("utf-8 path")]).await;
    let reply = send(
        reqwest::Client::new()
            .post(server.url("/api/auth/register"))
            .json(&json!({"username": "eve", "password": "long enough"})),
    )
    .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "registration_closed");
}
