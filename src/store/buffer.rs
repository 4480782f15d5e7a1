//! The write-behind buffer: changes accepted but not yet written to sled (new
//! messages, edits, deletes, reactions), each with the message as it is after it.
//!
//! Discipline: a flush swaps the pending batch out under the lock and writes it
//! outside the lock; until the write has succeeded the batch stays visible to readers
//! as `in_flight`, so a reader never sees a gap. A failed write keeps `in_flight` and
//! is retried by the next flush, before anything newer: sled receives each room's
//! changes in `seq` order, so what is on disk is always a prefix of each room's log.
//!
//! Readers see the newest state of a message: the pending batch's, else the one in
//! flight, else the disk's. Messages posted since the last flush are all in the
//! buffer, so history below the first of them comes from the disk (overlaid with the
//! buffer's edits, deletes and reactions of older messages).
//!
//! Batches are numbered (generations). A writer learns the generation its change
//! went into and can wait until that generation is durable: that is how `sync`
//! durability acknowledges a change only once it is on disk (group commit: one flush
//! for everything that arrived while the previous flush ran).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::{StoreError, StoreResult};
use crate::model::{Change, ChangeKind, Message, MsgId, RoomId, Seq, UserId};

/// Changes of several rooms, each room's in `seq` order.
#[derive(Default)]
pub struct Batch {
    rooms: HashMap<RoomId, RoomBatch>,
    len: usize,
}

/// One room's part of a batch.
#[derive(Default)]
struct RoomBatch {
    /// In `seq` order.
    changes: Vec<Arc<Change>>,
    /// The newest state of every message changed in this batch.
    messages: BTreeMap<MsgId, Arc<Message>>,
    /// The first message posted in this batch: every later one is in it too.
    first_posted: Option<MsgId>,
}

