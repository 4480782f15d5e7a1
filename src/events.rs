//! The in-process event bus between the domain and the connections (the original
//! design's event emitter).
//!
//! The domain publishes an event once, to a list of users; the bus hands one shared
//! [`Delivery`] to every connection of those users through a bounded queue. It never
//! waits: a connection whose queue is full is told to close (it is too slow to keep
//! up, and its client will reconnect and catch up from history), and the others go
//! on. An event is encoded at most once, by the first connection that sends it.
//!
//! The bus knows nothing of sockets or wire formats beyond that cached encoding.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use crate::store::records::UserId;

/// One event on its way to many connections.
pub struct Delivery<E> {
    pub event: E,
    /// The JSON text of `event`, made by the first connection that needs it.
    json: OnceLock<Bytes>,
}

impl<E: Serialize> Delivery<E> {
    pub fn new(event: E) -> Self {
        Self {
            event,
            json: OnceLock::new(),
        }
    }

    /// The event as JSON text, encoded once for all recipients.
    pub fn json(&self) -> &Bytes {
        self.json.get_or_init(|| match serde_json::to_vec(&self.event) {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                // Our events are plain structs and strings; this cannot happen short
                // of a bug, which must not take the connection down with it.
                tracing::error!(error = %e, "an event could not be encoded");
                Bytes::from_static(br#"{"event":"error","data":{"error":"internal","message":"an event could not be encoded"}}"#)
            }
        })
    }
}

/// Why the server ends a connection on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The connection's queue overflowed: it does not read fast enough.
    SlowConsumer,
    /// The token the connection was opened with was revoked.
    LoggedOut,
}

/// A connection's side channel: the bus asks it to close through here.
#[derive(Default)]
pub struct Control {
    reason: Mutex<Option<CloseReason>>,
    notify: Notify,
}

impl Control {
    fn close(&self, reason: CloseReason) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(reason);
            self.notify.notify_one();
        }
    }

    /// Resolves when the bus wants this connection closed, with the reason.
    pub async fn closed(&self) -> CloseReason {
        loop {
            if let Some(reason) = *self.reason.lock().unwrap_or_else(|p| p.into_inner()) {
                return reason;
            }
            self.notify.notified().await;
        }
    }
}

struct Subscriber<E> {
    id: u64,
    /// Identifies the token the connection authenticated with, so that a logout
    /// closes exactly the connections opened with that token.
    token_hash: [u8; 32],
    tx: mpsc::Sender<Arc<Delivery<E>>>,
    control: Arc<Control>,
}

pub struct Bus<E> {
    /// Open connections by user. Read-locked for every publish; written only when a
    /// connection opens or closes. Never held across an `.await`.
    subscribers: RwLock<HashMap<UserId, Vec<Subscriber<E>>>>,
    next_id: AtomicU64,
    /// Capacity of each connection's queue.
    queue: usize,
}

/// A connection's end of the bus; dropping it unsubscribes.
pub struct Subscription<E: Serialize> {
    bus: Arc<Bus<E>>,
    user: UserId,
    id: u64,
    pub rx: mpsc::Receiver<Arc<Delivery<E>>>,
    pub control: Arc<Control>,
}

impl<E: Serialize> Drop for Subscription<E> {
    fn drop(&mut self) {
        let mut map = self.bus.write();
        if let Some(list) = map.get_mut(&self.user) {
            list.retain(|s| s.id != self.id);
            if list.is_empty() {
                map.remove(&self.user);
            }
        }
    }
}

impl<E: Serialize> Bus<E> {
    pub fn new(queue: usize) -> Arc<Self> {
        Arc::new(Self {
            subscribers: RwLock::default(),
            next_id: AtomicU64::new(1),
            queue,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<UserId, Vec<Subscriber<E>>>> {
        // Every critical section leaves the map consistent, so a poisoned lock is
        // still a good map.
        self.subscribers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<UserId, Vec<Subscriber<E>>>> {
        self.subscribers.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a connection's queue. Events published from now on reach it.
    pub fn subscribe(self: &Arc<Self>, user: UserId, token_hash: [u8; 32]) -> Subscription<E> {
        let (tx, rx) = mpsc::channel(self.queue);
        let control = Arc::new(Control::default());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.write().entry(user).or_default().push(Subscriber {
            id,
            token_hash,
            tx,
            control: Arc::clone(&control),
        });
        Subscription {
            bus: Arc::clone(self),
            user,
            id,
            rx,
            control,
        }
    }

    /// Sends `event` to every connection of every user in `audience`.
    pub fn publish(&self, audience: impl IntoIterator<Item = UserId>, event: E) {
        let delivery = Arc::new(Delivery::new(event));
        let map = self.read();
        for user in audience {
            for subscriber in map.get(&user).into_iter().flatten() {
                Self::offer(subscriber, &delivery);
            }
        }
    }

    /// Sends `event` to every open connection.
    pub fn publish_all(&self, event: E) {
        let delivery = Arc::new(Delivery::new(event));
        for subscriber in self.read().values().flatten() {
            Self::offer(subscriber, &delivery);
        }
    }

    fn offer(subscriber: &Subscriber<E>, delivery: &Arc<Delivery<E>>) {
        if let Err(mpsc::error::TrySendError::Full(_)) =
            subscriber.tx.try_send(Arc::clone(delivery))
        {
            subscriber.control.close(CloseReason::SlowConsumer);
        }
    }

    /// Closes the connections of `user` opened with the token of this hash.
    pub fn close_token(&self, user: UserId, token_hash: &[u8; 32], reason: CloseReason) {
        for subscriber in self.read().get(&user).into_iter().flatten() {
            if &subscriber.token_hash == token_hash {
                subscriber.control.close(reason);
            }
        }
    }

    /// Open connections of one user.
    pub fn connections_of(&self, user: UserId) -> usize {
        self.read().get(&user).map_or(0, Vec::len)
    }

    /// Open connections in all, and users with at least one.
    pub fn counts(&self) -> (usize, usize) {
        let map = self.read();
        (map.values().map(Vec::len).sum(), map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_closes_only_that_connection() {
        let bus: Arc<Bus<u32>> = Bus::new(2);
        let mut slow = bus.subscribe(1, [0; 32]);
        let mut fast = bus.subscribe(2, [0; 32]);
        for n in 0..3 {
            bus.publish([1, 2], n);
            let got = fast.rx.recv().await.expect("delivered");
            assert_eq!(got.event, n);
        }
        assert_eq!(slow.control.closed().await, CloseReason::SlowConsumer);
        assert_eq!(slow.rx.recv().await.map(|d| d.event), Some(0));
        assert_eq!(bus.counts(), (2, 2));
        drop(slow);
        assert_eq!(bus.counts(), (1, 1));
    }

    #[tokio::test]
    async fn one_encoding_is_shared_by_all_recipients() {
        let bus: Arc<Bus<&'static str>> = Bus::new(4);
        let mut a = bus.subscribe(1, [0; 32]);
        let mut b = bus.subscribe(1, [1; 32]);
        bus.publish([1], "hi");
        let (da, db) = (a.rx.recv().await.expect("a"), b.rx.recv().await.expect("b"));
        assert!(Arc::ptr_eq(&da, &db));
        assert_eq!(da.json().as_ptr(), db.json().as_ptr());
        assert_eq!(&da.json()[..], b"\"hi\"");
    }
}
