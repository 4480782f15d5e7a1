//! One integration test binary: every test starts the real server (see `harness`).

mod contract;
mod harness;

mod abuse;
mod auth;
mod changes;
mod cli;
mod directory;
mod durability;
mod files;
mod gateway;
mod history;
mod limits;
mod migration;
mod moderation;
mod ops;
mod reading;
mod restart;
mod rooms;
mod search;
mod web;
