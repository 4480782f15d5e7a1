//! daehwa-bench: the load generator, the ceiling server and the report writer behind
//! BENCHMARKS.md. `bench/run.sh` runs the whole benchmark; `smoke` is the CI check.

mod api;
mod ceiling;
mod conformance;
mod load;
mod procfs;
mod report;
mod scenarios;
mod search;
mod servers;
mod sled_index;
mod team;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::api::BoxError;
use crate::scenarios::Common;
use crate::wire::Protocol;

#[derive(Parser)]
#[command(
    name = "daehwa-bench",
    about = "Load generator and baselines for daehwa"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// CI: start a daehwa, drive a few clients, fail unless every message arrived
    /// exactly once and in order.
    Smoke {
        #[arg(long, default_value = "target/debug/daehwa")]
        server_bin: PathBuf,
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// N clients in one room, all sending, at each offered rate (deliveries/s).
    Fanout {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum)]
        target: Protocol,
        #[arg(long)]
        clients: usize,
        /// Offered deliveries per second, comma-separated.
        #[arg(long, value_delimiter = ',')]
        rates: Vec<f64>,
        /// Stop after the first rate past the knee (p99 ≥ 50 ms or a loss).
        #[arg(long)]
        knee: bool,
    },
    /// R rooms of K members, everyone sending.
    Rooms {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum)]
        target: Protocol,
        #[arg(long)]
        rooms: usize,
        #[arg(long)]
        members: usize,
        #[arg(long, value_delimiter = ',')]
        rates: Vec<f64>,
        #[arg(long)]
        knee: bool,
    },
    /// Server memory per idle connection.
    Idle {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum)]
        target: Protocol,
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
    },
    /// Server memory: fresh, after a burst of registrations, with an idle connection
    /// per user, after a burst of logins.
    Memory {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        users: usize,
        /// Register a few users at a time instead of all at once.
        #[arg(long)]
        paced: bool,
    },
    /// A team's day: users with a realistic mix of activity, ramped until the
    /// server no longer keeps up (p99 ≥ 50 ms or anything lost).
    Team {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        options: team::TeamOptions,
    },
    /// History pages from a room of many messages, cold and warm.
    History {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        #[arg(long, default_value_t = 1000)]
        requests: usize,
        /// Kept for `startup`.
        #[arg(long, default_value = "target/bench-work/history")]
        data_dir: PathBuf,
    },
    /// Exec to the first answered request, with the data `history` seeded.
    Startup {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "target/bench-work/history")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Messages per second into sled, per flush interval and in sync mode, beside
    /// raw sled.
    Persistence {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_delimiter = ',', default_value = "500ms,1s,5s")]
        flush_intervals: Vec<String>,
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Messages in flight per connection.
        #[arg(long, default_value_t = 128)]
        window: usize,
        /// Messages sent per mode (at most).
        #[arg(long, default_value_t = 300_000)]
        messages: u64,
        /// Only the sync mode (no raw sled reference, no flush intervals).
        #[arg(long)]
        sync_only: bool,
    },
    /// The search index where it lives: persistence with and without it, its size
    /// per message, query latency (one Korean word, one English word), warm.
    SearchIndex {
        #[arg(long, default_value = "target/bench-work/search")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        #[arg(long, default_value_t = 100)]
        rooms: u64,
        /// Rooms the searching user is a member of.
        #[arg(long, default_value_t = 10)]
        member_of: u64,
        #[arg(long, default_value_t = 1000)]
        queries: usize,
        /// Where the index lives: `sled` (daehwa's own layout) or `tantivy`.
        #[arg(long, default_value = "sled")]
        engine: String,
        /// tantivy: chunks of 1 000 messages per commit.
        #[arg(long, default_value_t = 1)]
        commit_every: u64,
    },
    /// The raw sled reference (run by `persistence` as a pinned child).
    SledRaw {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 200)]
        batches: u64,
        /// Values per `apply_batch`.
        #[arg(long, default_value_t = 1000)]
        batch: u64,
        #[arg(long, default_value_t = 3.0)]
        singles_seconds: f64,
    },
    /// The ceiling baseline server.
    Ceiling {
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: SocketAddr,
    },
    /// daehwa's socket.io transport with the handlers and settings the socket.io
    /// protocol's test suite expects of a server.
    SioConformance {
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: SocketAddr,
    },
    /// Turns a results file into BENCHMARKS.md's tables and SVG charts. Records
    /// marked `"superseded_by"` (replaced by a later re-run) are left out.
    Report {
        #[arg(long)]
        results: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
        #[arg(long, default_value = "docs/bench")]
        charts: PathBuf,
        /// A note on the run (machine load, noise) put above the tables.
        #[arg(long, default_value = "")]
        note: String,
    },
}

/// Parses a flush interval as daehwa's config does: `500ms`, `1s`, `5m`.
pub fn parse_interval(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(number)),
        "s" => Some(Duration::from_secs(number)),
        "m" => Some(Duration::from_secs(number * 60)),
        _ => None,
    }
}

/// Runs a scenario on one thread: the load generator is pinned to one core.
fn local<F: std::future::Future<Output = Result<(), BoxError>>>(future: F) -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let set = tokio::task::LocalSet::new();
    set.block_on(&runtime, future)
}

fn main() -> ExitCode {
    let _ = wire::clock_base();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Smoke {
            server_bin,
            seconds,
        } => local(scenarios::smoke(&server_bin, seconds)),
        Command::Fanout {
            common,
            target,
            clients,
            rates,
            knee,
        } => local(scenarios::rooms_at_rates(
            &common, "fanout", target, 1, clients, &rates, knee,
        )),
        Command::Rooms {
            common,
            target,
            rooms,
            members,
            rates,
            knee,
        } => local(scenarios::rooms_at_rates(
            &common, "rooms", target, rooms, members, &rates, knee,
        )),
        Command::Idle {
            common,
            target,
            connections,
        } => local(scenarios::idle(&common, target, connections)),
        Command::Memory {
            common,
            users,
            paced,
        } => local(scenarios::memory(&common, users, paced)),
        Command::Team { common, options } => local(team::team(&common, &options)),
        Command::History {
            common,
            messages,
            requests,
            data_dir,
        } => local(scenarios::history(&common, messages, requests, &data_dir)),
        Command::Startup {
            common,
            data_dir,
            runs,
        } => scenarios::startup(&common, &data_dir, runs),
        Command::Persistence {
            common,
            flush_intervals,
            connections,
            window,
            messages,
            sync_only,
        } => local(scenarios::persistence(
            &common,
            &flush_intervals,
            connections,
            window,
            messages,
            sync_only,
        )),
        Command::SledRaw {
            dir,
            batches,
            batch,
            singles_seconds,
        } => scenarios::sled_raw(&dir, batches, batch, singles_seconds).map(|v| println!("{v}")),
        Command::SearchIndex {
            dir,
            messages,
            rooms,
            member_of,
            queries,
            engine,
            commit_every,
        } => search::run(
            &dir,
            messages,
            rooms,
            member_of,
            queries,
            &engine,
            commit_every.max(1),
        )
        .map(|v| println!("{v}")),
        Command::Ceiling { bind } => return ceiling::main(bind),
        Command::SioConformance { bind } => return conformance::main(bind),
        Command::Report {
            results,
            markdown,
            charts,
            note,
        } => report::write(&results, &markdown, &charts, &note),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("daehwa-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
