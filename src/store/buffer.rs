//! The write-behind buffer: messages accepted but not yet written to sled.
//!
//! Discipline: a flush swaps the pending batch out under the lock and writes it
//! outside the lock; until the write has succeeded the batch stays visible to readers
//! as `in_flight`, so a reader never sees a gap. A failed write keeps `in_flight` and
//! is retried by the next flush, before anything newer: sled receives each room's
//! messages in `msg_id` order, so what is on disk is always a prefix of each room.
//!
//! Batches are numbered (generations). A writer learns the generation its message
//! went into and can wait until that generation is durable: that is how `sync`
//! durability acknowledges a message only once it is on disk (group commit: one flush
//! for everything that arrived while the previous flush ran).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::{StoreError, StoreResult};
use crate::model::{Message, MsgId, RoomId};

/// Messages of several rooms, each room's in `msg_id` order.
#[derive(Default)]
pub struct Batch {
    rooms: HashMap<RoomId, Vec<Arc<Message>>>,
    len: usize,
}

impl Batch {
    /// Every message, each room's in `msg_id` order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Message>> {
        self.rooms.values().flatten()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The number of a batch. Generation `g` holds the messages pushed while it was the
/// pending one; generations become durable in order.
pub type Generation = u64;

struct State {
    /// Accepted since the last flush began.
    pending: Batch,
    /// The generation `pending` will be written as.
    pending_generation: Generation,
    /// Being written (or failed to be written) by a flush.
    in_flight: Option<(Generation, Arc<Batch>)>,
}

pub struct WriteBehind {
    /// A std mutex: it is never held across an `.await`, and every critical section
    /// is a few pointer moves.
    state: Mutex<State>,
    /// Serializes flushes, so that a slow one is not overtaken by the next.
    flushing: tokio::sync::Mutex<()>,
    /// The newest generation known to be on disk.
    durable: watch::Sender<Generation>,
    /// Whether the last flush failed (cleared by the next success).
    failing: AtomicBool,
    /// Woken on every push, for a flusher that writes as soon as there is work.
    pushed: Notify,
}

impl Default for WriteBehind {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                pending: Batch::default(),
                pending_generation: 1,
                in_flight: None,
            }),
            flushing: tokio::sync::Mutex::new(()),
            durable: watch::Sender::new(0),
            failing: AtomicBool::new(false),
            pushed: Notify::new(),
        }
    }
}

/// What one flush did.
#[derive(Default, Clone)]
pub struct FlushReport {
    /// The batch now on disk, if there was one.
    pub batch: Option<Arc<Batch>>,
    pub duration: Duration,
}

impl FlushReport {
    pub fn messages(&self) -> usize {
        self.batch.as_ref().map_or(0, |b| b.len)
    }
}

