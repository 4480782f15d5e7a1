//! The API contract, `docs/openapi.json`, held against the server: every response
//! the tests receive through the harness's HTTP client is checked here (its status is
//! one the document declares for that operation, its content type is the declared
//! one, and its JSON body fits the declared schema), and the served document is the
//! repository's.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use jsonschema::{Draft, Validator};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::harness::{send, Server};

const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// One operation of the document.
struct Operation {
    method: String,
    path: String,
    /// `Some(literal)` or `None` for a `{parameter}`.
    segments: Vec<Option<String>>,
}

impl Operation {
    fn matches(&self, path: &str) -> bool {
        let Some(path) = path.strip_prefix('/') else {
            return false;
        };
        let segments: Vec<&str> = path.split('/').collect();
        segments.len() == self.segments.len()
            && self
                .segments
                .iter()
                .zip(&segments)
                .all(|(expected, got)| match expected {
                    Some(literal) => literal == got,
                    None => !got.is_empty(),
                })
    }

    fn literals(&self) -> usize {
        self.segments.iter().filter(|s| s.is_some()).count()
    }
}

struct Contract {
    doc: Value,
    operations: Vec<Operation>,
    /// Compiled schemas, by JSON pointer into the document.
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

static CONTRACT: LazyLock<Contract> = LazyLock::new(|| {
    let doc: Value = serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON");
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            operations.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                segments: path
                    .trim_start_matches('/')
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect(),
            });
        }
    }
    Contract {
        doc,
        operations,
        validators: Mutex::new(HashMap::new()),
    }
});

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

impl Contract {
    /// A `$ref`'d object of the document, followed.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        let mut pointer = String::new();
        while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            pointer = reference.trim_start_matches('#').to_owned();
            value = self
                .doc
                .pointer(&pointer)
                .unwrap_or_else(|| panic!("docs/openapi.json: a dangling $ref {reference}"));
        }
        let _ = pointer;
        value
    }

    /// The JSON pointer of a response object, past `$ref`s.
    fn response_pointer(&self, operation: &Operation, status: &str) -> Option<String> {
        let mut pointer = format!(
            "/paths/{}/{}/responses/{status}",
            escape(&operation.path),
            operation.method.to_lowercase()
        );
        loop {
            let response = self.doc.pointer(&pointer)?;
            match response.get("$ref").and_then(Value::as_str) {
                Some(reference) => pointer = reference.trim_start_matches('#').to_owned(),
                None => return Some(pointer),
            }
        }
    }

    fn validator(&self, pointer: &str) -> Arc<Validator> {
        let cached = self
            .validators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(pointer)
            .cloned();
        if let Some(v) = cached {
            return v;
        }
        // The whole document is the root, so that the schema's `$ref`s to
        // `#/components/schemas/…` resolve; its other members are unknown keywords.
        let mut root = self.doc.clone();
        // A URI fragment: the pointer's braces (of path templates) percent-encoded.
        let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
        root["$ref"] = Value::String(format!("#{fragment}"));
        let validator = Arc::new(
            jsonschema::options()
                .with_draft(Draft::Draft202012)
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| panic!("docs/openapi.json: the schema at {pointer}: {e}")),
        );
        self.validators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pointer.to_owned(), Arc::clone(&validator));
        validator
    }

    fn check(
        &self,
        method: &Method,
        path: &str,
        status: StatusCode,
        content_type: Option<&str>,
        body: &[u8],
    ) {
        let shown = || String::from_utf8_lossy(body).into_owned();
        let on_path: Vec<&Operation> = self.operations.iter().filter(|o| o.matches(path)).collect();
        if on_path.is_empty() {
            // Not an operation of the API: the gateways and the web client are
            // described elsewhere; under /api/ only "no such endpoint" may answer.
            if path == "/api" || path.starts_with("/api/") {
                assert_eq!(
                    (status, error_code(body).as_deref()),
                    (StatusCode::NOT_FOUND, Some("not_found")),
                    "{method} {path} is no operation of docs/openapi.json, yet answered {status}: {}",
                    shown()
                );
            }
            return;
        }
        let Some(operation) = on_path
            .iter()
            .filter(|o| o.method == method.as_str())
            .max_by_key(|o| o.literals())
        else {
            assert_eq!(
                (status, error_code(body).as_deref()),
                (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")),
                "{method} {path}: docs/openapi.json has no such operation, yet it answered {status}: {}",
                shown()
            );
            return;
        };
        let what = format!("{method} {} ({path})", operation.path);
        let Some(pointer) = self.response_pointer(operation, status.as_str()) else {
            panic!(
                "{what} answered {status}, which docs/openapi.json does not declare for it: {}",
                shown()
            );
        };
        let response = self.resolve(self.doc.pointer(&pointer).expect("response"));
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            assert!(
                body.is_empty(),
                "{what} answered {status} with a body where docs/openapi.json declares none: {}",
                shown()
            );
            return;
        };
        let media_type = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase())
            .unwrap_or_default();
        assert!(
            content.contains_key(&media_type),
            "{what} answered {status} as {content_type:?}; docs/openapi.json declares {:?}",
            content.keys().collect::<Vec<_>>()
        );
        if media_type != "application/json" {
            return;
        }
        let value: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "{what} answered {status} with invalid JSON ({e}): {}",
                shown()
            )
        });
        let schema = format!("{pointer}/content/{}/schema", escape(&media_type));
        let validator = self.validator(&schema);
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("  at {}: {e}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} answered {status} with a body that does not fit docs/openapi.json ({schema}):\n{}\nbody: {value}",
            errors.join("\n")
        );
    }
}

