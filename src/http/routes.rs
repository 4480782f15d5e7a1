//! The route table: every endpoint of the REST API (and of the operator), as its
//! method, its path template and the filter that serves it. The router is built from
//! this table and nothing else, and a unit test holds the table and
//! `docs/openapi.json` to the same set of operations; routes that are not part of the
//! API (the WebSocket gateways, the web client) are mounted beside it by [`app`] and
//! never answer a path of the API.
//!
//! Each endpoint's own filter may match its path again (to take its parameters);
//! the table's matcher runs first, so an endpoint can never answer more than its
//! template. An endpoint that answers less shows up as a `not_found` on a documented
//! path, which the contract checks refuse.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures_util::future::ready;
use warp::filters::BoxedFilter;
use warp::http::Method;
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{
    admin, auth, files, messages, moderation, openapi, ops, rooms, search, web, BodyLimits,
};
use crate::chat::Chat;
use crate::config::Config;
use crate::proxy::TrustedProxies;

/// What the endpoints' filters are made from.
pub struct Deps {
    chat: Arc<Chat>,
    body_limit: BodyLimits,
    proxies: Arc<TrustedProxies>,
    flush_interval: Duration,
    admin_token: Arc<str>,
    upload_timeouts: files::UploadTimeouts,
}

impl Deps {
    fn chat(&self) -> Arc<Chat> {
        Arc::clone(&self.chat)
    }

    fn proxies(&self) -> Arc<TrustedProxies> {
        Arc::clone(&self.proxies)
    }
}

/// One endpoint: `method` on the paths that `path` matches (`{name}` stands for one
/// non-empty segment), served by the filter `build` makes.
pub struct Endpoint {
    pub method: Method,
    /// As in `docs/openapi.json`'s `paths`.
    pub path: &'static str,
    build: fn(&Deps) -> BoxedFilter<(Response,)>,
}

