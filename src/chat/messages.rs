//! Messages: sending (from the gateway or HTTP), idempotent resends, reading
//! history, replaying what a reconnecting client missed, and the flush that makes
//! changes durable (and, in `sync` mode, delivers them).
//!
//! Every change to a room's messages (a new message here; edits, deletes and
//! reactions in `changes.rs`) is numbered in the room's log (`seq`), buffered, and
//! published under the room's sequence lock, so members receive them in order and
//! a resume replays them in the same order.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use super::moderation::{check_direct_not_blocked, check_not_muted};
use super::view::{DeleteEvent, EditEvent, Event, MessageView, ReactionEvent};
use super::{lock_sequence, Caller, Chat, Directory, RoomEntry, Sequence};
use crate::config::Durability;
use crate::error::{Error, Result};
use crate::model::*;
use crate::store::{Batch, FlushPriority, FlushReport, Generation, StoreResult};

/// A client's own id for a message, echoed back with it.
pub const CLIENT_MSG_ID_MAX_BYTES: usize = 64;
/// Ids and change numbers reserved per room at a time; each reservation costs one
/// sled flush.
const ID_BLOCK: u64 = 1000;
/// How long a client id is remembered, for resends after a reconnect or a restart.
pub const CLIENT_MSG_ID_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How long a `sync` send waits for its batch to reach the disk before it answers
/// that storage is unavailable.
const SYNC_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a history page ends: before a given message, or at the newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    Newest,
    Msg(MsgId),
}

/// An accepted message. `duplicate` when it was a resend of one already stored
/// under the same `clientMsgId`: nothing new was stored or delivered.
pub struct Sent {
    pub view: MessageView,
    pub duplicate: bool,
}

/// A message accepted, maybe still on its way to the disk.
pub struct Accepted {
    pub sent: Sent,
    /// In `sync` mode, the batch to wait for before acknowledging.
    generation: Option<Generation>,
}

impl Accepted {
    /// Whether [`Chat::stored`] has anything to wait for.
    pub fn waits(&self) -> bool {
        self.generation.is_some()
    }
}

/// A message already stored under a client's id.
struct Original {
    room_id: RoomId,
    message: Arc<Message>,
}

/// Where a reconnecting client is in a room: the last message it has (the
/// two-part resume, `ROOM:LASTMSGID`: new messages only), or the last change
/// (`ROOM:LASTMSGID:LASTSEQ`: every change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeFrom {
    Msg(MsgId),
    Seq(Seq),
}

/// What a reconnecting client missed in a room.
pub enum Replay {
    /// Every message (or change) after the client's last one, in order, as events;
    /// and how far the replay read, so that live events it already covered are
    /// not sent twice.
    Events {
        events: Vec<Event>,
        upto: ResumeFrom,
    },
    /// More than `limits.replay_max` (or than the replay may still send): reload
    /// history instead.
    TooFar { newest: MsgId, last_seq: Seq },
}

type PendingClientIds = HashMap<UserId, HashMap<String, MessageRef>>;

impl Chat {
    fn pending_client_ids(&self) -> MutexGuard<'_, PendingClientIds> {
        self.pending_client_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// In `sync` durability, refuses new writes while the disk fails: the caller
    /// would wait for a store that cannot come (`buffered` keeps them in memory).
    pub(super) fn check_storage_accepts(&self, what: &str) -> Result<()> {
        if self.settings.durability == Durability::Sync && self.store.flush_failing() {
            return Err(Error::Unavailable {
                code: "storage_unavailable",
                message: format!("{what} cannot be stored right now; try again later"),
            });
        }
        Ok(())
    }

    /// Takes a token of the caller's message rate (messages, edits, reactions and
    /// deletes share it).
    pub(super) fn take_message_token(&self, caller: Caller) -> Result<()> {
        self.limits
            .messages
            .take(&caller.user_id)
            .map_err(|refusal| {
                let wait = refusal.retry_after();
                Error::RateLimited {
                    code: "rate_limited",
                    message: format!(
                        "too many messages: at most {} per second; retry in {} ms",
                        self.settings.limits.messages_per_second,
                        wait.as_millis()
                    ),
                    retry_after_ms: wait.as_millis() as u64,
                }
            })
    }