fn error_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("error")?
        .as_str()
        .map(str::to_owned)
}

/// Checks one exchange against the document; panics, saying what does not fit.
pub fn check(
    method: &Method,
    path: &str,
    status: StatusCode,
    content_type: Option<&str>,
    body: &[u8],
) {
    CONTRACT.check(method, path, status, content_type, body);
}

#[tokio::test]
async fn the_served_document_is_the_repositorys() {
    let server = Server::start().await;
    let (status, served) = send(reqwest::Client::new().get(server.url("/api/openapi.json"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served, CONTRACT.doc);
}

/// The checks themselves refuse what does not fit (a check that cannot fail is no
/// check).
#[test]
fn the_checks_refuse_what_the_document_does_not_say() {
    let get = Method::GET;
    let me = br#"{"userId": 1, "username": "alice"}"#;
    let json = Some("application/json");
    let refused =
        |method: &Method, path: &str, status: u16, content_type: Option<&str>, body: &[u8]| {
            let status = StatusCode::from_u16(status).expect("status");
            let method = method.clone();
            let path = path.to_owned();
            let body = body.to_vec();
            let content_type = content_type.map(str::to_owned);
            std::panic::catch_unwind(move || {
                check(&method, &path, status, content_type.as_deref(), &body)
            })
            .is_err()
        };
    assert!(!refused(&get, "/api/users/me", 200, json, me));
    // An extra field, a missing one, a wrong type.
    assert!(refused(
        &get,
        "/api/users/me",
        200,
        json,
        br#"{"userId": 1, "username": "a", "x": 1}"#
    ));
    assert!(refused(
        &get,
        "/api/users/me",
        200,
        json,
        br#"{"userId": 1}"#
    ));
    assert!(refused(
        &get,
        "/api/users/me",
        200,
        json,
        br#"{"userId": "1", "username": "a"}"#
    ));
    // A status not declared; an error code not declared for that status.
    assert!(refused(
        &get,
        "/api/users/me",
        404,
        json,
        br#"{"error": "user_not_found", "message": "m"}"#
    ));
    assert!(!refused(
        &get,
        "/api/users/me",
        401,
        json,
        br#"{"error": "unauthorized", "message": "m"}"#
    ));
    assert!(refused(
        &get,
        "/api/users/me",
        401,
        json,
        br#"{"error": "bad_credentials", "message": "m"}"#
    ));
    // Another content type; a body where none is declared.
    assert!(refused(&get, "/api/users/me", 200, Some("text/plain"), me));
    assert!(refused(&Method::POST, "/api/auth/logout", 204, json, me));
    assert!(!refused(&Method::POST, "/api/auth/logout", 204, None, b""));
    // Under /api/, no operation: only "no such endpoint"; a method not documented:
    // only 405.
    assert!(!refused(
        &get,
        "/api/nowhere",
        404,
        json,
        br#"{"error": "not_found", "message": "m"}"#
    ));
    assert!(refused(&get, "/api/nowhere", 200, json, me));
    assert!(refused(&Method::DELETE, "/api/users/me", 200, json, me));
    // Templated paths, and schemas composed of others.
    let room = r#"{"chatSeq": 1, "chatName": "g", "chatType": "public", "isDirected": false, "ownerId": 1, "memberCount": 1, "lastMsgId": 0, "lastSeq": 0, "lastMessageAt": null"#;
    let mine = |rest: &str| format!("[{room}{rest}}}]").into_bytes();
    assert!(!refused(
        &get,
        "/api/chatrooms/mine",
        200,
        json,
        &mine(r#", "lastReadMsgId": 0, "unreadCount": 0, "unreadMentions": 0"#)
    ));
    assert!(refused(&get, "/api/chatrooms/mine", 200, json, &mine("")));
    assert!(refused(
        &get,
        "/api/chatrooms/mine",
        200,
        json,
        &mine(r#", "lastReadMsgId": 0, "unreadCount": 0, "unreadMentions": 0, "x": 1"#)
    ));
    assert!(!refused(
        &get,
        "/api/chatrooms/7/members",
        200,
        json,
        br#"{"members": []}"#
    ));
    assert!(refused(
        &get,
        "/api/chatrooms/7/members",
        200,
        json,
        br#"{"members": [], "x": []}"#
    ));
    assert!(refused(
        &get,
        "/api/chatrooms/7/members",
        403,
        json,
        br#"{"error": "not_allowed", "message": "m"}"#
    ));
    // A literal path wins over a template: GET /api/chatrooms/mine is not PATCH {roomId}.
    assert!(!refused(&get, "/api/chatrooms/mine", 200, json, b"[]"));
}
