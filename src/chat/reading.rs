//! Read markers: where each member has read a room up to, and the unread counts
//! derived from them (`lastMsgId − lastReadMsgId`, as Tinode counts).
//!
//! Markers live in memory, in each room's [`Sequence`], and move only forward. They
//! are saved lazily: a change marks the marker unsaved, and the periodic flush job
//! and the shutdown write the unsaved ones, one insert each (no sled batch)
//! ([`Chat::save_read_markers`]). Sending is the hot path; a send moves its sender's
//! marker without any write to sled. A crash loses at most the marker moves of the
//! last flush interval (and sled's own flush delay): a room shows as unread again.

use std::collections::HashMap;

use super::view::{Event, ReadEvent, ReadState};
use super::{Caller, Chat, Directory, RoomEntry, Sequence};
use crate::error::Result;
use crate::model::{MsgId, RoomId, UserId};
use crate::store::StoreResult;

/// Gives every member of every room its stored marker, at most the room's newest
/// message (a backup or a crash may have kept a marker ahead of the messages).
/// Members without one (a database older than read markers, or a crash before the
/// first save) start with everything read, and that is saved. Markers of users no
/// longer members are dropped from the store.
pub(super) fn load_markers(directory: &mut Directory, stored: Vec<(RoomId, UserId, MsgId)>) {
    let mut stored: HashMap<(RoomId, UserId), MsgId> = stored
        .into_iter()
        .map(|(room, user, marker)| ((room, user), marker))
        .collect();
    for (&room_id, entry) in &mut directory.rooms {
        let members: Vec<UserId> = entry.members.keys().copied().collect();
        let mut sequence = entry.sequence();
        for user in members {
            let marker = match stored.remove(&(room_id, user)) {
                Some(marker) => marker.min(sequence.last),
                None => {
                    sequence.unsaved.insert(user);
                    sequence.last
                }
            };
            sequence.read.insert(user, marker);
        }
    }
    for (room_id, user) in stored.into_keys() {
        if let Some(entry) = directory.rooms.get_mut(&room_id) {
            let mut sequence = entry.sequence();
            sequence.unsaved.insert(user);
        }
    }
}

impl Sequence {
    /// The room as `viewer` has read it: 0 and 0 when they are not a member.
    pub(super) fn read_state(&self, viewer: UserId) -> ReadState {
        match self.read.get(&viewer) {
            Some(&marker) => ReadState {
                last_read_msg_id: marker,
                unread_count: self.last.get().saturating_sub(marker.get()),
                unread_mentions: self.mentions.get(&viewer).map_or(0, |m| m.len() as u64),
            },
            None => ReadState::default(),
        }
    }
}

impl Chat {
    /// Records that `user`'s marker in `room_id` changed, for the next save.
    fn note_unsaved(&self, room_id: RoomId, sequence: &mut Sequence, user: UserId) {
        // The first unsaved marker of a room registers the room; later ones find it
        // registered (or being saved, which drains them too).
        if sequence.unsaved.insert(user) && sequence.unsaved.len() == 1 {
            self.unsaved_read_rooms().insert(room_id);
        }
    }

    /// Moves `user`'s marker forward to `msg_id`; whether it moved. The caller holds
    /// the room's sequence lock and has checked `msg_id <= sequence.last`.
    pub(super) fn advance_read(
        &self,
        room_id: RoomId,
        sequence: &mut Sequence,
        user: UserId,
        msg_id: MsgId,
    ) -> bool {
        let marker = sequence.read.entry(user).or_default();
        if *marker >= msg_id {
            return false;
        }
        *marker = msg_id;
        if let Some(unread) = sequence.mentions.get_mut(&user) {
            *unread = unread.split_off(&msg_id.next());
            if unread.is_empty() {
                sequence.mentions.remove(&user);
            }
        }
        self.note_unsaved(room_id, sequence, user);
        true
    }

    /// Gives a new member a marker at the room's newest message: a newcomer does not
    /// start with the whole history unread.
    pub(super) fn start_reading(&self, room_id: RoomId, entry: &RoomEntry, user: UserId) {
        let mut sequence = entry.sequence();
        let last = sequence.last;
        sequence.read.insert(user, last);
        self.note_unsaved(room_id, &mut sequence, user);
    }

    /// Drops the marker of a member who leaves.
    pub(super) fn stop_reading(&self, room_id: RoomId, entry: &RoomEntry, user: UserId) {
        let mut sequence = entry.sequence();
        sequence.read.remove(&user);
        sequence.mentions.remove(&user);
        self.note_unsaved(room_id, &mut sequence, user);
    }

    /// `PUT /api/chatrooms/{roomId}/read/{msgId}`: moves the caller's marker forward
    /// to `msg_id`, or to the room's newest message if `msg_id` is beyond it. A move
    /// is announced to all of the caller's connections (`read`), so that other tabs
    /// and devices clear their badge; a marker already there changes nothing.
    pub fn mark_read(&self, caller: Caller, room_id: RoomId, msg_id: MsgId) -> Result<()> {
        let directory = self.directory();
        let room = directory.joined(room_id, caller.user_id)?;
        let mut sequence = room.sequence();
        let upto = msg_id.min(sequence.last);
        if self.advance_read(room_id, &mut sequence, caller.user_id, upto) {
            // Published under the lock, so that a user's `read` events arrive in the
            // order their markers moved.
            self.bus.publish(
                [caller.user_id],
                Event::Read(ReadEvent {
                    chat_seq: room_id,
                    last_read_msg_id: upto,
                }),
            );
        }
        Ok(())
    }

    /// Writes every unsaved marker to the store. Called by the periodic flush job and
    /// at shutdown. On failure the markers stay unsaved, for the next call.
    pub async fn save_read_markers(&self) -> StoreResult<usize> {
        let _one_at_a_time = self.read_saving.lock().await;
        let rooms = std::mem::take(&mut *self.unsaved_read_rooms());
        if rooms.is_empty() {
            return Ok(0);
        }
        let mut markers = Vec::new();
        {
            let directory = self.directory();
            for room_id in rooms {
                let Some(entry) = directory.rooms.get(&room_id) else {
                    continue;
                };
                let mut sequence = entry.sequence();
                let unsaved = std::mem::take(&mut sequence.unsaved);
                markers.extend(
                    unsaved
                        .into_iter()
                        .map(|user| (room_id, user, sequence.read.get(&user).copied())),
                );
            }
        }
        let saved = markers.len();
        let keys: Vec<(RoomId, UserId)> = markers.iter().map(|&(r, u, _)| (r, u)).collect();
        if let Err(e) = self.store.save_read_markers(markers).await {
            let directory = self.directory();
            for (room_id, user) in keys {
                if let Some(entry) = directory.rooms.get(&room_id) {
                    self.note_unsaved(room_id, &mut entry.sequence(), user);
                }
            }
            return Err(e);
        }
        Ok(saved)
    }
}
