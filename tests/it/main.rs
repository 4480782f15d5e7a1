//! One integration test binary: every test starts the real server (see `harness`).

mod harness;

mod auth;
mod cli;
mod durability;
mod gateway;
mod history;
mod limits;
mod moderation;
mod ops;
mod restart;
mod rooms;
