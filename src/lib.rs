//! daehwa (대화, "conversation"): a self-hosted team chat server.
//!
//! Code map, following the original design's layers (see ARCHITECTURE.md):
//! - [`config`]: CLI and TOML configuration, defaults and validation.
//! - [`accept`]: the accept loop: connection limits, timeouts, graceful close.
//! - [`admin`]: the operator's commands on a data directory (admin, backup, restore).
//! - [`server`]: wiring of the parts and the ordered shutdown (served by [`accept`]).
//! - [`shutdown`]: shutdown as connections see it (a signal, and a count to wait for).
//! - [`http`]: the REST API (controller).
//! - [`reply`]: the one place a domain error becomes an HTTP reply (status and JSON),
//!   shared by the REST API and the gateways' upgrades.
//! - [`session`]: what a connection means, whatever its transport: the session core
//!   (a state machine of commands and deliveries in, events and a close out).
//! - [`ws`]: the WebSocket gateway at `/ws`: upgrade, frame codec, a thin loop
//!   around the session core.
//! - [`socketio`]: the socket.io gateway at `/socket.io/` (Engine.IO v4, socket.io
//!   v5, WebSocket and long-polling), over the same session core.
//! - [`chat`]: the domain (service): accounts, rooms, membership, messages.
//! - [`store`]: sled trees and the write-behind buffer (repository and cache).
//! - [`events`]: the in-process bus from the domain to connections (event emitter).
//! - [`jobs`]: scheduled work: the buffer flush (scheduler).
//! - [`search`]: the words of search: index tokens, queries, the check of a match.
//! - [`metrics`]: Prometheus metrics.
//! - [`proxy`]: who the client is: the TCP peer, or the address a trusted proxy forwards.
//! - [`model`]: the domain's vocabulary (typed ids, times, users, rooms, messages),
//!   shared by every layer; `store` converts it to its private records at its edge.
//! - [`error`]: the domain error type.
//! - [`allocator`]: how the process asks glibc's allocator to give memory back.
//!
//! Arrows go one way: `server` (wiring) imports everything and nothing imports it;
//! `http`/`ws`/`socketio` → `reply`, `shutdown`, `chat` → `store`;
//! `ws`/`socketio` → `session` → `chat`; `socketio` → `ws::upgrade` (a WebSocket);
//! `chat` → `events` → `session`;
//! `admin` → `chat`. `http` and `ws` do not import each other. The domain, the store
//! and the bus never import warp.

pub mod accept;
pub mod admin;
pub mod allocator;
pub mod chat;
pub mod config;
pub mod error;
pub mod events;
pub mod http;
pub mod indexer;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod priority;
pub mod proxy;
pub mod reply;
pub mod search;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod socketio;

pub mod store;
pub mod ws;