/// Every endpoint the server answers, but the gateways and the web client. Each
/// must be in `docs/openapi.json`, and nothing else is (`routes::tests`).
#[rustfmt::skip]
pub const ENDPOINTS: &[Endpoint] = &[
    // The document itself, and the operator's endpoints.
    Endpoint { method: Method::GET, path: "/api/openapi.json", build: |_| openapi::document().boxed() },
    Endpoint { method: Method::GET, path: "/healthz", build: |_| ops::healthz().boxed() },
    Endpoint { method: Method::GET, path: "/readyz", build: |d| ops::readyz(d.chat(), d.flush_interval).boxed() },
    Endpoint { method: Method::GET, path: "/metrics", build: |d| ops::metrics(d.chat()).boxed() },
    Endpoint { method: Method::GET, path: "/api/admin/backup", build: |d| admin::backup(d.chat(), Arc::clone(&d.admin_token)).boxed() },
    // Accounts.
    Endpoint { method: Method::POST, path: "/api/auth/register", build: |d| auth::register(d.chat(), d.body_limit, d.proxies()).boxed() },
    Endpoint { method: Method::POST, path: "/api/auth/login", build: |d| auth::login(d.chat(), d.body_limit, d.proxies()).boxed() },
    Endpoint { method: Method::POST, path: "/api/auth/logout", build: |d| auth::logout(d.chat()).boxed() },
    Endpoint { method: Method::GET, path: "/api/users/me", build: |d| auth::me(d.chat()).boxed() },
    Endpoint { method: Method::GET, path: "/api/users", build: |d| auth::directory(d.chat()).boxed() },
    // Blocking.
    Endpoint { method: Method::GET, path: "/api/users/blocks", build: |d| moderation::blocks(d.chat()).boxed() },
    Endpoint { method: Method::PUT, path: "/api/users/blocks/{userId}", build: |d| moderation::block(d.chat()).boxed() },
    Endpoint { method: Method::DELETE, path: "/api/users/blocks/{userId}", build: |d| moderation::unblock(d.chat()).boxed() },
    // Rooms and messages.
    Endpoint { method: Method::POST, path: "/api/chatrooms/new", build: |d| rooms::create(d.chat(), d.body_limit).boxed() },
    Endpoint { method: Method::GET, path: "/api/chatrooms", build: |d| rooms::list(d.chat()).boxed() },
    Endpoint { method: Method::GET, path: "/api/chatrooms/mine", build: |d| rooms::mine(d.chat()).boxed() },
    Endpoint { method: Method::PUT, path: "/api/chatrooms/join/{roomId}", build: |d| rooms::join(d.chat(), d.body_limit).boxed() },
    Endpoint { method: Method::DELETE, path: "/api/chatrooms/leave/{roomId}", build: |d| rooms::leave(d.chat()).boxed() },
    Endpoint { method: Method::GET, path: "/api/chatrooms/message/{roomId}/{msgID}/{count}", build: |d| rooms::history(d.chat()).boxed() },
    Endpoint { method: Method::POST, path: "/api/chatrooms/{roomId}/messages", build: |d| rooms::send(d.chat(), d.body_limit).boxed() },
    Endpoint { method: Method::PUT, path: "/api/chatrooms/{roomId}/read/{msgId}", build: |d| rooms::mark_read(d.chat()).boxed() },
    // Changes to messages, and mentions.
    Endpoint { method: Method::PATCH, path: "/api/chatrooms/{roomId}/messages/{msgId}", build: |d| messages::edit(d.chat(), d.body_limit).boxed() },
    Endpoint { method: Method::DELETE, path: "/api/chatrooms/{roomId}/messages/{msgId}", build: |d| messages::delete(d.chat()).boxed() },
    Endpoint { method: Method::PUT, path: "/api/chatrooms/{roomId}/messages/{msgId}/reactions/{emoji}", build: |d| messages::react(d.chat(), true).boxed() },
    Endpoint { method: Method::DELETE, path: "/api/chatrooms/{roomId}/messages/{msgId}/reactions/{emoji}", build: |d| messages::react(d.chat(), false).boxed() },
    Endpoint { method: Method::GET, path: "/api/users/me/mentions", build: |d| messages::mentions(d.chat()).boxed() },
    // Moderation and settings.
    Endpoint { method: Method::POST, path: "/api/chatrooms/{roomId}/kick/{userId}", build: |d| moderation::kick(d.chat()).boxed() },
    Endpoint { method: Method::POST, path: "/api/chatrooms/{roomId}/ban/{userId}", build: |d| moderation::ban(d.chat(), d.body_limit).boxed() },
    Endpoint { method: Method::DELETE, path: "/api/chatrooms/{roomId}/ban/{userId}", build: |d| moderation::unban(d.chat()).boxed() },
    Endpoint { method: Method::POST, path: "/api/chatrooms/{roomId}/mute/{userId}", build: |d| moderation::mute(d.chat(), d.body_limit).boxed() },
    Endpoint { method: Method::DELETE, path: "/api/chatrooms/{roomId}/mute/{userId}", build: |d| moderation::unmute(d.chat()).boxed() },
    Endpoint { method: Method::PUT, path: "/api/chatrooms/{roomId}/admins/{userId}", build: |d| moderation::add_admin(d.chat()).boxed() },
    Endpoint { method: Method::DELETE, path: "/api/chatrooms/{roomId}/admins/{userId}", build: |d| moderation::remove_admin(d.chat()).boxed() },
    Endpoint { method: Method::PUT, path: "/api/chatrooms/{roomId}/owner/{userId}", build: |d| moderation::transfer_ownership(d.chat()).boxed() },
    Endpoint { method: Method::POST, path: "/api/chatrooms/{roomId}/invite/{userId}", build: |d| moderation::invite(d.chat()).boxed() },
    Endpoint { method: Method::DELETE, path: "/api/chatrooms/{roomId}/invite", build: |d| moderation::decline_invite(d.chat()).boxed() },
    Endpoint { method: Method::PATCH, path: "/api/chatrooms/{roomId}", build: |d| moderation::settings(d.chat(), d.body_limit).boxed() },
    Endpoint { method: Method::GET, path: "/api/chatrooms/{roomId}/members", build: |d| moderation::members(d.chat()).boxed() },
    // Search.
    Endpoint { method: Method::GET, path: "/api/search", build: |d| search::search(d.chat()).boxed() },
    // Files.
    Endpoint { method: Method::POST, path: "/api/chatrooms/{roomId}/files", build: |d| files::upload(d.chat(), d.upload_timeouts).boxed() },
    Endpoint { method: Method::GET, path: "/api/files/{fileId}", build: |d| files::download(d.chat()).boxed() },
    Endpoint { method: Method::POST, path: "/api/files/cookie", build: |d| files::make_cookie(d.chat()).boxed() },
    Endpoint { method: Method::DELETE, path: "/api/files/cookie", build: |_| files::clear_cookie().boxed() },
];

