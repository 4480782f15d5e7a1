//! What a connection means, apart from any socket: the session core that `/ws` and
//! `/socket.io/` share.
//!
//! A [`Session`] is a state machine. Its inputs are the client's commands (decoded
//! by the transport into a [`Command`]) and the bus's deliveries; its outputs are the
//! [`Outgoing`] items of its outbox, in the order they must be sent, and at most once
//! a [`CloseReason`]. It subscribes before it takes the `rooms` snapshot, replays
//! what a resuming client missed before any live event, drops live events the replay
//! already sent, answers `sync`-mode messages in order once stored (at most
//! [`MAX_WAITING`] at a time), and hands on the bus's close requests (a slow consumer,
//! a logout). A transport is a thin loop: decode a frame, call
//! [`Session::command`]; await [`Session::step`]; encode and write the outbox, every
//! write bounded in time and by the close signal.

mod command;
mod resume;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};

use crate::chat::view::{ErrorEvent, Event, MessageView, ResyncEvent};
use crate::chat::{Caller, Chat, Replay, ResumeFrom, Sent};
use crate::events::{CloseReason, Delivery, Inbox, Subscription};
use crate::model::RoomId;
pub use command::{decode_command, Command};
pub use resume::parse_resume;

/// Messages of one connection that may wait for the disk at once (`sync` mode);
/// beyond, the connection's commands are read only as earlier ones are stored.
pub const MAX_WAITING: usize = 256;
/// Events moved to the outbox at a time (live deliveries, or replayed messages), so
/// that a transport writes them with one flush, and checks for a close in between.
pub const MAX_BATCH: usize = 64;

/// A client's number for a command whose outcome it wants as a reply (socket.io's
/// acknowledgements; `/ws` has none).
pub type AckId = u64;

/// What a transport sends, in this order.
pub enum Outgoing {
    /// An event; shared with every other recipient, so encoded once per transport.
    Event(Arc<Delivery<Event>>),
    /// The outcome of a command that asked for an acknowledgement.
    Ack { id: AckId, reply: AckReply },
}

/// The outcome of a command, as an acknowledgement carries it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum AckReply {
    /// The stored message (or, for a resend, the original).
    Message(MessageView),
    /// The refusal, as the `error` event would have carried it.
    Error(ErrorEvent),
    /// Done, with nothing to say (`typing`): `{}`.
    Done {},
}

type Answer = (Option<AckId>, Result<Sent, ErrorEvent>);

/// A connection's session, from the `rooms` event to its close.
pub struct Session {
    chat: Arc<Chat>,
    caller: Caller,
    subscription: Subscription<Event>,
    /// Rooms replayed on resume: how far the client now has them (the newest
    /// `msgId`, or the newest change). A live event the replay covered (queued while
    /// it was read) is not sent twice: a `chat` at or below the `msgId`, or any
    /// change at or below the `seq`.
    replayed: HashMap<RoomId, ResumeFrom>,
    /// Rooms still to replay, in the client's order.
    resume: VecDeque<(RoomId, ResumeFrom)>,
    /// Replayed events of the current room not yet in the outbox.
    replaying: VecDeque<Event>,
    /// Events the replay may still send, over every room (`limits.replay_total_max`).
    replay_budget: usize,
    /// Accepted messages waiting for the disk (`sync` mode), answered in order.
    waiting: Waiting,
    outbox: VecDeque<Outgoing>,
}

type Storing = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// Accepted messages waiting for the disk, in order. The queue is made for the
/// first of them: an empty `FuturesOrdered` holds two allocations (about 150 bytes),
/// and most connections never wait (only `sync` mode does).
#[derive(Default)]
struct Waiting(Option<FuturesOrdered<Storing>>);

impl Waiting {
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, FuturesOrdered::len)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push_back(&mut self, storing: Storing) {
        self.0
            .get_or_insert_with(FuturesOrdered::new)
            .push_back(storing);
    }

    async fn next(&mut self) -> Option<Answer> {
        match &mut self.0 {
            Some(queue) => queue.next().await,
            None => None,
        }
    }
}

