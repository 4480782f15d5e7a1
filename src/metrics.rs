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

#[cfg(test)]
mod tests {
    use super::*;

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