/// A path template, split into segments: `Some(literal)` or `None` for `{param}`.
#[derive(Clone)]
struct Template(Vec<Option<&'static str>>);

impl Template {
    fn parse(path: &'static str) -> Self {
        Self(
            path.trim_start_matches('/')
                .split('/')
                .map(|segment| (!segment.starts_with('{')).then_some(segment))
                .collect(),
        )
    }

    fn literals(&self) -> usize {
        self.0.iter().filter(|s| s.is_some()).count()
    }

    /// Whether a request path (as sent, percent-encoded) is one of the template's.
    fn matches(&self, path: &str) -> bool {
        let Some(path) = path.strip_prefix('/') else {
            return false;
        };
        let mut segments = path.split('/');
        self.0
            .iter()
            .all(|expected| match (expected, segments.next()) {
                (Some(literal), Some(segment)) => *literal == segment,
                (None, Some(segment)) => !segment.is_empty(),
                (_, None) => false,
            })
            && segments.next().is_none()
    }
}

/// The templates of [`ENDPOINTS`], in its order, parsed once.
static TEMPLATES: LazyLock<Vec<Template>> =
    LazyLock::new(|| ENDPOINTS.iter().map(|e| Template::parse(e.path)).collect());

/// The route of a request, for logs and metrics: the template of the endpoint that
/// answers it (the one of its method, literal segments first, as the router tries
/// them), `/ws` or `/socket.io` for the gateways, the web client's one label for its
/// files, `(unmatched)` for anything else; and
/// `OTHER` for a method outside the standard ones. The values stay few whatever
/// clients send, so a metric label made of them stays bounded.
pub fn route_label(method: &Method, path: &str) -> String {
    const STANDARD: [Method; 7] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
    ];
    let method_name = if STANDARD.contains(method) {
        method.as_str()
    } else {
        "OTHER"
    };
    let matching = || {
        ENDPOINTS
            .iter()
            .zip(TEMPLATES.iter())
            .filter(|(_, t)| t.matches(path))
    };
    let route = matching()
        .filter(|(e, _)| e.method == method)
        .max_by_key(|(_, t)| t.literals())
        .or_else(|| matching().next())
        .map(|(e, _)| e.path)
        .unwrap_or(match path {
            "/ws" => "/ws",
            _ if path == "/socket.io" || path.starts_with("/socket.io/") => "/socket.io",
            _ => match web::route_label(path) {
                Some(label) if matches!(*method, Method::GET | Method::HEAD) => {
                    return label.to_owned()
                }
                _ => "(unmatched)",
            },
        });
    format!("{method_name} {route}")
}

/// Passes the requests of one method; others are refused as 405 (when no other
/// route takes them).
fn method_filter(method: &Method) -> BoxedFilter<()> {
    if method == Method::GET {
        warp::get().boxed()
    } else if method == Method::POST {
        warp::post().boxed()
    } else if method == Method::PUT {
        warp::put().boxed()
    } else if method == Method::DELETE {
        warp::delete().boxed()
    } else if method == Method::PATCH {
        warp::patch().boxed()
    } else {
        warp::method()
            .and_then(|_| ready(Err::<(), _>(warp::reject::not_found())))
            .untuple_one()
            .boxed()
    }
}

