//! Prometheus metrics, exposed at `GET /metrics` in the OpenMetrics text format.
//!
//! Counters are incremented where things happen (the domain, the sessions, the HTTP
//! log); gauges that describe state (connections, buffer depth, database size) are
//! read at scrape time instead of being kept up to date on every change.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// Method and path with ids replaced by `{id}`, e.g. `POST /api/chatrooms/{id}/messages`.
    pub route: String,
    pub status: u16,
}

pub struct Metrics {
    registry: Registry,
    pub connections: Gauge,
    pub users_online: Gauge,
    pub messages_received: Counter,
    pub messages_delivered: Counter,
    pub buffered_messages: Gauge,
    pub flushes: Counter,
    pub flush_seconds: Histogram,
    pub flush_errors: Counter,
    pub database_bytes: Gauge<u64, AtomicU64>,
    pub http_requests: Family<HttpLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("daehwa");
        let metrics = Self {
            connections: Gauge::default(),
            users_online: Gauge::default(),
            messages_received: Counter::default(),
            messages_delivered: Counter::default(),
            buffered_messages: Gauge::default(),
            flushes: Counter::default(),
            // 100 µs to about 3 s.
            flush_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            flush_errors: Counter::default(),
            database_bytes: Gauge::default(),
            http_requests: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "websocket_connections",
            "Open WebSocket connections",
            metrics.connections.clone(),
        );
        registry.register(
            "users_online",
            "Users with at least one open WebSocket connection",
            metrics.users_online.clone(),
        );
        registry.register(
            "messages_received",
            "Messages accepted (HTTP and WebSocket)",
            metrics.messages_received.clone(),
        );
        registry.register(
            "messages_delivered",
            "Chat events written to WebSocket connections",
            metrics.messages_delivered.clone(),
        );
        registry.register(
            "buffered_messages",
            "Messages accepted and not yet on disk",
            metrics.buffered_messages.clone(),
        );
        registry.register(
            "flushes",
            "Batches of messages written to disk",
            metrics.flushes.clone(),
        );
        registry.register(
            "flush_duration_seconds",
            "Time to write and flush one batch",
            metrics.flush_seconds.clone(),
        );
        registry.register(
            "flush_errors",
            "Flushes that failed (and will be retried)",
            metrics.flush_errors.clone(),
        );
        registry.register(
            "database_size_bytes",
            "Size of the database on disk",
            metrics.database_bytes.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            metrics.http_requests.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        text
    }

    pub fn count_request(&self, route: String, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels { route, status })
            .inc();
    }
}

/// The paths the server answers, with `{id}` for a numeric segment. A request whose
/// path is not one of them counts as `(unmatched)`, so that junk paths cannot grow
/// the label set (or the log). A new endpoint adds its path here.
const ROUTES: &[&str] = &[
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/ws",
    "/socket.io",
    "/api/admin/backup",
    "/api/auth/register",
    "/api/auth/login",
    "/api/auth/logout",
    "/api/users",
    "/api/users/me",
    "/api/users/blocks",
    "/api/users/blocks/{id}",
    "/api/chatrooms",
    "/api/chatrooms/new",
    "/api/chatrooms/mine",
    "/api/chatrooms/join/{id}",
    "/api/chatrooms/leave/{id}",
    "/api/chatrooms/message/{id}/{id}/{id}",
    "/api/chatrooms/{id}",
    "/api/chatrooms/{id}/messages",
    "/api/chatrooms/{id}/members",
    "/api/chatrooms/{id}/read/{id}",
    "/api/chatrooms/{id}/invite",
    "/api/chatrooms/{id}/invite/{id}",
    "/api/chatrooms/{id}/kick/{id}",
    "/api/chatrooms/{id}/ban/{id}",
    "/api/chatrooms/{id}/mute/{id}",
    "/api/chatrooms/{id}/admins/{id}",
    "/api/chatrooms/{id}/owner/{id}",
];

/// Longest path that is looked up in [`ROUTES`]; longer ones are unmatched.
const ROUTE_MAX_BYTES: usize = 128;

/// The route of a request for logs and metrics: the method (`OTHER` for a
/// non-standard one) and the path with ids as `{id}`, or `(unmatched)` for a path
/// the server does not serve. The label's values are bounded whatever clients send.
pub fn route_of(method: &str, path: &str) -> String {
    let method = match method {
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => method,
        _ => "OTHER",
    };
    let mut template = String::with_capacity(path.len().min(ROUTE_MAX_BYTES) + 8);
    if path.len() <= ROUTE_MAX_BYTES {
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            template.push('/');
            if segment.parse::<i64>().is_ok() {
                template.push_str("{id}");
            } else {
                template.push_str(segment);
            }
        }
        if template.is_empty() {
            template.push('/');
        }
    }
    if ROUTES.contains(&template.as_str()) {
        format!("{method} {template}")
    } else {
        format!("{method} (unmatched)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_hide_ids() {
        assert_eq!(
            route_of("GET", "/api/chatrooms/message/3/-1/50"),
            "GET /api/chatrooms/message/{id}/{id}/{id}"
        );
        assert_eq!(
            route_of("POST", "/api/chatrooms/12/kick/7"),
            "POST /api/chatrooms/{id}/kick/{id}"
        );
        assert_eq!(route_of("GET", "/"), "GET /");
        assert_eq!(route_of("GET", "/api/nope"), "GET (unmatched)");
        assert_eq!(route_of("BREW", "/api/users/me"), "OTHER /api/users/me");
        assert_eq!(route_of("GET", &"/x".repeat(100)), "GET (unmatched)");
        assert_eq!(
            route_of("DELETE", "/api/chatrooms/3/invite"),
            "DELETE /api/chatrooms/{id}/invite"
        );
    }

    /// Every endpoint docs/API.md documents has its own label, not `(unmatched)`.
    #[test]
    fn every_documented_endpoint_is_a_route() {
        let doc = include_str!("../docs/API.md");
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
            let route = route_of(method, &concrete);
            assert!(
                !route.ends_with("(unmatched)"),
                "{method} {path} is not in ROUTES"
            );
            checked += 1;
        }
        assert!(
            checked > 20,
            "only {checked} endpoints found in docs/API.md"
        );
    }

    #[test]
    fn the_text_names_every_metric() {
        let metrics = Metrics::default();
        metrics.messages_received.inc();
        metrics.count_request("GET /healthz".into(), 200);
        let text = metrics.encode();
        for name in [
            "daehwa_websocket_connections",
            "daehwa_users_online",
            "daehwa_messages_received_total 1",
            "daehwa_messages_delivered_total",
            "daehwa_buffered_messages",
            "daehwa_flushes_total",
            "daehwa_flush_duration_seconds_bucket",
            "daehwa_flush_errors_total",
            "daehwa_database_size_bytes",
            "daehwa_http_requests_total{route=\"GET /healthz\",status=\"200\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