impl Batch {
    /// Every change, each room's in `seq` order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Change>> {
        self.rooms.values().flat_map(|room| room.changes.iter())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, change: Arc<Change>) {
        let room = self.rooms.entry(change.room_id()).or_default();
        if change.kind == ChangeKind::Posted && room.first_posted.is_none() {
            room.first_posted = Some(change.msg_id());
        }
        room.messages
            .insert(change.msg_id(), Arc::clone(&change.message));
        room.changes.push(change);
        self.len += 1;
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
    pub fn changes(&self) -> usize {
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

    /// Buffers a change; the generation it will be written in.
    pub fn push(&self, change: Arc<Change>) -> Generation {
        let generation = {
            let mut state = self.state();
            state.pending.push(change);
            state.pending_generation
        };
        self.pushed.notify_one();
        generation
    }

    /// The newest generation that holds a change: the batch being filled if it has
    /// any, else the one before it (being written, or already durable). Every
    /// change pushed so far is durable once this generation is; waiting for it never
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

    /// Resolves once a change has been pushed since the last call.
    pub async fn pushed(&self) {
        self.pushed.notified().await
    }

    /// Resolves once `generation` is on disk.
    pub async fn durable(&self, generation: Generation) {
        let mut durable = self.durable.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we wait.
        let _ = durable.wait_for(|d| *d >= generation).await;
    }

    /// The parts of the buffer that hold `room`, newest first: pending, in flight.
    fn parts(state: &State, room: RoomId) -> impl Iterator<Item = &RoomBatch> {
        [
            state.pending.rooms.get(&room),
            state
                .in_flight
                .as_ref()
                .and_then(|(_, b)| b.rooms.get(&room)),
        ]
        .into_iter()
        .flatten()
    }

    /// The newest buffered state of a message, if it changed since the last flush.
    pub fn message(&self, room: RoomId, msg_id: MsgId) -> Option<Arc<Message>> {
        let state = self.state();
        let found = Self::parts(&state, room).find_map(|part| part.messages.get(&msg_id).cloned());
        found
    }

    /// Replaces messages read from the disk with their newer buffered states.
    pub fn overlay(&self, room: RoomId, messages: &mut [Arc<Message>]) {
        let state = self.state();
        for part in Self::parts(&state, room)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            if part.messages.is_empty() {
                continue;
            }
            for message in messages.iter_mut() {
                if let Some(newer) = part.messages.get(&message.msg_id) {
                    *message = Arc::clone(newer);
                }
            }
        }
    }

    /// Up to `count` messages of `room` posted since the last flush with
    /// `msg_id < before`, oldest first, as they are now; and the id below which the
    /// rest of the room's history is on disk.
    pub fn newest_before(
        &self,
        room: RoomId,
        before: MsgId,
        count: usize,
    ) -> (Vec<Arc<Message>>, MsgId) {
        let state = self.state();
        let parts: Vec<&RoomBatch> = Self::parts(&state, room).collect();
        let Some(first_posted) = parts.iter().filter_map(|p| p.first_posted).min() else {
            return (Vec::new(), before);
        };
        // Every message from `first_posted` on is in a part; the pending part's state
        // is the newer.
        let mut newest_first = Vec::new();
        let mut msg_id = before;
        while newest_first.len() < count && msg_id > first_posted {
            let below = parts
                .iter()
                .filter_map(|p| p.messages.range(first_posted..msg_id).next_back())
                .map(|(id, _)| *id)
                .max();
            let Some(id) = below else { break };
            if let Some(message) = parts.iter().find_map(|p| p.messages.get(&id)) {
                newest_first.push(Arc::clone(message));
            }
            msg_id = id;
        }
        newest_first.reverse();
        (newest_first, before.min(first_posted))
    }

    /// Where the buffered changes that mention `user` are.
    pub fn mentioned(&self, user: UserId) -> Vec<super::MentionKey> {
        let state = self.state();
        let parts = [
            Some(&state.pending),
            state.in_flight.as_ref().map(|(_, b)| &**b),
        ];
        parts
            .into_iter()
            .flatten()
            .flat_map(|batch| batch.iter())
            .filter(|change| change.mentioned.contains(&user))
            .map(|change| super::MentionKey {
                created_at: change.message.created_at,
                room_id: change.message.room_id,
                msg_id: change.message.msg_id,
            })
            .collect()
    }

    /// Up to `count` buffered changes of `room` with `seq > after`, in order; and the
    /// first buffered `seq` of the room (changes before it are on disk).
    pub fn changes_after(
        &self,
        room: RoomId,
        after: Seq,
        count: usize,
    ) -> (Vec<Arc<Change>>, Option<Seq>) {
        let state = self.state();
        let mut parts: Vec<&RoomBatch> = Self::parts(&state, room).collect();
        // Oldest first: in flight, then pending.
        parts.reverse();
        let first = parts.iter().find_map(|p| p.changes.first()).map(|c| c.seq);
        let changes = parts
            .iter()
            .flat_map(|p| {
                let start = p.changes.partition_point(|c| c.seq <= after);
                p.changes[start..].iter()
            })
            .take(count)
            .cloned()
            .collect();
        (changes, first)
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
    use crate::store::test_message;

    fn posted(room_id: u64, msg_id: u64) -> Arc<Change> {
        change(room_id, msg_id, msg_id, ChangeKind::Posted, "m")
    }

    fn change(room_id: u64, msg_id: u64, seq: u64, kind: ChangeKind, text: &str) -> Arc<Change> {
        Arc::new(Change {
            seq: Seq::new(seq),
            kind,
            message: Arc::new(test_message(
                room_id,
                msg_id,
                msg_id,
                &format!("{text}{msg_id}"),
            )),
            mentioned: Vec::new(),
            before: None,
        })
    }

    fn ids(messages: &[Arc<Message>]) -> Vec<u64> {
        messages.iter().map(|m| m.msg_id.get()).collect()
    }

    fn room(id: u64) -> RoomId {
        RoomId::new(id)
    }

    #[tokio::test]
    async fn readers_see_pending_and_in_flight_in_order() {
        let buffer = WriteBehind::default();
        for id in 5..=7 {
            assert_eq!(buffer.push(posted(1, id)), 1);
        }
        buffer.push(posted(2, 1));
        // A failing write leaves 5..=7 in flight; 8 and 9 arrive after it.
        let failed = buffer
            .flush(|_| Err(StoreError::NotOurs("disk full".into())))
            .await;
        assert!(failed.is_err());
        assert!(buffer.is_failing());
        assert_eq!(buffer.push(posted(1, 8)), 2);
        assert_eq!(buffer.newest_generation(), 2);
        buffer.push(posted(1, 9));
        assert_eq!(buffer.len(), 6);

        let (page, disk_before) = buffer.newest_before(room(1), MsgId::MAX, 10);
        assert_eq!(ids(&page), [5, 6, 7, 8, 9]);
        assert_eq!(disk_before, MsgId::new(5));
        let (page, _) = buffer.newest_before(room(1), MsgId::new(9), 2);
        assert_eq!(ids(&page), [7, 8]);
        let (page, disk_before) = buffer.newest_before(room(1), MsgId::new(4), 2);
        assert!(page.is_empty());
        assert_eq!(disk_before, MsgId::new(4));

        // The retry writes the failed batch first, then the newer one.
        let mut written = Vec::new();
        for generation in 1..=2 {
            let report = buffer.flush(|_| Ok(())).await.expect("flush");
            let batch = report.batch.expect("a batch");
            let mut ids: Vec<_> = batch
                .iter()
                .map(|c| (c.room_id().get(), c.msg_id().get()))
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

    #[tokio::test]
    async fn changes_of_older_messages_overlay_the_disk() {
        let buffer = WriteBehind::default();
        // Message 3 is on disk; it is edited, then 10 is posted; 3 is edited again.
        buffer.push(change(1, 3, 20, ChangeKind::Edited, "first edit "));
        let _ = buffer
            .flush(|_| Err(StoreError::NotOurs("stuck".into())))
            .await;
        buffer.push(change(1, 10, 21, ChangeKind::Posted, "new "));
        buffer.push(change(1, 3, 22, ChangeKind::Edited, "second edit "));

        let (page, disk_before) = buffer.newest_before(room(1), MsgId::MAX, 5);
        assert_eq!(
            ids(&page),
            [10],
            "only posted messages come from the buffer"
        );
        assert_eq!(disk_before, MsgId::new(10));
        let text = |m: &Arc<Message>| m.content().map(|c| c.to_string());
        let newest = buffer.message(room(1), MsgId::new(3)).expect("buffered");
        assert_eq!(text(&newest).as_deref(), Some("second edit 3"));

        let mut from_disk = vec![change(1, 2, 2, ChangeKind::Posted, "disk ").message.clone()];
        from_disk.push(change(1, 3, 3, ChangeKind::Posted, "disk ").message.clone());
        buffer.overlay(room(1), &mut from_disk);
        assert_eq!(text(&from_disk[0]).as_deref(), Some("disk 2"));
        assert_eq!(text(&from_disk[1]).as_deref(), Some("second edit 3"));

        let (changes, first) = buffer.changes_after(room(1), Seq::new(20), 10);
        let seqs: Vec<u64> = changes.iter().map(|c| c.seq.get()).collect();
        assert_eq!(seqs, [21, 22]);
        assert_eq!(first, Some(Seq::new(20)));
        let (changes, _) = buffer.changes_after(room(1), Seq::ZERO, 2);
        assert_eq!(changes.len(), 2);
        assert_eq!(buffer.changes_after(room(2), Seq::ZERO, 9).1, None);
    }
}
