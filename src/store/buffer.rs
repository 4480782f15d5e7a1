//! The write-behind buffer: messages accepted but not yet written to sled.
//!
//! Discipline: a flush swaps the pending batch out under the lock and writes it
//! outside the lock; until the write has succeeded the batch stays visible to readers
//! as `in_flight`, so a reader never sees a gap. A failed write keeps `in_flight` and
//! is retried by the next flush, before anything newer: sled receives each room's
//! messages in `msg_id` order, so what is on disk is always a prefix of each room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::records::{Message, MsgId, RoomId};
use super::{StoreError, StoreResult};

/// Messages of several rooms, each room's in `msg_id` order.
#[derive(Default)]
pub struct Batch {
    rooms: HashMap<RoomId, Vec<Arc<Message>>>,
    len: usize,
}

impl Batch {
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Message>> {
        self.rooms.values().flatten()
    }
}

#[derive(Default)]
struct State {
    /// Accepted since the last flush began.
    pending: Batch,
    /// Being written (or failed to be written) by a flush.
    in_flight: Option<Arc<Batch>>,
}

#[derive(Default)]
pub struct WriteBehind {
    /// A std mutex: it is never held across an `.await`, and every critical section
    /// is a few pointer moves.
    state: Mutex<State>,
    /// Serializes flushes, so that a slow one is not overtaken by the next tick.
    flushing: tokio::sync::Mutex<()>,
}

/// What one flush did.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlushReport {
    pub messages: usize,
    pub duration: Duration,
}

impl WriteBehind {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only pointer moves half done, and
        // none of them can panic; the data stays consistent, so poisoning is ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn push(&self, message: Arc<Message>) {
        let mut state = self.state();
        state.pending.len += 1;
        state
            .pending
            .rooms
            .entry(message.room_id)
            .or_default()
            .push(message);
    }

    pub fn len(&self) -> usize {
        let state = self.state();
        state.pending.len + state.in_flight.as_ref().map_or(0, |b| b.len)
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
            state.in_flight.as_ref().and_then(|b| b.rooms.get(&room)),
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
        let batch = {
            let mut state = self.state();
            if state.in_flight.is_none() {
                if state.pending.len == 0 {
                    return Ok(FlushReport::default());
                }
                state.in_flight = Some(Arc::new(std::mem::take(&mut state.pending)));
            }
            match &state.in_flight {
                Some(batch) => Arc::clone(batch),
                None => return Ok(FlushReport::default()),
            }
        };
        let started = Instant::now();
        let writing = Arc::clone(&batch);
        let outcome = tokio::task::spawn_blocking(move || write(&writing))
            .await
            .map_err(StoreError::from)
            .and_then(|written| written);
        outcome?;
        self.state().in_flight = None;
        Ok(FlushReport {
            messages: batch.len,
            duration: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(room_id: RoomId, msg_id: MsgId) -> Arc<Message> {
        Arc::new(Message {
            room_id,
            msg_id,
            sender_id: 1,
            content: format!("m{msg_id}"),
            created_at: 0,
            client_msg_id: None,
        })
    }

    fn ids(messages: &[Arc<Message>]) -> Vec<MsgId> {
        messages.iter().map(|m| m.msg_id).collect()
    }

    #[tokio::test]
    async fn readers_see_pending_and_in_flight_in_order() {
        let buffer = WriteBehind::default();
        for id in 5..=7 {
            buffer.push(message(1, id));
        }
        buffer.push(message(2, 1));
        // A failing write leaves 5..=7 in flight; 8 and 9 arrive after it.
        let failed = buffer
            .flush(|_| Err(StoreError::NotOurs("disk full".into())))
            .await;
        assert!(failed.is_err());
        buffer.push(message(1, 8));
        buffer.push(message(1, 9));
        assert_eq!(buffer.len(), 6);

        let (page, disk_before) = buffer.newest_before(1, MsgId::MAX, 10);
        assert_eq!(ids(&page), [5, 6, 7, 8, 9]);
        assert_eq!(disk_before, 5);
        let (page, _) = buffer.newest_before(1, 9, 2);
        assert_eq!(ids(&page), [7, 8]);
        let (page, disk_before) = buffer.newest_before(1, 4, 2);
        assert!(page.is_empty());
        assert_eq!(disk_before, 4);

        // The retry writes the failed batch first, then the newer one.
        let mut written = Vec::new();
        for _ in 0..2 {
            let (tx, rx) = std::sync::mpsc::channel();
            buffer
                .flush(move |batch| {
                    let mut ids: Vec<_> = batch.iter().map(|m| (m.room_id, m.msg_id)).collect();
                    ids.sort();
                    tx.send(ids).ok();
                    Ok(())
                })
                .await
                .expect("flush");
            written.push(rx.recv().expect("written"));
        }
        assert_eq!(written[0], [(1, 5), (1, 6), (1, 7), (2, 1)]);
        assert_eq!(written[1], [(1, 8), (1, 9)]);
        assert_eq!(buffer.len(), 0);
    }
}