/// Passes the requests whose path one of `templates` matches (or, with `inverted`,
/// matches none of them and is not under `/api/`).
fn paths(templates: Vec<Template>, inverted: bool) -> BoxedFilter<()> {
    warp::path::full()
        .and_then(move |path: FullPath| {
            let path = path.as_str();
            let ours = templates.iter().any(|t| t.matches(path));
            let api = path == "/api" || path.starts_with("/api/");
            let pass = if inverted { !ours && !api } else { ours };
            ready(if pass {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            })
        })
        .untuple_one()
        .boxed()
}

impl Endpoint {
    /// The endpoint's filter; one that changes something answers only once what it
    /// wrote through to sled is on disk ([`Chat::persist_written`]), so that an
    /// answered registration, join or ban survives a crash. (New messages and their
    /// changes go through the write-behind buffer instead: `storage.durability`.)
    fn filter(&self, deps: &Deps) -> BoxedFilter<(Response,)> {
        let served = paths(vec![Template::parse(self.path)], false)
            .and(method_filter(&self.method))
            .and((self.build)(deps));
        if self.method == Method::GET {
            return served.boxed();
        }
        let chat = deps.chat();
        served
            .and_then(move |reply: Response| {
                let chat = Arc::clone(&chat);
                async move {
                    if !reply.status().is_client_error() {
                        chat.persist_written().await;
                    }
                    Ok::<_, Rejection>(reply)
                }
            })
            .boxed()
    }
}