impl WriteBehind {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only pointer moves half done, and
        // none of them can panic; the data stays consistent, so poisoning is ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps flushes from starting until the guard is dropped. Blocking: for use off
    /// the async threads (a backup).
    pub fn pause_flushes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.flushing.blocking_lock()
    }

    /// Buffers a message; the generation it will be written in.
    pub fn push(&self, message: Arc<Message>) -> Generation {
        let generation = {
            let mut state = self.state();
            state.pending.len += 1;
            state
                .pending
                .rooms
                .entry(message.room_id)
                .or_default()
                .push(message);
            state.pending_generation
        };
        self.pushed.notify_one();
        generation
    }

    /// The newest generation that holds a message: the batch being filled if it has
    /// any, else the one before it (being written, or already durable). Every
    /// message pushed so far is durable once this generation is; waiting for it never
    /// waits for a batch that no flush will write.
    pub fn newest_generation(&self) -> Generation {
        let state = self.state();
        if state.pending.len > 0 {
            state.pending_generation
        } else {
            state.pending_generation - 1
        }
    }

    pub fn len(&self) -> usize {
        let state = self.state();
        state.pending.len + state.in_flight.as_ref().map_or(0, |(_, b)| b.len)
    }

    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Resolves once a message has been pushed since the last call.
    pub async fn pushed(&self) {
        self.pushed.notified().await
    }

    /// Resolves once `generation` is on disk.
    pub async fn durable(&self, generation: Generation) {
        let mut durable = self.durable.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we wait.
        let _ = durable.wait_for(|d| *d >= generation).await;
    }

    /// Up to `count` buffered messages of `room` with `msg_id < before`, oldest first,
    /// and the id below which the rest of the room's history is on disk.
    pub fn newest_before(
        &self,
        room: RoomId,
        before: MsgId,
        count: usize,
    ) -> (Vec<Arc<Message>>, MsgId) {
        let state = self.state();
        let mut newest_first = Vec::new();
        let mut disk_before = before;
        let parts = [
            state.pending.rooms.get(&room),
            state
                .in_flight
                .as_ref()
                .and_then(|(_, b)| b.rooms.get(&room)),
        ];
        for part in parts.into_iter().flatten() {
            if let Some(first) = part.first() {
                disk_before = disk_before.min(first.msg_id);
            }
            let end = part.partition_point(|m| m.msg_id < before);
            let room_left = count - newest_first.len();
            newest_first.extend(part[..end].iter().rev().take(room_left).cloned());
        }
        newest_first.reverse();
        (newest_first, disk_before)
    }

    /// Writes the oldest batch with `write` on a blocking thread. On failure the
    /// batch stays in memory, visible, and is retried first next time.
    pub async fn flush<F>(&self, write: F) -> StoreResult<FlushReport>
    where
        F: FnOnce(&Batch) -> StoreResult<()> + Send + 'static,
    {
        let _one_at_a_time = self.flushing.lock().await;
        let (generation, batch) = {
            let mut state = self.state();
            if state.in_flight.is_none() {
                if state.pending.len == 0 {
                    return Ok(FlushReport::default());
                }
                let batch = Arc::new(std::mem::take(&mut state.pending));
                state.in_flight = Some((state.pending_generation, batch));
                state.pending_generation += 1;
            }
            match &state.in_flight {
                Some((generation, batch)) => (*generation, Arc::clone(batch)),
                None => return Ok(FlushReport::default()),
            }
        };
        let started = Instant::now();
        let writing = Arc::clone(&batch);
        let outcome = tokio::task::spawn_blocking(move || write(&writing))
            .await
            .map_err(StoreError::from)
            .and_then(|written| written);
        if let Err(e) = outcome {
            self.failing.store(true, Ordering::Relaxed);
            return Err(e);
        }
        self.failing.store(false, Ordering::Relaxed);
        self.state().in_flight = None;
        self.durable.send_replace(generation);
        Ok(FlushReport {
            batch: Some(batch),
            duration: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(room_id: u64, msg_id: u64) -> Arc<Message> {
        Arc::new(Message {
            room_id: RoomId::new(room_id),
            msg_id: MsgId::new(msg_id),
            sender_id: crate::model::UserId::new(1),
            content: format!("m{msg_id}").into(),
            created_at: 0,
            client_msg_id: None,
        })
    }

    fn ids(messages: &[Arc<Message>]) -> Vec<u64> {
        messages.iter().map(|m| m.msg_id.get()).collect()
    }

    #[tokio::test]
    async fn readers_see_pending_and_in_flight_in_order() {
        let buffer = WriteBehind::default();
        for id in 5..=7 {
            assert_eq!(buffer.push(message(1, id)), 1);
        }
        buffer.push(message(2, 1));
        // A failing write leaves 5..=7 in flight; 8 and 9 arrive after it.
        let failed = buffer
            .flush(|_| Err(StoreError::NotOurs("disk full".into())))
            .await;
        assert!(failed.is_err());
        assert!(buffer.is_failing());
        assert_eq!(buffer.push(message(1, 8)), 2);
        assert_eq!(buffer.newest_generation(), 2);
        buffer.push(message(1, 9));
        assert_eq!(buffer.len(), 6);

        let (page, disk_before) = buffer.newest_before(RoomId::new(1), MsgId::MAX, 10);
        assert_eq!(ids(&page), [5, 6, 7, 8, 9]);
        assert_eq!(disk_before, MsgId::new(5));
        let (page, _) = buffer.newest_before(RoomId::new(1), MsgId::new(9), 2);
        assert_eq!(ids(&page), [7, 8]);
        let (page, disk_before) = buffer.newest_before(RoomId::new(1), MsgId::new(4), 2);
        assert!(page.is_empty());
        assert_eq!(disk_before, MsgId::new(4));

        // The retry writes the failed batch first, then the newer one.
        let mut written = Vec::new();
        for generation in 1..=2 {
            let report = buffer.flush(|_| Ok(())).await.expect("flush");
            let batch = report.batch.expect("a batch");
            let mut ids: Vec<_> = batch
                .iter()
                .map(|m| (m.room_id.get(), m.msg_id.get()))
                .collect();
            ids.sort();
            written.push(ids);
            // Waiting for a durable generation returns at once.
            buffer.durable(generation).await;
        }
        assert_eq!(written[0], [(1, 5), (1, 6), (1, 7), (2, 1)]);
        // Nothing is pending: the newest generation is the one just written.
        assert_eq!(buffer.newest_generation(), 2);
        assert_eq!(written[1], [(1, 8), (1, 9)]);
        assert_eq!(buffer.len(), 0);
        assert!(!buffer.is_failing());
    }
}
