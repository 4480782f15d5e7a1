//! The accept loop: TCP connections, their limits, and their graceful end.
//!
//! It knows nothing of routes or transports: each connection is served as HTTP/1.1
//! (with upgrades, for WebSockets) by one [`Handler`] that the wiring builds from
//! the warp filters, so another transport mounts on the same port by adding a
//! filter. What it bounds, against clients that open connections and say nothing:
//! - connections at once (`server.max_connections`): a connection beyond the limit
//!   is closed at once, so that the listen queue keeps moving;
//! - the time to send a request's headers, and to stay idle between requests
//!   (`server.header_read_timeout`, hyper's timer);
//! - the time shutdown waits for requests in progress (`server.shutdown_grace`);
//! - accept errors (out of file descriptors): a back-off, one warning per 10 s.
//!
//! HTTP/2 is not served: without TLS it would only reach clients that speak
//! cleartext HTTP/2 on purpose (h2c), and the WebSocket upgrade needs HTTP/1.1. A
//! reverse proxy may speak HTTP/2 to browsers and HTTP/1.1 to daehwa.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use warp::reply::Response;

use crate::proxy::PeerAddr;

/// The first pause after an accept error; it doubles up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one warning about refused connections, or about accept errors, per this
/// long.
const REFUSAL_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Answers one request. Built once from the routes; called for every request.
pub type Handler =
    Arc<dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

/// The limits of the accept loop, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// How long shutdown waits for requests in progress before it drops them.
    pub shutdown_grace: Duration,
}

/// A connection holding its place among `server.max_connections`: the place is
/// given back when the socket is dropped. An upgraded connection (a WebSocket, on
/// `/ws` or `/socket.io/`) carries the socket, and so its place, into its session:
/// no gateway needs to know about the limit.
struct Counted {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves connections from `listener` until `stop` resolves; then closes the
/// listener, lets requests in progress finish for at most `shutdown_grace`, and
/// drops the connections still open.
pub async fn serve(
    listener: TcpListener,
    limits: ConnectionLimits,
    handler: Handler,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Tells the connections to finish their request in progress and close.
    let (closing, closing_signal) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut backoff = Backoff::default();
    let mut last_refusal_warning: Option<Instant> = None;
    let mut stop = std::pin::pin!(stop);

    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            // Reaps each connection as it ends, so the set holds only live ones: a
            // finished task keeps its allocation (the size of the connection's
            // future) until it is joined, and after a burst of requests a thousand
            // of them, waiting for the next accept, pinned the heap's pages.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(pair) => {
                    backoff.reset();
                    pair
                }
                Err(e) => {
                    tokio::select! {
                        () = &mut stop => break,
                        () = backoff.pause(&e) => continue,
                    }
                }
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            if last_refusal_warning.is_none_or(|at| at.elapsed() >= REFUSAL_WARNING_INTERVAL) {
                last_refusal_warning = Some(Instant::now());
                tracing::warn!(
                    max = limits.max_connections,
                    "connection limit reached (server.max_connections): closing new connections"
                );
            }
            drop(stream);
            continue;
        };
        let stream = Counted {
            stream,
            _slot: permit,
        };
        let handler = Arc::clone(&handler);
        let service = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(PeerAddr(peer));
            let reply = handler(request);
            async move { Ok::<_, Infallible>(reply.await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut closing = closing_signal.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = async { drop(closing.wait_for(|closing| *closing).await) } => {
                    // Finishes the request in progress, if any, then closes.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            // Malformed requests, resets and timeouts are the client's business:
            // hyper has answered what it could (400, 431), so they log at debug.
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener);
    let _ = closing.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.shutdown_grace, drained)
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "some HTTP requests did not finish within server.shutdown_grace; dropping them"
        );
    }
    connections.shutdown().await;
}

/// Pauses after accept errors: they come from a shortage (file descriptors, memory)
/// that a tight loop would only prolong, and would log in a flood.
#[derive(Default)]
struct Backoff {
    next: Option<Duration>,
    /// At most one warning per [`REFUSAL_WARNING_INTERVAL`]: a shortage that comes
    /// and goes as connections close would otherwise warn on every recovery.
    last_warning: Option<Instant>,
}

impl Backoff {
    fn reset(&mut self) {
        self.next = None;
    }

    async fn pause(&mut self, error: &std::io::Error) {
        use std::io::ErrorKind;
        // A connection that was reset before we took it is not our shortage.
        if matches!(
            error.kind(),
            ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
        ) {
            tracing::debug!(%error, "a connection went away before it was accepted");
            return;
        }
        if self
            .last_warning
            .is_none_or(|at| at.elapsed() >= REFUSAL_WARNING_INTERVAL)
        {
            self.last_warning = Some(Instant::now());
            tracing::warn!(%error, "cannot accept connections; backing off until it recovers");
        } else {
            tracing::debug!(%error, "accept still failing");
        }
        let pause = self.next.unwrap_or(ACCEPT_BACKOFF_MIN);
        self.next = Some((pause * 2).min(ACCEPT_BACKOFF_MAX));
        tokio::time::sleep(pause).await;
    }
}