    pub(super) fn check_content(&self, content: &str, client_msg_id: Option<&str>) -> Result<()> {
        if content.is_empty() {
            return Err(Error::bad_request(
                "empty_message",
                "content must not be empty",
            ));
        }
        let max = self.settings.limits.max_message_bytes;
        if content.len() > max {
            return Err(Error::TooLarge {
                code: "message_too_large",
                message: format!("content is {} bytes; the limit is {max}", content.len()),
            });
        }
        if client_msg_id.is_some_and(|id| id.is_empty() || id.len() > CLIENT_MSG_ID_MAX_BYTES) {
            return Err(Error::bad_request(
                "invalid_client_msg_id",
                format!("clientMsgId is 1 to {CLIENT_MSG_ID_MAX_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    /// The room's next change number. Reserves the next block of change numbers and
    /// message ids, durably, on a blocking thread once half of either block is used
    /// (see [`Chat::reserve_ahead`]); waits for the disk here only when a block ran
    /// out before that reservation was done. The caller holds the sequence lock of
    /// `room` and buffers the change before it lets go of it.
    pub(super) fn next_seq(
        &self,
        room_id: RoomId,
        room: &RoomEntry,
        sequence: &mut Sequence,
    ) -> Result<Seq> {
        if sequence.last >= sequence.reserved || sequence.last_seq >= sequence.reserved_seq {
            let msg_upto = MsgId::new(sequence.last.get() + ID_BLOCK);
            let seq_upto = Seq::new(sequence.last_seq.get() + ID_BLOCK);
            self.store.reserve(room_id, msg_upto, seq_upto)?;
            sequence.reserved = msg_upto;
            sequence.reserved_seq = seq_upto;
        } else if !sequence.reserving
            && (sequence.reserved.get() - sequence.last.get() <= ID_BLOCK / 2
                || sequence.reserved_seq.get() - sequence.last_seq.get() <= ID_BLOCK / 2)
        {
            let msg_upto = MsgId::new(sequence.reserved.get().max(sequence.last.get()) + ID_BLOCK);
            let seq_upto = Seq::new(sequence.reserved_seq.get() + ID_BLOCK);
            sequence.reserving = self.reserve_ahead(room_id, room, msg_upto, seq_upto);
        }
        sequence.last_seq = sequence.last_seq.next();
        Ok(sequence.last_seq)
    }

    /// Starts reserving a new room's first block of ids and change numbers off the
    /// async threads. Without it the room's first message found nothing reserved and
    /// reserved in line: a disk flush on the runtime's worker, under the room's lock,
    /// for every new room (a team's day makes thousands).
    pub(super) fn reserve_first_block(&self, room_id: RoomId, room: &RoomEntry) {
        let mut sequence = room.sequence();
        if !sequence.reserving && sequence.reserved.get() == 0 {
            sequence.reserving =
                self.reserve_ahead(room_id, room, MsgId::new(ID_BLOCK), Seq::new(ID_BLOCK));
        }
    }

    /// Reserves a room's ids and change numbers up to `msg_upto` and `seq_upto` on a
    /// blocking thread, while half a block is still left: a reservation waits for a
    /// disk flush, which must not hold the room's lock (and the async thread) for
    /// milliseconds. Called with the room's sequence locked; whether a reservation
    /// was started (outside a runtime, never in the server, the block's end is
    /// reserved in line instead).
    fn reserve_ahead(
        &self,
        room_id: RoomId,
        room: &RoomEntry,
        msg_upto: MsgId,
        seq_upto: Seq,
    ) -> bool {
        let sequence = Arc::clone(&room.sequence);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let store = self.store.clone();
        runtime.spawn_blocking(move || {
            let reserved = store.reserve(room_id, msg_upto, seq_upto);
            let mut sequence = lock_sequence(&sequence);
            sequence.reserving = false;
            match reserved {
                // Reservations only ever raise the stored values, so a reservation in
                // line that finished meanwhile is not undone by this one.
                Ok(()) => {
                    sequence.reserved = sequence.reserved.max(msg_upto);
                    sequence.reserved_seq = sequence.reserved_seq.max(seq_upto);
                }
                Err(e) => tracing::warn!(
                    room_id = room_id.get(),
                    error = %e,
                    "reserving message ids failed; the room's next block will be reserved in line"
                ),
            }
        });
        true
    }

    /// Accepts a message from a member and, in `sync` mode, waits until it is stored
    /// (and so delivered). See [`Chat::accept`] and [`Chat::stored`].
    pub async fn send(
        &self,
        caller: Caller,
        room_id: RoomId,
        content: String,
        client_msg_id: Option<String>,
        attachments: Vec<FileId>,
    ) -> Result<Sent> {
        let accepted = self.accept(caller, room_id, content, client_msg_id, attachments)?;
        self.stored(accepted).await
    }

    /// Accepts a message from a member: numbers it, buffers it and, in `buffered`
    /// mode, delivers it to the room, the sender included. In `sync` mode the flush
    /// that stores it delivers it; [`Chat::stored`] waits for that. Separate from the
    /// wait so that a connection can accept its next frames, in order, while earlier
    /// ones wait for the disk: one flush then covers them all.
    pub fn accept(
        &self,
        caller: Caller,
        room_id: RoomId,
        content: String,
        client_msg_id: Option<String>,
        attachments: Vec<FileId>,
    ) -> Result<Accepted> {
        if attachments.is_empty() || !content.is_empty() {
            self.check_content(&content, client_msg_id.as_deref())?;
        } else {
            // Files alone are a message too (a pasted screenshot).
            self.check_content(" ", client_msg_id.as_deref())?;
        }
        let attachments = self.attachments_for(room_id, caller.user_id, &attachments)?;
        let sync = self.settings.durability == Durability::Sync;
        self.check_storage_accepts("messages")?;
        self.take_message_token(caller)?;
        let sender_name = self.username(caller.user_id);

        let directory = self.directory();
        let room = directory.joined(room_id, caller.user_id)?;
        check_not_muted(room, caller.user_id)?;
        check_direct_not_blocked(&directory, room, caller.user_id)?;
        let mut sequence = room.sequence();
        // Held from the lookup to the insert, so that two resends racing in
        // different rooms cannot both store the message.
        let mut client_ids = client_msg_id.as_ref().map(|_| self.pending_client_ids());
        if let (Some(ids), Some(client_id)) = (&client_ids, &client_msg_id) {
            if let Some(original) = self.original_of(ids, caller.user_id, client_id)? {
                if original.room_id != room_id {
                    return Err(Error::conflict(
                        "client_msg_id_reused",
                        format!(
                            "clientMsgId {client_id:?} was already used in room {}",
                            original.room_id
                        ),
                    ));
                }
                // In `sync` mode the original may still wait for the disk: answer
                // once the newest batch with a message, which holds it or comes
                // after it, is stored. (Not the batch being filled: when it is
                // empty no flush writes it, and the resend was never answered.)
                return Ok(Accepted {
                    sent: Sent {
                        view: MessageView {
                            message: original.message,
                            sender_name,
                        },
                        duplicate: true,
                    },
                    generation: sync.then(|| self.store.newest_generation()),
                });
            }
        }
        let seq = self.next_seq(room_id, room, &mut sequence)?;
        sequence.last = sequence.last.next();
        let msg_id = sequence.last;
        // Sending marks the room read up to one's own message (in memory; saved
        // lazily with the other markers).
        self.advance_read(room_id, &mut sequence, caller.user_id, msg_id);
        let created_at = now_millis();
        sequence.last_at = Some(created_at);
        let message = Arc::new(Message {
            room_id,
            msg_id,
            seq,
            sender_id: caller.user_id,
            created_at,
            client_msg_id,
            body: Body::Text {
                mentions: self.mentions_in(&directory, room, caller.user_id, &content),
                content: content.into(),
                edited_at: None,
            },
            reactions: Vec::new(),
            attachments,
        });
        let mentioned = self.note_mentions(&directory, room, &mut sequence, None, &message);
        if let (Some(ids), Some(client_id)) = (&mut client_ids, &message.client_msg_id) {
            ids.entry(caller.user_id).or_default().insert(
                client_id.clone(),
                MessageRef {
                    room_id,
                    msg_id: message.msg_id,
                    created_at: message.created_at,
                },
            );
        }
        let generation = self.store.append(Arc::new(Change {
            seq,
            kind: ChangeKind::Posted,
            message: Arc::clone(&message),
            mentioned,
            before: None,
        }));
        let view = MessageView {
            message,
            sender_name,
        };
        if !sync {
            self.bus.publish(
                audience(&directory, room, caller.user_id),
                Event::Chat(view.clone()),
            );
        }
        self.metrics.messages_received.inc();
        Ok(Accepted {
            sent: Sent {
                view,
                duplicate: false,
            },
            generation: sync.then_some(generation),
        })
    }

    /// The message a user already sent under `client_id`, if it was stored (or is
    /// buffered). A reference whose message is missing was written by a flush that a
    /// crash cut short (references go to disk just before their messages): that
    /// message was never stored, and the id is free again.
    fn original_of(
        &self,
        pending: &PendingClientIds,
        user: UserId,
        client_id: &str,
    ) -> Result<Option<Original>> {
        let reference = match pending.get(&user).and_then(|m| m.get(client_id)) {
            Some(reference) => *reference,
            None => match self.store.client_msg_ref(user, client_id)? {
                Some(reference) => reference,
                None => return Ok(None),
            },
        };
        Ok(self
            .store
            .message(reference.room_id, reference.msg_id, true)?
            .filter(|m| m.sender_id == user && m.client_msg_id.as_deref() == Some(client_id))
            .map(|message| Original {
                room_id: reference.room_id,
                message,
            }))
    }

    /// Waits until an accepted message is stored, in `sync` mode; at once otherwise.
    pub async fn stored(&self, accepted: Accepted) -> Result<Sent> {
        if let Some(generation) = accepted.generation {
            self.wait_durable(generation).await?;
        }
        Ok(accepted.sent)
    }

    /// Waits until the batch of `generation` is on disk, at most [`SYNC_ACK_TIMEOUT`].
    pub(super) async fn wait_durable(&self, generation: Generation) -> Result<()> {
        if tokio::time::timeout(SYNC_ACK_TIMEOUT, self.store.durable(generation))
            .await
            .is_err()
        {
            return Err(Error::Unavailable {
                code: "storage_unavailable",
                message: "the change was not stored in time; send it again to learn whether it was (a message with the same clientMsgId)"
                    .into(),
            });
        }
        Ok(())
    }

    /// Makes what was written through to sled (accounts, tokens, rooms, memberships,
    /// moderation, read markers) durable: sled keeps writes in memory until its next
    /// flush, so a kill -9 right after a 201 could otherwise undo a registration or
    /// a join. Cheap when nothing is waiting (sled returns at once). A failure is
    /// logged: the write stays in sled, which keeps trying.
    pub async fn persist_written(&self) {
        if let Err(e) = self.store.flush_db().await {
            tracing::error!(error = %e, "could not make an acknowledged change durable");
        }
    }

    /// Writes the oldest buffered batch to disk. In `sync` mode, delivers its
    /// changes: they are acknowledged and delivered only once stored.
    pub async fn flush(&self) -> StoreResult<FlushReport> {
        self.last_flush_attempt
            .store(now_millis(), Ordering::Relaxed);
        // No one waits for a flush in `buffered` mode: it makes way for the worker.
        let priority = match self.settings.durability {
            Durability::Buffered => FlushPriority::Background,
            Durability::Sync => FlushPriority::Server,
        };
        let report = match self.store.flush_changes(priority).await {
            Ok(report) => report,
            Err(e) => {
                self.metrics.flush_errors.inc();
                return Err(e);
            }
        };
        if let Some(batch) = &report.batch {
            self.metrics.flushes.inc();
            self.metrics
                .flush_seconds
                .observe(report.duration.as_secs_f64());
            self.forget_stored_client_ids(batch);
            if self.settings.durability == Durability::Sync {
                self.deliver(batch);
            }
        }
        Ok(report)
    }

    fn forget_stored_client_ids(&self, batch: &Batch) {
        let mut ids = self.pending_client_ids();
        if ids.is_empty() {
            return;
        }
        for change in batch.iter().filter(|c| c.kind == ChangeKind::Posted) {
            let message = &change.message;
            if let (Some(client_id), Some(of_user)) =
                (&message.client_msg_id, ids.get_mut(&message.sender_id))
            {
                of_user.remove(client_id);
            }
        }
        ids.retain(|_, of_user| !of_user.is_empty());
    }

    /// Publishes a stored batch, each room's changes in order.
    fn deliver(&self, batch: &Batch) {
        let directory = self.directory();
        let accounts = self.accounts();
        for change in batch.iter() {
            let Some(room) = directory.rooms.get(&change.room_id()) else {
                continue;
            };
            let sender_name = accounts.name_of(change.message.sender_id);
            if let Some(event) = change_event(change, sender_name) {
                self.bus
                    .publish(change_audience(&directory, room, change), event);
            }
        }
    }

    /// Reads from the buffer too in `buffered` mode; in `sync` mode only what is on
    /// disk, which is what has been delivered.
    pub(super) fn include_buffer(&self) -> bool {
        self.settings.durability == Durability::Buffered
    }

    /// Messages as `caller` sees them: without the reactions of users they block.
    pub(super) fn views_for(
        &self,
        caller: Caller,
        messages: Vec<Arc<Message>>,
    ) -> Vec<MessageView> {
        let blocked = self.directory().blocks.get(&caller.user_id).cloned();
        let messages = match blocked {
            Some(blocked) if !blocked.is_empty() => messages
                .into_iter()
                .map(|message| without_reactions_of(message, &blocked))
                .collect(),
            _ => messages,
        };
        self.views(messages)
    }

    fn views(&self, messages: Vec<Arc<Message>>) -> Vec<MessageView> {
        let accounts = self.accounts();
        messages
            .into_iter()
            .map(|message| MessageView {
                sender_name: accounts.name_of(message.sender_id),
                message,
            })
            .collect()
    }

    /// Up to `count` messages of a room before `before`, oldest first. Members only.
    ///
    /// Messages of senders the caller blocks are left out, and older ones read to
    /// fill the page, but at most `limits.history_scan_pages` pages' worth are read for
    /// one page: a page may then come back short. The scan runs on a blocking
    /// thread, never on the runtime's.
    pub async fn history(
        &self,
        caller: Caller,
        room_id: RoomId,
        before: Before,
        count: u32,
    ) -> Result<Vec<MessageView>> {
        let max = self.settings.limits.history_page_max;
        if count == 0 || count > max {
            return Err(Error::bad_request(
                "invalid_count",
                format!("count must be between 1 and {max}"),
            ));
        }
        let before = match before {
            Before::Newest => MsgId::MAX,
            Before::Msg(id) => id,
        };
        let blocked = {
            let directory = self.directory();
            directory.joined(room_id, caller.user_id)?;
            directory
                .blocks
                .get(&caller.user_id)
                .cloned()
                .unwrap_or_default()
        };
        let store = self.store.clone();
        let include_buffer = self.include_buffer();
        let scan_pages = self.settings.limits.history_scan_pages as usize;
        let page = tokio::task::spawn_blocking(move || {
            history_page(
                &store,
                room_id,
                before,
                count as usize,
                &blocked,
                include_buffer,
                scan_pages,
            )
        })
        .await
        .map_err(|_| Error::Internal)??;
        Ok(self.views_for(caller, page))
    }

    /// What a client that reconnects missed in a room after `from`: at most `max`
    /// messages or changes (and at most `limits.replay_max`), else
    /// [`Replay::TooFar`]. Changes to a message deleted since (its edits and
    /// reactions) are left out: the delete comes later in the same replay.
    pub fn replay(
        &self,
        caller: Caller,
        room_id: RoomId,
        from: ResumeFrom,
        max: usize,
    ) -> Result<Replay> {
        let (newest, last_seq, blocked) = {
            let directory = self.directory();
            let sequence = directory.joined(room_id, caller.user_id)?.sequence();
            let blocked = directory.blocks.get(&caller.user_id).cloned();
            (
                sequence.last,
                sequence.last_seq,
                blocked.unwrap_or_default(),
            )
        };
        let missed = match from {
            ResumeFrom::Msg(after) => newest.get().saturating_sub(after.get()),
            ResumeFrom::Seq(after) => last_seq.get().saturating_sub(after.get()),
        };
        if missed == 0 {
            return Ok(Replay::Events {
                events: Vec::new(),
                upto: from,
            });
        }
        let max = (max as u64).min(u64::from(self.settings.limits.replay_max));
        if missed > max {
            return Ok(Replay::TooFar { newest, last_seq });
        }
        let missed = missed as usize;
        let include_buffer = self.include_buffer();
        let accounts = self.accounts();
        let visible = |sender: UserId| !blocked.contains(&sender);
        match from {
            ResumeFrom::Msg(after) => {
                let messages = self
                    .store
                    .history(room_id, MsgId::MAX, missed, include_buffer)?;
                let upto = messages.last().map_or(after, |m| m.msg_id.max(after));
                let events = messages
                    .into_iter()
                    .filter(|m| m.msg_id > after && visible(m.sender_id))
                    .map(|message| {
                        Event::Chat(MessageView {
                            sender_name: accounts.name_of(message.sender_id),
                            message: without_reactions_of(message, &blocked),
                        })
                    })
                    .collect();
                Ok(Replay::Events {
                    events,
                    upto: ResumeFrom::Msg(upto),
                })
            }
            ResumeFrom::Seq(after) => {
                let changes = self
                    .store
                    .changes_after(room_id, after, missed, include_buffer)?;
                let upto = changes.last().map_or(after, |c| c.seq.max(after));
                let events = changes
                    .iter()
                    .filter(|c| {
                        visible(c.message.sender_id)
                            && match &c.kind {
                                ChangeKind::Reacted { user, .. } => {
                                    visible(*user) && !c.message.is_deleted()
                                }
                                ChangeKind::Edited => !c.message.is_deleted(),
                                ChangeKind::Posted | ChangeKind::Deleted => true,
                            }
                    })
                    .filter_map(|c| {
                        let shown = Change {
                            message: without_reactions_of(Arc::clone(&c.message), &blocked),
                            ..c.clone()
                        };
                        change_event(&shown, accounts.name_of(c.message.sender_id))
                    })
                    .collect();
                Ok(Replay::Events {
                    events,
                    upto: ResumeFrom::Seq(upto),
                })
            }
        }
    }
}

/// Reads one history page, leaving out `blocked` senders (see [`Chat::history`]).
fn history_page(
    store: &crate::store::Store,
    room_id: RoomId,
    before: MsgId,
    count: usize,
    blocked: &std::collections::HashSet<UserId>,
    include_buffer: bool,
    scan_pages: usize,
) -> crate::store::StoreResult<Vec<Arc<Message>>> {
    let mut page = store.history(room_id, before, count, include_buffer)?;
    if blocked.is_empty() {
        return Ok(page);
    }
    let mut scanned = page.len();
    let mut exhausted = page.len() < count;
    let mut oldest = page.first().map_or(before, |m| m.msg_id);
    page.retain(|m| !blocked.contains(&m.sender_id));
    while page.len() < count && !exhausted && scanned < count * scan_pages {
        let older = store.history(room_id, oldest, count, include_buffer)?;
        scanned += older.len();
        exhausted = older.len() < count;
        oldest = older.first().map_or(oldest, |m| m.msg_id);
        let mut older: Vec<_> = older
            .into_iter()
            .filter(|m| !blocked.contains(&m.sender_id))
            .collect();
        let room_left = count - page.len();
        if older.len() > room_left {
            older.drain(..older.len() - room_left);
        }
        older.append(&mut page);
        page = older;
    }
    Ok(page)
}

/// The event that tells a room of a change, with the message as `change` carries
/// it; `None` for an edit of a message that is deleted by now (a replay's case).
pub(super) fn change_event(change: &Change, sender_name: Arc<str>) -> Option<Event> {
    let message = &change.message;
    let (chat_seq, seq, msg_id) = (message.room_id, change.seq, message.msg_id);
    Some(match &change.kind {
        ChangeKind::Posted => Event::Chat(MessageView {
            message: Arc::clone(message),
            sender_name,
        }),
        ChangeKind::Edited => match &message.body {
            Body::Text {
                content,
                edited_at,
                mentions,
            } => Event::MessageEdited(EditEvent {
                chat_seq,
                seq,
                msg_id,
                content: Arc::clone(content),
                edited_at: super::view::timestamp(edited_at.unwrap_or(message.created_at)),
                mentions: mentions.users.clone(),
                mentions_room: mentions.room,
            }),
            Body::Deleted { .. } => return None,
        },
        ChangeKind::Deleted => match &message.body {
            Body::Deleted { by, .. } => Event::MessageDeleted(DeleteEvent {
                chat_seq,
                seq,
                msg_id,
                by_user_id: *by,
            }),
            Body::Text { .. } => return None,
        },
        ChangeKind::Reacted { emoji, user, added } => Event::Reaction(ReactionEvent {
            chat_seq,
            seq,
            msg_id,
            emoji: Arc::clone(emoji),
            user_id: *user,
            added: *added,
        }),
    })
}

/// Who hears of a change: the members who do not block the message's sender, and
/// for a reaction, who do not block the one reacting either.
pub(super) fn change_audience<'a>(
    directory: &'a Directory,
    room: &'a RoomEntry,
    change: &'a Change,
) -> impl Iterator<Item = UserId> + 'a {
    let reactor = match &change.kind {
        ChangeKind::Reacted { user, .. } => Some(*user),
        _ => None,
    };
    audience(directory, room, change.message.sender_id).filter(move |&member| {
        reactor
            .is_none_or(|reactor| directory.blocks.is_empty() || !directory.blocks(member, reactor))
    })
}

/// The message without the reactions of `blocked` users (the same message when it
/// has none of theirs).
fn without_reactions_of(
    message: Arc<Message>,
    blocked: &std::collections::HashSet<UserId>,
) -> Arc<Message> {
    if !message
        .reactions
        .iter()
        .any(|r| r.users.iter().any(|u| blocked.contains(u)))
    {
        return message;
    }
    let mut copy = (*message).clone();
    for reaction in &mut copy.reactions {
        reaction.users.retain(|u| !blocked.contains(u));
    }
    copy.reactions.retain(|r| !r.users.is_empty());
    Arc::new(copy)
}

/// Who receives a message of `sender` in a room: the members who do not block them.
fn audience<'a>(
    directory: &'a Directory,
    room: &'a RoomEntry,
    sender: UserId,
) -> impl Iterator<Item = UserId> + 'a {
    let anyone_blocks = !directory.blocks.is_empty();
    room.members
        .keys()
        .copied()
        .filter(move |&member| !anyone_blocks || !directory.blocks(member, sender))
}

impl Chat {
    /// Why the server is not ready to serve, if it is not: the flush job has not
    /// run for three intervals, or flushes fail (the buffer is stuck).
    pub fn readiness(&self, flush_interval: Duration) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let silent_for = now_millis() - self.last_flush_attempt.load(Ordering::Relaxed);
        let allowed = 3 * flush_interval.as_millis() as Millis + 1000;
        if silent_for > allowed {
            problems.push(format!("the flush job has not run for {silent_for} ms"));
        }
        if self.store.flush_failing() {
            problems.push(format!(
                "flushes are failing; {} changes wait in memory",
                self.store.buffered_changes()
            ));
        }
        if let Err(e) = self.store.size_on_disk() {
            problems.push(format!("the database cannot be read: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Brings the gauges that describe state up to date, before a scrape.
    pub fn refresh_gauges(&self) {
        let (connections, users) = self.bus.counts();
        self.metrics.connections.set(connections as i64);
        self.metrics.users_online.set(users as i64);
        self.metrics
            .buffered_messages
            .set(self.store.buffered_changes() as i64);
        if let Ok(bytes) = self.store.size_on_disk() {
            self.metrics.database_bytes.set(bytes);
        }
    }

    /// Changes accepted and not yet on disk.
    pub fn buffered_changes(&self) -> usize {
        self.store.buffered_changes()
    }

    /// Whether the last flush failed.
    pub fn flush_failing(&self) -> bool {
        self.store.flush_failing()
    }

    /// Resolves once a change has been buffered since the last call.
    pub async fn change_pushed(&self) {
        self.store.change_pushed().await
    }

    /// Forgets client ids older than [`CLIENT_MSG_ID_RETENTION`]. Called by a job.
    pub fn prune_client_ids(&self) -> StoreResult<usize> {
        let cutoff = now_millis() - CLIENT_MSG_ID_RETENTION.as_millis() as Millis;
        self.store.prune_message_refs(cutoff)
    }
}
