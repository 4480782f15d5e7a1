//! Wiring of the parts, and the ordered shutdown:
//! stop accepting → tell sessions and wait for them → stop the jobs → final flush of
//! the buffer → sled flush → return (exit 0).

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_cron_scheduler::JobSchedulerError;
use warp::Filter;

use crate::chat::{Chat, Settings};
use crate::config::Config;
use crate::events::Bus;
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use crate::{http, ws};

/// How many times the final flush is tried before shutdown gives up and reports
/// the messages it could not store.
const FINAL_FLUSH_ATTEMPTS: usize = 5;
const FINAL_FLUSH_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot start the scheduler: {0}")]
    Jobs(#[from] JobSchedulerError),
    #[error("the final flush failed, {buffered} messages were not stored: {source}")]
    FinalFlush { buffered: usize, source: StoreError },
}

/// A session's view of shutdown: it learns when to close, and while it holds this
/// the server waits for it (the sender half counts the live sessions).
#[derive(Clone)]
pub struct Shutdown {
    signal: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
}

impl Shutdown {
    /// Resolves once shutdown has begun.
    pub async fn signalled(&mut self) {
        // An error means the server is gone, which is shutdown too.
        let _ = self.signal.wait_for(|begun| *begun).await;
    }
}

/// Opens the store and loads the domain: what the server and the admin commands share.
pub fn open(config: &Config) -> Result<(Store, Arc<Chat>), ServerError> {
    let store = Store::open(&config.storage.path)?;
    let bus = Bus::new(config.limits.ws_send_queue);
    let settings = Settings::from_config(config);
    let chat = Chat::open(store.clone(), bus, settings, Arc::new(Metrics::default()))?;
    Ok((store, Arc::new(chat)))
}

/// Serves on `listener` until `shutdown` resolves, then shuts down in order.
/// `ready` is called once requests are being served (for systemd's notify protocol).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(),
) -> Result<(), ServerError> {
    let (store, chat) = open(&config)?;
    let jobs = Jobs::start(
        Arc::clone(&chat),
        config.storage.flush_interval,
        config.storage.durability,
    )
    .await?;

    let (begin, signal) = watch::channel(false);
    let (alive, mut sessions_done) = mpsc::channel::<()>(1);
    let gateway = ws::Gateway::new(
        Arc::clone(&chat),
        Shutdown {
            signal: signal.clone(),
            _alive: alive,
        },
        config.limits.max_ws_message_bytes,
        config.server.allowed_origins.clone(),
    );
    let routes = ws::route(gateway)
        .or(http::routes(Arc::clone(&chat), &config))
        .unify()
        .recover(http::recover)
        .with(http::request_log(Arc::clone(chat.metrics())));

    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, data_dir = %config.storage.path.display(), "listening");
    }
    let mut stop_accepting = signal.clone();
    let server = tokio::spawn(
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move {
                let _ = stop_accepting.wait_for(|begun| *begun).await;
            })
            .run(),
    );
    ready();

    shutdown.await;
    tracing::info!("shutting down: no new connections, closing sessions");
    let _ = begin.send(true);
    if let Err(e) = server.await {
        tracing::error!(error = %e, "the HTTP server task failed");
    }
    // Every session holds a sender; recv() returns None once the last is gone.
    if tokio::time::timeout(config.server.shutdown_grace, sessions_done.recv())
        .await
        .is_err()
    {
        tracing::warn!("some sessions did not close in time; flushing anyway");
    }
    jobs.stop().await;
    final_flush(&chat, &store).await?;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Writes everything still buffered, flushes sled and marks the shutdown clean.
async fn final_flush(chat: &Chat, store: &Store) -> Result<(), ServerError> {
    let mut last_error = None;
    for _ in 0..FINAL_FLUSH_ATTEMPTS {
        match chat.flush().await {
            Ok(_) if store.buffered_messages() == 0 => {
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
                tokio::time::sleep(FINAL_FLUSH_RETRY_DELAY).await;
            }
        }
    }
    Err(ServerError::FinalFlush {
        buffered: store.buffered_messages(),
        source: last_error.unwrap_or_else(|| {
            StoreError::NotOurs("messages kept arriving during shutdown".into())
        }),
    })
}