fn event(event: Event) -> Outgoing {
    Outgoing::Event(Arc::new(Delivery::new(event)))
}

impl Session {
    /// Starts a session on a subscription made for it (so that an event published
    /// while the `rooms` snapshot is read is queued, not lost). `resume` comes from
    /// [`parse_resume`].
    pub fn open(
        chat: Arc<Chat>,
        caller: Caller,
        subscription: Subscription<Event>,
        resume: Vec<(RoomId, ResumeFrom)>,
    ) -> Self {
        let mut outbox = VecDeque::new();
        outbox.push_back(event(Event::Rooms(chat.my_rooms(caller.user_id))));
        let replay_budget = chat.settings().limits.replay_total_max as usize;
        tracing::debug!(user_id = %caller.user_id, "session opened");
        chat.session_opened(caller.user_id);
        Self {
            chat,
            caller,
            subscription,
            replayed: HashMap::new(),
            resume: resume.into(),
            replaying: VecDeque::new(),
            replay_budget,
            waiting: Waiting::default(),
            outbox,
        }
    }

    pub fn caller(&self) -> Caller {
        self.caller
    }

    pub fn chat(&self) -> &Arc<Chat> {
        &self.chat
    }

    /// Where the bus asks this connection to close: a transport races its writes
    /// against it.
    pub fn control(&self) -> Arc<Inbox<Event>> {
        Arc::clone(&self.subscription.inbox)
    }

    /// Whether the transport should read the client's next command: not while the
    /// replay runs, nor while [`MAX_WAITING`] messages wait for the disk.
    pub fn accepts_commands(&self) -> bool {
        !self.replaying() && self.waiting.len() < MAX_WAITING
    }

    fn replaying(&self) -> bool {
        !self.resume.is_empty() || !self.replaying.is_empty()
    }

    /// The next item to send.
    pub fn pop(&mut self) -> Option<Outgoing> {
        self.outbox.pop_front()
    }