/// Everything the server answers: the endpoints of [`ENDPOINTS`]; and, never asked
/// about a path of the API (under `/api/`, or one of the table's), `outside` (the
/// gateways) and the web client's files.
pub fn app<F>(
    chat: Arc<Chat>,
    config: &Config,
    outside: F,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone
where
    F: Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static,
{
    let deps = Deps {
        chat,
        body_limit: BodyLimits {
            bytes: config.limits.max_body_bytes,
            timeout: config.server.body_read_timeout,
        },
        // Validated with the rest of the config; a bad entry cannot reach here.
        proxies: Arc::new(
            TrustedProxies::parse(&config.server.trusted_proxies).unwrap_or_default(),
        ),
        flush_interval: config.storage.flush_interval,
        admin_token: config.admin.token.as_str().into(),
        upload_timeouts: files::UploadTimeouts {
            idle: config.server.body_read_timeout,
            total: config.server.upload_timeout,
        },
    };
    let mut router = paths(TEMPLATES.clone(), true)
        .and(outside.or(web::routes()).unify())
        .boxed();
    for endpoint in ENDPOINTS {
        router = router.or(endpoint.filter(&deps)).unify().boxed();
    }
    router
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn templates() {
        let t = Template::parse("/api/chatrooms/{roomId}/read/{msgId}");
        assert!(t.matches("/api/chatrooms/1/read/2"));
        assert!(t.matches("/api/chatrooms/x/read/y"));
        assert!(!t.matches("/api/chatrooms/1/read/"));
        assert!(!t.matches("/api/chatrooms//read/2"));
        assert!(!t.matches("/api/chatrooms/1/read/2/3"));
        assert!(!t.matches("/api/chatrooms/1/read"));
        assert!(!t.matches("/api/chatrooms/1/reads/2"));
        assert!(!t.matches("api/chatrooms/1/read/2"));
        let t = Template::parse("/healthz");
        assert!(t.matches("/healthz"));
        assert!(!t.matches("/healthz/"));
        assert!(!t.matches("/"));
    }

    #[test]
    fn route_labels_are_templates() {
        let label = |method: &str, path: &str| {
            route_label(
                &Method::from_bytes(method.as_bytes()).expect("method"),
                path,
            )
        };
        assert_eq!(
            label("POST", "/api/chatrooms/12/kick/7"),
            "POST /api/chatrooms/{roomId}/kick/{userId}"
        );
        assert_eq!(
            label("GET", "/api/chatrooms/message/3/-1/50"),
            "GET /api/chatrooms/message/{roomId}/{msgID}/{count}"
        );
        // Whatever a client puts in an id, or in the path, or as a method.
        assert_eq!(
            label("POST", "/api/chatrooms/AAA/kick/0.5"),
            "POST /api/chatrooms/{roomId}/kick/{userId}"
        );
        assert_eq!(
            label("GET", "/api/chatrooms/mine"),
            "GET /api/chatrooms/mine"
        );
        assert_eq!(
            label("PATCH", "/api/chatrooms/mine"),
            "PATCH /api/chatrooms/{roomId}"
        );
        assert_eq!(label("GET", "/ws"), "GET /ws");
        assert_eq!(label("POST", "/socket.io/"), "POST /socket.io");
        assert_eq!(label("GET", "/anything/at/all"), "GET (unmatched)");
        assert_eq!(label("GET", "/js/app.js"), web::ROUTE_LABEL);
        assert_eq!(label("GET", "/api/nope/1"), "GET (unmatched)");
        assert_eq!(label("GET", &"/x".repeat(1000)), "GET (unmatched)");
        assert_eq!(
            label("DELETE", "/api/chatrooms/3/invite"),
            "DELETE /api/chatrooms/{roomId}/invite"
        );
        assert_eq!(label("QUERY", "/healthz"), "OTHER /healthz");
    }

    /// Every endpoint docs/API.md documents has its own label, not `(unmatched)`:
    /// the readable guide names no endpoint the table lacks.
    #[test]
    fn every_endpoint_of_the_guide_is_a_route() {
        let doc = include_str!("../../docs/API.md");
        let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
        let mut checked = 0;
        for piece in doc.split('`') {
            let Some((method, path)) = piece.split_once(' ') else {
                continue;
            };
            if !methods.contains(&method) || !path.starts_with('/') {
                continue;
            }
            // `{roomId}` and the like are ids; query strings are not the route.
            let path = path.split('?').next().unwrap_or(path);
            let concrete: String = path
                .split('/')
                .map(|s| if s.starts_with('{') { "1" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            let route = route_label(&method, &concrete);
            assert!(
                !route.ends_with("(unmatched)"),
                "docs/API.md documents {method} {path}, which is not in ENDPOINTS"
            );
            checked += 1;
        }
        assert!(
            checked > 20,
            "only {checked} endpoints found in docs/API.md"
        );
    }

    /// The operations of `docs/openapi.json`, as `METHOD path`.
    fn documented() -> BTreeSet<String> {
        let doc: serde_json::Value =
            serde_json::from_str(openapi::DOCUMENT).expect("docs/openapi.json is JSON");
        let mut operations = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ] {
                if item.get(method).is_some() {
                    operations.insert(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
        operations
    }

    /// The router and the document describe the same operations. New endpoints go
    /// into both; routes that are not API (gateways, web assets) go into neither:
    /// they are mounted beside the table by `app`.
    #[test]
    fn every_route_is_documented_and_every_documented_operation_is_routed() {
        let routed: BTreeSet<String> = ENDPOINTS
            .iter()
            .map(|e| format!("{} {}", e.method, e.path))
            .collect();
        assert_eq!(
            routed.len(),
            ENDPOINTS.len(),
            "an endpoint is in ENDPOINTS twice"
        );
        let documented = documented();
        let mut problems = Vec::new();
        for missing in routed.difference(&documented) {
            let (method, path) = missing.split_once(' ').unwrap_or_default();
            problems.push(format!(
                "{missing} is routed (src/http/routes.rs, ENDPOINTS) but not in docs/openapi.json: \
                 add under \"paths\" → \"{path}\" → \"{}\" an operation with an operationId, \
                 tags, a summary, its parameters, its requestBody if it takes one, and every \
                 response it gives: each status, with its schema and, for errors, the enum of \
                 its error codes (see the other operations)",
                method.to_lowercase()
            ));
        }
        for missing in documented.difference(&routed) {
            problems.push(format!(
                "{missing} is in docs/openapi.json but not routed: add it to ENDPOINTS in \
                 src/http/routes.rs, or remove it from the document"
            ));
        }
        assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
    }

    #[test]
    fn the_document_names_this_version() {
        let doc: serde_json::Value =
            serde_json::from_str(openapi::DOCUMENT).expect("docs/openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["info"]["version"],
            env!("CARGO_PKG_VERSION"),
            "docs/openapi.json's info.version is Cargo.toml's version"
        );
    }
}
