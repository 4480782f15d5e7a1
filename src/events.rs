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
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

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

/// A connection's end of the bus: its queue of deliveries, and where the bus asks
/// it to close. One allocation per connection (about 150 bytes): tokio's `mpsc`
/// channel took 796 bytes for an idle connection (a cache-padded channel and a
/// first block of 32 slots), the largest part of an idle connection after the
/// socket's read buffer (BENCHMARKS.md, *Idle connections*).
pub struct Inbox<E> {
    state: Mutex<InboxState<E>>,
    /// The session, waiting for a delivery (one consumer).
    delivered: AtomicWaker,
    /// Everyone waiting for a close request (a transport and its session).
    closing: Notify,
}

struct InboxState<E> {
    queue: VecDeque<Arc<Delivery<E>>>,
    capacity: usize,
    reason: Option<CloseReason>,
}

impl<E> InboxState<E> {
    fn pop(&mut self) -> Option<Arc<Delivery<E>>> {
        let next = self.queue.pop_front();
        if self.queue.is_empty() && self.queue.capacity() > KEPT_QUEUE_CAPACITY {
            self.queue = VecDeque::new();
        }
        next
    }
}

/// A queue emptied with more room than this gives its memory back (after a burst,
/// an idle connection holds no more than a fresh one).
const KEPT_QUEUE_CAPACITY: usize = 16;

impl<E> Inbox<E> {
    fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(InboxState {
                queue: VecDeque::new(),
                capacity,
                reason: None,
            }),
            delivered: AtomicWaker::new(),
            closing: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, InboxState<E>> {
        // Every critical section is a push, a pop or a store: a poisoned lock still
        // holds a good queue.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `delivery`, or asks the connection to close when its queue is full.
    /// Never waits.
    fn offer(&self, delivery: &Arc<Delivery<E>>) {
        {
            let mut state = self.state();
            if state.reason.is_some() {
                return;
            }
            if state.queue.len() >= state.capacity {
                drop(state);
                self.close(CloseReason::SlowConsumer);
                return;
            }
            state.queue.push_back(Arc::clone(delivery));
        }
        self.delivered.wake();
    }

    fn close(&self, reason: CloseReason) {
        let mut state = self.state();
        if state.reason.is_none() {
            state.reason = Some(reason);
            drop(state);
            // Every waiter: a transport may wait here while its session waits in
            // `next`.
            self.closing.notify_waiters();
            self.delivered.wake();
        }
    }

    /// The oldest queued delivery, if any.
    pub fn try_next(&self) -> Option<Arc<Delivery<E>>> {
        self.state().pop()
    }

    /// Resolves with the oldest queued delivery, or with the reason once the bus
    /// wants the connection closed (which wins over what is queued). Cancel-safe:
    /// nothing is taken until it resolves. For one consumer (the connection's
    /// session); waiting here costs no allocation.
    pub async fn next(&self) -> Result<Arc<Delivery<E>>, CloseReason> {
        std::future::poll_fn(|cx| {
            // Registered before the check, so that an offer or a close in between
            // wakes it.
            self.delivered.register(cx.waker());
            let mut state = self.state();
            if let Some(reason) = state.reason {
                return Poll::Ready(Err(reason));
            }
            match state.pop() {
                Some(delivery) => Poll::Ready(Ok(delivery)),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Why the bus wants this connection closed, if it does.
    pub fn reason(&self) -> Option<CloseReason> {
        self.state().reason
    }

    /// Resolves when the bus wants this connection closed, with the reason.
    pub async fn closed(&self) -> CloseReason {
        loop {
            // Registered before the check, so that a close in between wakes it.
            let notified = self.closing.notified();
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
    inbox: Arc<Inbox<E>>,
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
    pub inbox: Arc<Inbox<E>>,
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
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let inbox = Arc::new(Inbox::new(self.queue));
        {
            let mut map = self.write();
            // Most users have one connection: room for one (a `Vec`'s first push
            // makes room for four, 144 bytes more per idle connection).
            let list = map.entry(user).or_insert_with(|| Vec::with_capacity(1));
            if list.len() >= max {
                return Err(TooManyConnections);
            }
            list.push(Subscriber {
                id,
                token_hash,
                inbox: Arc::clone(&inbox),
            });
        }
        Ok(Subscription {
            bus: Arc::clone(self),
            user,
            id,
            inbox,
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
        subscriber.inbox.offer(delivery);
    }

    /// Closes the connections of `user` opened with the token of this hash.
    pub fn close_token(&self, user: UserId, token_hash: &[u8; 32], reason: CloseReason) {
        for subscriber in self.read().get(&user).into_iter().flatten() {
            if &subscriber.token_hash == token_hash {
                subscriber.inbox.close(reason);
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
        let slow = subscribe(&bus, 1, [0; 32]);
        let fast = subscribe(&bus, 2, [0; 32]);
        for n in 0..3 {
            bus.publish([UserId::new(1), UserId::new(2)], n);
            let got = fast.inbox.next().await.expect("delivered");
            assert_eq!(got.event, n);
        }
        assert_eq!(slow.inbox.closed().await, CloseReason::SlowConsumer);
        assert_eq!(
            slow.inbox.next().await.err(),
            Some(CloseReason::SlowConsumer)
        );
        assert_eq!(slow.inbox.try_next().map(|d| d.event), Some(0));
        assert_eq!(bus.counts(), (2, 2));
        drop(slow);
        assert_eq!(bus.counts(), (1, 1));
    }

    #[tokio::test]
    async fn one_encoding_is_shared_by_all_recipients() {
        let bus: Arc<Bus<&'static str>> = Bus::new(4);
        let a = subscribe(&bus, 1, [0; 32]);
        let b = subscribe(&bus, 1, [1; 32]);
        bus.publish([UserId::new(1)], "hi");
        let (da, db) = (
            a.inbox.next().await.expect("a"),
            b.inbox.next().await.expect("b"),
        );
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
