//! The user directory: `GET /api/users?q=&limit=`.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{assert_error, send, Client, Server};

fn names(users: &Value) -> Vec<&str> {
    users
        .as_array()
        .unwrap_or_else(|| panic!("an array: {users}"))
        .iter()
        .map(|u| u["username"].as_str().expect("username"))
        .collect()
}

async fn find(client: &Client, query: &str) -> Vec<String> {
    let (status, users) = client.get(&format!("/api/users{query}")).await;
    assert_eq!(status, StatusCode::OK, "{users}");
    names(&users).into_iter().map(str::to_owned).collect()
}

#[tokio::test]
async fn search_by_name_sorted_and_bounded() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data_dir = tmp.path().join("data");
    let mut server = Server::start_in(&data_dir, &[]).await;
    let alice = server.register("alice").await;
    for name in ["Bobby", "bob", "xBOBx", "carol", "mallory", "dave"] {
        server.register(name).await;
    }
    let (status, users) = alice.get("/api/users?q=BoB").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&users), ["bob", "Bobby", "xBOBx"]);
    let bob = users[0].clone();
    assert!(bob["userId"].as_u64().is_some_and(|id| id > 0), "{bob}");
    assert_eq!(bob.as_object().expect("object").len(), 2, "{bob}");

    assert_eq!(
        find(&alice, "").await,
        ["alice", "bob", "Bobby", "carol", "dave", "mallory", "xBOBx"]
    );
    assert_eq!(find(&alice, "?q=").await, find(&alice, "").await);
    assert_eq!(find(&alice, "?limit=2").await, ["alice", "bob"]);
    assert_eq!(
        find(&alice, "?q=o&limit=3").await,
        ["bob", "Bobby", "carol"]
    );
    assert!(find(&alice, "?q=nobody").await.is_empty());
    assert_eq!(find(&alice, "?limit=100").await.len(), 7);
    for bad in ["0", "101", "-1", "many", ""] {
        assert_error(
            &alice.get(&format!("/api/users?limit={bad}")).await,
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        );
    }
    // 64 characters, not bytes (as the API document's maxLength counts).
    let longest = "가".repeat(64);
    assert!(find(&alice, &format!("?q={longest}")).await.is_empty());
    assert_error(
        &alice.get(&format!("/api/users?q={longest}가")).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        &send(reqwest::Client::new().get(server.url("/api/users"))).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // A disabled account is left out.
    assert!(server.stop().await.success());
    let disabled = Command::new(env!("CARGO_BIN_EXE_daehwa"))
        .args(["admin", "--data-dir"])
        .arg(&data_dir)
        .args(["disable-user", "carol"])
        .output()
        .expect("run daehwa admin");
    assert!(disabled.status.success(), "{disabled:?}");
    let server = Server::start_in(&data_dir, &[]).await;
    assert_eq!(
        find(&alice.at(&server), "?q=a").await,
        ["alice", "dave", "mallory"]
    );
}

/// The directory's default page is 20 users.
#[tokio::test]
async fn twenty_by_default() {
    let server = Server::start().await;
    let alice = server.register("alice").await;
    let names: Vec<String> = (0..21).map(|n| format!("user{n:02}")).collect();
    futures_util::future::join_all(names.iter().map(|n| server.register(n))).await;
    let page = find(&alice, "").await;
    assert_eq!(page.len(), 20);
    assert_eq!(page[0], "alice");
    assert_eq!(page[19], "user18");
}
