//! The `daehwa` executable: CLI → config → tracing → bind → `server::run`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use daehwa::config::{Config, LogConfig, LogFormat, Overrides};
use tokio::net::{TcpListener, TcpSocket};
use tracing_subscriber::EnvFilter;

/// Pending connections the kernel may hold for us.
const LISTEN_BACKLOG: u32 = 1024;

#[derive(Parser)]
#[command(name = "daehwa", version, about = "A self-hosted team chat server")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
}

#[derive(Args, Default)]
struct ServeArgs {
    /// TOML configuration file; see config.example.toml.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on; overrides server.bind.
    #[arg(long, value_name = "ADDR")]
    bind: Option<SocketAddr>,
    /// Data directory; overrides storage.path.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Serve(args)) => serve(args),
        None => serve(ServeArgs::default()),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let overrides = Overrides {
        bind: args.bind,
        data_dir: args.data_dir,
    };
    let config = match Config::load(args.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("daehwa: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match bind(config.server.bind) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(addr = %config.server.bind, error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        match daehwa::server::run(listener, config, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "daehwa stopped");
                ExitCode::FAILURE
            }
        }
    })
}

/// Binds with TCP_NODELAY on the listener; accepted sockets inherit it, so small chat
/// frames leave at once instead of waiting on Nagle's algorithm.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn init_tracing(log: &LogConfig) {
    // The scheduler logs every job it creates at info; only its warnings are ours.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("tokio_cron_scheduler=warn,{}", log.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Pretty => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
