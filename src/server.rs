//! Wiring of the parts (the routes served by the [`accept`] loop), and the ordered
//! shutdown:
//! stop accepting → tell sessions and wait for them → stop the jobs → final flush of
//! the buffer → sled flush → return (exit 0).

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_cron_scheduler::JobSchedulerError;
use warp::Filter;

use crate::accept::{self, ConnectionLimits, Handler};
use crate::chat::Chat;
use crate::config::Config;
use crate::indexer::SearchIndex;
use crate::jobs::Jobs;
use crate::shutdown::ShutdownControl;
use crate::socketio::chat::ChatService;
use crate::socketio::{EngineConfig, SocketIo};
use crate::store::{Store, StoreError};
use crate::{http, socketio, ws};

/// How many times the final flush is tried before shutdown gives up and reports
/// the messages it could not store.
const FINAL_FLUSH_ATTEMPTS: usize = 5;
const FINAL_FLUSH_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// How long a socket.io connection may stay without connecting a namespace (its
/// client sends CONNECT right after the handshake).
const SOCKETIO_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot open the search index: {0}")]
    Search(#[from] crate::indexer::IndexError),
    #[error("cannot start the scheduler: {0}")]
    Jobs(#[from] JobSchedulerError),
    #[error("the final flush failed, {buffered} changes were not stored: {source}")]
    FinalFlush { buffered: usize, source: StoreError },
}

/// The Engine.IO settings of `/socket.io/`: socket.io's own timings, `/ws`'s limits.
fn socketio_config(config: &Config) -> EngineConfig {
    EngineConfig {
        max_payload: config.limits.max_ws_message_bytes,
        connect_timeout: SOCKETIO_CONNECT_TIMEOUT,
        max_polling_sessions: config.limits.polling_sessions,
        polling_queue: config.limits.ws_send_queue,
        write_timeout: ws::WRITE_TIMEOUT,
        ..EngineConfig::default()
    }
}

/// Serves on `listener` until `shutdown` resolves, then shuts down in order.
/// `ready` is called once requests are being served (for systemd's notify protocol).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(),
) -> Result<(), ServerError> {
    let (store, chat) = Chat::load(&config)?;
    // The search index, fed by each flush once its changes are on disk.
    let search_index = if config.storage.search_index {
        let search_index = SearchIndex::start(store.clone(), &config.storage.path)?;
        let feed = Arc::clone(&search_index);
        store.on_flush(Box::new(move |changes| feed.feed(changes)));
        chat.set_search_index(Arc::clone(&search_index));
        Some(search_index)
    } else {
        None
    };
    let jobs = Jobs::start(
        Arc::clone(&chat),
        config.storage.flush_interval,
        config.storage.durability,
    )
    .await?;

    let control = ShutdownControl::new();
    let gateway = ws::Gateway::new(
        Arc::clone(&chat),
        control.handle(),
        config.limits.max_ws_message_bytes,
        config.server.allowed_origins.clone(),
    );
    let socket_io = SocketIo::new(
        ChatService::new(Arc::clone(&chat), config.server.allowed_origins.clone()),
        socketio_config(&config),
        control.handle(),
    );
    let gateways = ws::route(gateway).or(socketio::route(socket_io)).unify();
    let routes = http::app(Arc::clone(&chat), &config, gateways)
        .recover(http::recover)
        .with(http::request_log(Arc::clone(chat.metrics())));
    let service = warp::service(routes);
    let handler: Handler = Arc::new(move |request| {
        let mut service = service.clone();
        Box::pin(async move {
            match tower_service::Service::call(&mut service, request).await {
                Ok(reply) => reply,
                Err(never) => match never {},
            }
        })
    });

    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, data_dir = %config.storage.path.display(), "listening");
    }
    let limits = ConnectionLimits {
        max_connections: config.server.max_connections,
        header_read_timeout: config.server.header_read_timeout,
        shutdown_grace: config.server.shutdown_grace,
    };
    let server = tokio::spawn(accept::serve(listener, limits, handler, control.begun()));
    ready();

    shutdown.await;
    tracing::info!("shutting down: no new connections, closing sessions");
    control.begin();
    // Requests in progress and sessions get the same grace, at once.
    let (served, sessions_closed) = tokio::join!(
        server,
        control.wait_for_sessions(config.server.shutdown_grace)
    );
    if let Err(e) = served {
        tracing::error!(error = %e, "the HTTP server task failed");
    }
    if !sessions_closed {
        tracing::warn!("some sessions did not close in time; flushing anyway");
    }
    jobs.stop().await;
    let flushed = final_flush(&chat, &store).await;
    // What the index holds is committed (what it lacks is indexed from the log at
    // the next start).
    if let Some(search_index) = search_index {
        if tokio::task::spawn_blocking(move || search_index.stop())
            .await
            .is_err()
        {
            tracing::error!("stopping the search indexer failed");
        }
    }
    flushed?;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Writes the read markers and everything still buffered, flushes sled and marks
/// the shutdown clean.
async fn final_flush(chat: &Chat, store: &Store) -> Result<(), ServerError> {
    let mut last_error = None;
    let mut markers_saved = false;
    for _ in 0..FINAL_FLUSH_ATTEMPTS {
        if !markers_saved {
            match chat.save_read_markers().await {
                Ok(_) => markers_saved = true,
                Err(e) => {
                    tracing::error!(error = %e, "saving read markers failed; retrying");
                    last_error = Some(e);
                }
            }
        }
        match chat.flush().await {
            Ok(_) if markers_saved && store.buffered_changes() == 0 => {
                return store.mark_clean_shutdown().await.map_err(|source| {
                    ServerError::FinalFlush {
                        buffered: 0,
                        source,
                    }
                });
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "final flush failed; retrying");
                last_error = Some(e);
            }
        }
        if last_error.is_some() {
            tokio::time::sleep(FINAL_FLUSH_RETRY_DELAY).await;
        }
    }
    Err(ServerError::FinalFlush {
        buffered: store.buffered_changes(),
        source: last_error.unwrap_or_else(|| {
            StoreError::NotOurs("messages kept arriving during shutdown".into())
        }),
    })
}
