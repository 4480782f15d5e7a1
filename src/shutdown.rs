//! Shutdown as the connections see it: a signal that it has begun, and a count of the
//! connections still open, so that the server can wait for them (within its grace).
//!
//! Its own module (as in mini-redis) because both the wiring (`server`) and the
//! gateways use it, and the gateways must not import the wiring.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// A connection's view of shutdown: it learns when to close, and while it (or a
/// clone) is alive the server waits for it.
#[derive(Clone)]
pub struct Shutdown {
    signal: watch::Receiver<bool>,
    /// Never sent on: the receiver in [`ShutdownControl`] sees the channel close once
    /// every clone is dropped, which is how the server knows the sessions are gone.
    _alive: mpsc::Sender<()>,
}

impl Shutdown {
    /// Resolves once shutdown has begun.
    pub async fn signalled(&mut self) {
        // An error means the control is gone, which is shutdown too.
        let _ = self.signal.wait_for(|begun| *begun).await;
    }

    /// Whether shutdown has begun.
    pub fn is_signalled(&self) -> bool {
        *self.signal.borrow()
    }
}

/// The server's side: begins shutdown and waits for the sessions.
pub struct ShutdownControl {
    begin: watch::Sender<bool>,
    /// The first handle; the others are clones of it.
    handle: Shutdown,
    sessions_done: mpsc::Receiver<()>,
}

impl Default for ShutdownControl {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownControl {
    pub fn new() -> Self {
        let (begin, signal) = watch::channel(false);
        let (alive, sessions_done) = mpsc::channel(1);
        Self {
            begin,
            handle: Shutdown {
                signal,
                _alive: alive,
            },
            sessions_done,
        }
    }

    /// A handle for a session (or for what hands handles to sessions).
    pub fn handle(&self) -> Shutdown {
        self.handle.clone()
    }

    /// Resolves once shutdown has begun, without counting as a session (for the
    /// accept loop).
    pub fn begun(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut signal = self.begin.subscribe();
        async move {
            let _ = signal.wait_for(|begun| *begun).await;
        }
    }

    /// Tells every handle that shutdown has begun.
    pub fn begin(&self) {
        self.begin.send_replace(true);
    }

    /// Waits until every handle is dropped, at most `grace`; whether they all were.
    pub async fn wait_for_sessions(self, grace: Duration) -> bool {
        let Self {
            handle,
            mut sessions_done,
            begin,
        } = self;
        drop(handle);
        let done = tokio::time::timeout(grace, sessions_done.recv())
            .await
            .is_ok();
        drop(begin);
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_every_handle() {
        let control = ShutdownControl::new();
        let mut session = control.handle();
        assert!(!session.is_signalled());
        control.begin();
        session.signalled().await;
        assert!(session.is_signalled());
        let closer = tokio::spawn(async move {
            tokio::task::yield_now().await;
            drop(session);
        });
        assert!(control.wait_for_sessions(Duration::from_secs(5)).await);
        closer.await.expect("joined");
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_grace() {
        let control = ShutdownControl::new();
        let _stuck = control.handle();
        control.begin();
        assert!(!control.wait_for_sessions(Duration::from_secs(1)).await);
    }
}
