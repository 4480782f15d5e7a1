//! The in-process event bus between the domain and the connections (the original
//! design's event emitter).
//!
//! The domain publishes an event once, to a list of users; the bus hands one shared
//! [`Delivery`] to every connection of those users through a bounded queue. It never
//! waits: a connection whose queue is full is told to close (it is too slow to keep
//! up, and its client will reconnect and catch up from history), and the others go
//! on.
//!
//! The bus knows no wire format. A delivery carries the event; each transport turns
//! it into its own frame with an [`Encoding`], once per event whatever the number of
//! recipients, and the delivery caches that frame per encoding.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use tokio::sync::{mpsc, Notify};

use crate::model::UserId;

/// How a transport turns an event into its frame. Implemented by a type of the
/// transport; the type is the key of the delivery's cache.
pub trait Encoding<E>: 'static {
    /// The encoded event, cheap to clone (a reference-counted buffer).
    type Frame: Clone + Send + Sync + 'static;
    fn encode(event: &E) -> Self::Frame;
}

/// Encodings cached per delivery: one per transport. A further one is still
/// correct, only encoded per recipient.
const CACHED_ENCODINGS: usize = 2;

type CachedFrame = (TypeId, Box<dyn Any + Send + Sync>);

/// One event on its way to many connections.
pub struct Delivery<E> {
    pub event: E,
    /// Frames made by the first connection of each transport that sends the event.
    frames: [OnceLock<CachedFrame>; CACHED_ENCODINGS],
}

impl<E> Delivery<E> {
    pub fn new(event: E) -> Self {
        Self {
            event,
            frames: Default::default(),
        }
    }

    /// The event encoded with `C`, encoded once for all recipients.
    pub fn encoded<C: Encoding<E>>(&self) -> C::Frame {
        let key = TypeId::of::<C>();
        for slot in &self.frames {
            let (slot_key, frame) = slot.get_or_init(|| (key, Box::new(C::encode(&self.event))));
            if *slot_key == key {
                if let Some(frame) = frame.downcast_ref::<C::Frame>() {
                    return frame.clone();
                }
            }
        }
        C::encode(&self.event)
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
            // Every waiter: a transport may wait here while its session does too.
            self.notify.notify_waiters();
        }
    }

    /// Why the bus wants this connection closed, if it does.
    pub fn reason(&self) -> Option<CloseReason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves when the bus wants this connection closed, with the reason.
    pub async fn closed(&self) -> CloseReason {
        loop {
            // Registered before the check, so that a close in between wakes it.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(reason) = self.reason() {
                return reason;
            }
            notified.await;
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

/// A user already has as many connections as allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyConnections;

pub struct Bus<E> {
    /// Open connections by user. Read-locked for every publish; written only when a
    /// connection opens or closes. Never held across an `.await`.
    subscribers: RwLock<HashMap<UserId, Vec<Subscriber<E>>>>,
    next_id: AtomicU64,
    /// Capacity of each connection's queue.
    queue: usize,
}

/// A connection's end of the bus; dropping it unsubscribes.
pub struct Subscription<E> {
    bus: Arc<Bus<E>>,
    user: UserId,
    id: u64,
    pub rx: mpsc::Receiver<Arc<Delivery<E>>>,
    pub control: Arc<Control>,
}

impl<E> Drop for Subscription<E> {
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

impl<E> Bus<E> {
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

    /// Opens a connection's queue (events published from now on reach it), unless `user` already has `max` open: counted
    /// and checked under one lock, so that racing connections cannot pass the
    /// limit together.
    pub fn subscribe_within(
        self: &Arc<Self>,
        user: UserId,
        token_hash: [u8; 32],
        max: usize,
    ) -> Result<Subscription<E>, TooManyConnections> {
        let control = Arc::new(Control::default());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let rx = {
            let mut map = self.write();
            let list = map.entry(user).or_default();
            if list.len() >= max {
                return Err(TooManyConnections);
            }
            let (tx, rx) = mpsc::channel(self.queue);
            list.push(Subscriber {
                id,
                token_hash,
                tx,
                control: Arc::clone(&control),
            });
            rx
        };
        Ok(Subscription {
            bus: Arc::clone(self),
            user,
            id,
            rx,
            control,
        })
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

    fn subscribe<E>(bus: &Arc<Bus<E>>, user: u64, token_hash: [u8; 32]) -> Subscription<E> {
        bus.subscribe_within(UserId::new(user), token_hash, usize::MAX)
            .expect("no limit")
    }

    #[tokio::test]
    async fn a_full_queue_closes_only_that_connection() {
        let bus: Arc<Bus<u32>> = Bus::new(2);
        let mut slow = subscribe(&bus, 1, [0; 32]);
        let mut fast = subscribe(&bus, 2, [0; 32]);
        for n in 0..3 {
            bus.publish([UserId::new(1), UserId::new(2)], n);
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
        let mut a = subscribe(&bus, 1, [0; 32]);
        let mut b = subscribe(&bus, 1, [1; 32]);
        bus.publish([UserId::new(1)], "hi");
        let (da, db) = (a.rx.recv().await.expect("a"), b.rx.recv().await.expect("b"));
        assert!(Arc::ptr_eq(&da, &db));
        let (fa, fb) = (da.encoded::<Quoted>(), db.encoded::<Quoted>());
        assert!(Arc::ptr_eq(&fa, &fb), "encoded once");
        assert_eq!(&*fa, "\"hi\"");
        // Another transport's encoding is cached beside it.
        let shouted = da.encoded::<Shouted>();
        assert_eq!(&*shouted, "HI");
        assert!(Arc::ptr_eq(&shouted, &db.encoded::<Shouted>()));
        assert!(Arc::ptr_eq(&fa, &da.encoded::<Quoted>()));
        // One encoding more than the cache holds is still right, only not shared.
        assert_eq!(&*da.encoded::<Bare>(), "hi");
    }

    struct Quoted;
    impl Encoding<&'static str> for Quoted {
        type Frame = Arc<str>;
        fn encode(event: &&'static str) -> Arc<str> {
            format!("{event:?}").into()
        }
    }
    struct Shouted;
    impl Encoding<&'static str> for Shouted {
        type Frame = Arc<str>;
        fn encode(event: &&'static str) -> Arc<str> {
            event.to_uppercase().into()
        }
    }
    struct Bare;
    impl Encoding<&'static str> for Bare {
        type Frame = Arc<str>;
        fn encode(event: &&'static str) -> Arc<str> {
            (*event).into()
        }
    }

    #[test]
    fn the_connection_limit_is_checked_where_it_is_counted() {
        let bus: Arc<Bus<u32>> = Bus::new(1);
        let first = bus
            .subscribe_within(UserId::new(1), [0; 32], 2)
            .expect("first");
        let _second = bus
            .subscribe_within(UserId::new(1), [0; 32], 2)
            .expect("second");
        assert_eq!(
            bus.subscribe_within(UserId::new(1), [0; 32], 2).err(),
            Some(TooManyConnections)
        );
        assert!(
            bus.subscribe_within(UserId::new(2), [0; 32], 2).is_ok(),
            "per user"
        );
        drop(first);
        assert!(bus.subscribe_within(UserId::new(1), [0; 32], 2).is_ok());
    }
}
