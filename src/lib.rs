//! daehwa (대화, "conversation"): a self-hosted team chat server.
//!
//! Code map, following the original design's layers (see ARCHITECTURE.md):
//! - [`config`]: CLI and TOML configuration, defaults and validation.
//! - [`admin`]: the operator's commands on a data directory (admin, backup, restore).
//! - [`server`]: wiring of the parts and the ordered shutdown.
//! - [`http`]: the REST API (controller); the only place errors become HTTP replies.
//! - [`ws`]: the WebSocket gateway: upgrade, sessions, frame codec.
//! - [`chat`]: the domain (service): accounts, rooms, membership, messages.
//! - [`store`]: sled trees and the write-behind buffer (repository and cache).
//! - [`events`]: the in-process bus from the domain to connections (event emitter).
//! - [`jobs`]: scheduled work: the buffer flush (scheduler).
//! - [`metrics`]: Prometheus metrics.
//! - [`error`]: the domain error type.
//!
//! Arrows go one way: `http`/`ws` → `chat` → `store`, and `chat` → `events` → `ws`.
//! The domain, the store and the bus never import warp.

pub mod admin;
pub mod chat;
pub mod config;
pub mod error;
pub mod events;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod server;
pub mod store;
pub mod ws;