    pub fn has_outgoing(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Waits for something to do and does it: the next piece of the replay, an
    /// answer from the disk, or live deliveries (up to [`MAX_BATCH`]) into the
    /// outbox; or the reason the bus wants the connection closed. Cancel-safe: it
    /// changes the session only after its last `.await`.
    pub async fn step(&mut self) -> Result<(), CloseReason> {
        // A close request wins over the rest (of a replay, of answers waiting).
        if let Some(reason) = self.subscription.inbox.reason() {
            return Err(reason);
        }
        if self.replaying() {
            self.replay_step();
            return Ok(());
        }
        tokio::select! {
            biased;
            Some(answer) = self.waiting.next(), if !self.waiting.is_empty() => {
                self.answer(answer);
                Ok(())
            }
            next = self.subscription.inbox.next() => {
                let delivery = next?;
                self.deliver(delivery);
                for _ in 1..MAX_BATCH {
                    match self.subscription.inbox.try_next() {
                        Some(delivery) => self.deliver(delivery),
                        None => break,
                    }
                }
                Ok(())
            }
        }
    }

    fn already_sent(&self, delivery: &Delivery<Event>) -> bool {
        let Some((room_id, seq)) = delivery.event.change() else {
            return false;
        };
        match (self.replayed.get(&room_id), &delivery.event) {
            (Some(ResumeFrom::Seq(upto)), _) => seq <= *upto,
            (Some(ResumeFrom::Msg(upto)), Event::Chat(view)) => view.message.msg_id <= *upto,
            _ => false,
        }
    }

    fn deliver(&mut self, delivery: Arc<Delivery<Event>>) {
        if !self.replayed.is_empty() && self.already_sent(&delivery) {
            return;
        }
        if let Event::Chat(_) = delivery.event {
            self.chat.metrics().messages_delivered.inc();
        }
        self.outbox.push_back(Outgoing::Event(delivery));
    }

    /// Moves the next piece of the replay into the outbox.
    fn replay_step(&mut self) {
        if self.replaying.is_empty() {
            if let Some((room_id, from)) = self.resume.pop_front() {
                self.replay_room(room_id, from);
            }
        }
        for _ in 0..MAX_BATCH {
            let Some(replayed) = self.replaying.pop_front() else {
                break;
            };
            self.outbox.push_back(event(replayed));
        }
    }

    /// What the client missed in one room after the last message (or change) it
    /// has, or a `resync` where that is too much (for the room, or for what the
    /// replay may still send in all).
    fn replay_room(&mut self, room_id: RoomId, from: ResumeFrom) {
        let refused = match self
            .chat
            .replay(self.caller, room_id, from, self.replay_budget)
        {
            Ok(Replay::Events { events, upto }) => {
                self.replay_budget = self.replay_budget.saturating_sub(events.len());
                self.replayed.insert(room_id, upto);
                self.replaying = events.into();
                return;
            }
            Ok(Replay::TooFar { newest, last_seq }) => Event::Resync(ResyncEvent {
                chat_seq: room_id,
                last_msg_id: newest,
                last_seq,
            }),
            Err(e) => Event::Error(refusal(&e, json!({"event": "resume", "chatSeq": room_id}))),
        };
        self.outbox.push_back(event(refused));
    }

    /// Runs one command of the client; `ack` when it wants the outcome as a reply.
    pub fn command(&mut self, command: Result<Command, ErrorEvent>, ack: Option<AckId>) {
        let (room_id, content, client_msg_id, attachments) = match command {
            Ok(Command::Chat {
                room_id,
                content,
                client_msg_id,
                attachments,
            }) => (room_id, content, client_msg_id, attachments),
            Ok(Command::Typing { room_id }) => return self.typing(room_id, ack),
            Err(error) => return self.refuse(error, ack),
        };
        let reference = json!({"event": "chat", "chatSeq": room_id, "clientMsgId": client_msg_id});
        match self
            .chat
            .accept(self.caller, room_id, content, client_msg_id, attachments)
        {
            Ok(accepted) if accepted.waits() => {
                let chat = Arc::clone(&self.chat);
                self.waiting.push_back(Box::pin(async move {
                    let outcome = chat.stored(accepted).await;
                    (ack, outcome.map_err(|e| refusal(&e, reference)))
                }));
            }
            Ok(accepted) => self.answer((ack, Ok(accepted.sent))),
            Err(e) => self.refuse(refusal(&e, reference), ack),
        }
    }

    /// Answers an accepted message. A new one reaches every member through the
    /// bus, the sender included, so only an acknowledgement is added; a resend went
    /// to no one, so the sender alone learns which `msgId` its message got.
    fn answer(&mut self, (ack, outcome): Answer) {
        match (outcome, ack) {
            (Ok(sent), Some(id)) => self.outbox.push_back(Outgoing::Ack {
                id,
                reply: AckReply::Message(sent.view),
            }),
            (Ok(sent), None) if sent.duplicate => {
                self.outbox.push_back(event(Event::Chat(sent.view)))
            }
            (Ok(_), None) => {}
            (Err(error), ack) => self.refuse(error, ack),
        }
    }

    /// Tells the room the user is typing; nothing is sent back but a refusal (or an
    /// empty acknowledgement).
    fn typing(&mut self, room_id: RoomId, ack: Option<AckId>) {
        match self.chat.typing(self.caller, room_id) {
            Ok(()) => {
                if let Some(id) = ack {
                    self.outbox.push_back(Outgoing::Ack {
                        id,
                        reply: AckReply::Done {},
                    });
                }
            }
            Err(e) => self.refuse(
                refusal(&e, json!({"event": "typing", "chatSeq": room_id})),
                ack,
            ),
        }
    }

    fn refuse(&mut self, error: ErrorEvent, ack: Option<AckId>) {
        self.outbox.push_back(match ack {
            Some(id) => Outgoing::Ack {
                id,
                reply: AckReply::Error(error),
            },
            None => event(Event::Error(error)),
        });
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.chat.session_closed(self.caller.user_id);
        tracing::debug!(user_id = %self.caller.user_id, "session closed");
    }
}

pub fn refusal(error: &crate::error::Error, reference: Value) -> ErrorEvent {
    ErrorEvent {
        error: error.code(),
        message: error.to_string(),
        reference: Some(reference),
    }
}

#[cfg(test)]
mod tests;
