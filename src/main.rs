//! The `daehwa` executable: CLI → config → tracing → bind → `server::run`, and the
//! operator's commands (`admin`, `backup`, `restore`, `check-config`).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use daehwa::admin::{self, AdminError};
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
    Serve(ConfigArgs),
    /// Manage accounts and look at rooms, on a data directory no server holds.
    Admin {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Write a consistent snapshot of the database to a file; works while the server
    /// runs (through its admin endpoint, with admin.token) or not.
    Backup {
        #[command(flatten)]
        config: ConfigArgs,
        /// The backup file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Address of the running server, when it differs from server.bind.
        #[arg(long, value_name = "ADDR")]
        server: Option<SocketAddr>,
    },
    /// Restore a backup into an empty (or new) data directory.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// The directory to restore into; must be empty or not exist.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Check a configuration file and print the effective configuration.
    CheckConfig {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// Create an account; the password is read from standard input.
    CreateUser { username: String },
    /// Set a new password (read from standard input) and sign the user out everywhere.
    ResetPassword { username: String },
    /// Disable an account and sign it out everywhere.
    DisableUser { username: String },
    /// Enable a disabled account again.
    EnableUser { username: String },
    /// List the accounts.
    ListUsers,
    /// List the rooms, closed ones included.
    ListRooms,
    /// Show the space the data directory takes: the database and the stored files.
    Usage,
}

#[derive(Args, Default)]
struct ConfigArgs {
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

impl ConfigArgs {
    /// The configuration, or exit code 2 with the reason.
    fn load(&self) -> Result<Config, ExitCode> {
        let overrides = Overrides {
            bind: self.bind,
            data_dir: self.data_dir.clone(),
        };
        Config::load(self.config.as_deref(), &overrides).map_err(|e| {
            eprintln!("daehwa: {e}");
            ExitCode::from(2)
        })
    }
}

fn main() -> ExitCode {
    // First, before any thread or large allocation: see `allocator`.
    daehwa::allocator::tune();
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        None | Some(Command::Serve(_)) | Some(Command::CheckConfig { .. })
    ) {
        // The operator's commands print their results; the log only carries the
        // warnings and the detail of an error (a store failure, say).
        init_tracing(&LogConfig {
            level: "warn".to_owned(),
            format: LogFormat::Pretty,
        });
    }
    let outcome = match cli.command.unwrap_or(Command::Serve(ConfigArgs::default())) {
        Command::Serve(args) => serve(args),
        Command::Admin { config, action } => {
            config.load().and_then(|config| run_admin(&config, action))
        }
        Command::Backup {
            config,
            out,
            server,
        } => config.load().and_then(|config| {
            report(admin::backup(&config, &out, server).map(|stats| {
                format!(
                    "backup written to {}: {} trees, {} records, {} files ({} bytes)",
                    out.display(),
                    stats.trees,
                    stats.entries,
                    stats.files,
                    stats.file_bytes
                )
            }))
        }),
        Command::Restore { file, data_dir } => {
            report(admin::restore(&file, &data_dir).map(|stats| {
                format!(
                    "restored {} records and {} files into {}",
                    stats.entries,
                    stats.files,
                    data_dir.display()
                )
            }))
        }
        Command::CheckConfig { config } => {
            let args = ConfigArgs {
                config: Some(config),
                ..ConfigArgs::default()
            };
            args.load()
                .and_then(|config| match toml::to_string(&config) {
                    Ok(text) => {
                        println!("# the configuration is valid; in effect:\n{text}");
                        Ok(())
                    }
                    Err(e) => {
                        eprintln!("daehwa: {e}");
                        Err(ExitCode::FAILURE)
                    }
                })
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// Prints a command's result, or its error with exit code 1.
fn report(outcome: Result<String, AdminError>) -> Result<(), ExitCode> {
    match outcome {
        Ok(text) => {
            println!("{text}");
            Ok(())
        }
        Err(e) => {
            eprintln!("daehwa: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn run_admin(config: &Config, action: AdminAction) -> Result<(), ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("daehwa: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })?;
    report(runtime.block_on(async {
        let chat = admin::open(config)?;
        let text = match action {
            AdminAction::CreateUser { username } => {
                let password = admin::read_password(std::io::stdin())?;
                let user = chat.create_user(username, password).await?;
                format!("created user {} ({})", user.user_id, user.username)
            }
            AdminAction::ResetPassword { username } => {
                let password = admin::read_password(std::io::stdin())?;
                chat.reset_password(&username, password).await?;
                format!("password of {username} reset; their sessions are signed out")
            }
            AdminAction::DisableUser { username } => {
                chat.set_disabled(&username, true)?;
                format!("{username} is disabled and signed out")
            }
            AdminAction::EnableUser { username } => {
                chat.set_disabled(&username, false)?;
                format!("{username} is enabled")
            }
            AdminAction::ListUsers => admin::list_users(&chat),
            AdminAction::ListRooms => admin::list_rooms(&chat),
            AdminAction::Usage => admin::usage(&chat)?,
        };
        chat.close()?;
        Ok::<_, AdminError>(text)
    }))
}

fn serve(args: ConfigArgs) -> Result<(), ExitCode> {
    let config = args.load()?;
    init_tracing(&config.log);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| {
        tracing::error!(error = %e, "cannot start the runtime");
        ExitCode::FAILURE
    })?;
    runtime.block_on(async {
        let listener = bind(config.server.bind).map_err(|e| {
            tracing::error!(addr = %config.server.bind, error = %e, "cannot listen");
            ExitCode::FAILURE
        })?;
        let shutdown = shutdown_signal().map_err(|e| {
            tracing::error!(error = %e, "cannot listen for SIGTERM and SIGINT");
            ExitCode::FAILURE
        })?;
        let outcome = daehwa::server::run(listener, config, shutdown, || {
            notify_systemd(sd_notify::NotifyState::Ready)
        })
        .await;
        notify_systemd(sd_notify::NotifyState::Stopping);
        outcome.map_err(|e| {
            tracing::error!(error = %e, "daehwa stopped");
            ExitCode::FAILURE
        })
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

/// Tells systemd about our state (`Type=notify`), when it is watching (the crate
/// does nothing without `NOTIFY_SOCKET`).
fn notify_systemd(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed now, before the server
/// reports ready, so that an early SIGTERM is a graceful shutdown too.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
