//! What clients see: the JSON shapes of users, rooms, members and messages, and the
//! events of the gateway. HTTP replies and WebSocket events use the same shapes.

use std::sync::Arc;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::model::{
    Attachment, Body, FileId, Message, Millis, MsgId, Role, RoomId, RoomType, Seq, UserId,
};

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-25T01:22:12.345Z`.
pub fn timestamp(millis: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub user_id: UserId,
    pub username: Arc<str>,
}

/// The reply to register and login.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub user_id: UserId,
    pub username: Arc<str>,
    pub token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatType {
    Public,
    Protected,
    Private,
}

impl From<RoomType> for ChatType {
    fn from(t: RoomType) -> Self {
        match t {
            RoomType::Public => Self::Public,
            RoomType::Protected => Self::Protected,
            RoomType::Private => Self::Private,
        }
    }
}

impl From<ChatType> for RoomType {
    fn from(t: ChatType) -> Self {
        match t {
            ChatType::Public => Self::Public,
            ChatType::Protected => Self::Protected,
            ChatType::Private => Self::Private,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    pub chat_seq: RoomId,
    pub chat_name: String,
    pub chat_type: ChatType,
    pub is_directed: bool,
    pub owner_id: Option<UserId>,
    pub member_count: usize,
    /// The newest `msgId` of the room (0 before the first message), so that a client
    /// knows what it has missed.
    pub last_msg_id: MsgId,
    /// When the newest message was sent (`null` before the first), so that a room
    /// list can show it and sort by it.
    pub last_message_at: Option<String>,
    /// The newest change of the room's log (0 before the first): what a client
    /// resumes from (`ROOM:LASTMSGID:LASTSEQ`).
    pub last_seq: Seq,
    /// Where the user this view was made for has read up to: in the replies and the
    /// `rooms` event made for one user, absent from events sent to several.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub read: Option<ReadState>,
}

/// A room as one user has read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadState {
    /// The newest `msgId` the user has read (0: none; also for non-members).
    pub last_read_msg_id: MsgId,
    /// `lastMsgId − lastReadMsgId` (0 for non-members).
    pub unread_count: u64,
    /// Unread messages that mention the user (at most 999).
    pub unread_mentions: u64,
}

/// A user's read marker moved: sent to all of their connections.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadEvent {
    pub chat_seq: RoomId,
    pub last_read_msg_id: MsgId,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub user_id: UserId,
    pub username: Arc<str>,
    pub role: RoleName,
    /// Whether they have a connection open (or closed it within the grace).
    pub online: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    Owner,
    Admin,
    Member,
}

impl From<Role> for RoleName {
    fn from(r: Role) -> Self {
        match r {
            Role::Owner => Self::Owner,
            Role::Admin => Self::Admin,
            Role::Member => Self::Member,
        }
    }
}

/// The reply to join: the room and who is in it.
#[derive(Debug, Clone, Serialize)]
pub struct RoomDetail {
    #[serde(flatten)]
    pub room: RoomView,
    pub members: Vec<MemberView>,
}

/// A message as clients see it, as it is now: its text (with `editedAt` once
/// edited) or its tombstone, its mentions and its reactions. Shares the stored
/// message instead of copying it: one is built per change and sent to every
/// recipient.
#[derive(Debug, Clone)]
pub struct MessageView {
    pub message: Arc<Message>,
    pub sender_name: Arc<str>,
}

/// `attachments: [{fileId, name, size, contentType}]`.
struct AttachmentsView<'a>(&'a [Attachment]);

impl Serialize for AttachmentsView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for a in self.0 {
            seq.serialize_element(&AttachmentView {
                file_id: a.file_id,
                name: &a.name,
                size: a.size,
                content_type: &a.content_type,
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttachmentView<'a> {
    file_id: FileId,
    name: &'a str,
    size: u64,
    content_type: &'a str,
}

/// `reactions: [{emoji, count, userIds}]`.
struct ReactionsView<'a>(&'a Message);

impl Serialize for ReactionsView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let reactions = &self.0.reactions;
        let mut seq = serializer.serialize_seq(Some(reactions.len()))?;
        for reaction in reactions {
            seq.serialize_element(&ReactionView {
                emoji: &reaction.emoji,
                count: reaction.users.len(),
                user_ids: &reaction.users,
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReactionView<'a> {
    emoji: &'a str,
    count: usize,
    user_ids: &'a [UserId],
}

impl Serialize for MessageView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let m = &self.message;
        let mut s = serializer.serialize_struct("Message", 12)?;
        s.serialize_field("msgId", &m.msg_id)?;
        s.serialize_field("chatSeq", &m.room_id)?;
        s.serialize_field("seq", &m.seq)?;
        s.serialize_field("senderId", &m.sender_id)?;
        s.serialize_field("senderName", &*self.sender_name)?;
        s.serialize_field("createdAt", &timestamp(m.created_at))?;
        if let Some(id) = &m.client_msg_id {
            s.serialize_field("clientMsgId", id)?;
        }
        match &m.body {
            Body::Text {
                content,
                edited_at,
                mentions,
            } => {
                s.serialize_field("content", &**content)?;
                if let Some(at) = edited_at {
                    s.serialize_field("editedAt", &timestamp(*at))?;
                }
                s.serialize_field("mentions", &mentions.users)?;
                if mentions.room {
                    s.serialize_field("mentionsRoom", &true)?;
                }
                if !m.attachments.is_empty() {
                    s.serialize_field("attachments", &AttachmentsView(&m.attachments))?;
                }
            }
            Body::Deleted { by, .. } => {
                s.serialize_field("deleted", &true)?;
                s.serialize_field("deletedBy", by)?;
            }
        }
        s.serialize_field("reactions", &ReactionsView(m))?;
        s.end()
    }
}

/// A message's text changed: `message edited`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditEvent {
    pub chat_seq: RoomId,
    pub seq: Seq,
    pub msg_id: MsgId,
    pub content: Arc<str>,
    pub edited_at: String,
    pub mentions: Vec<UserId>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mentions_room: bool,
}

/// A member is typing in a room: `typing`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingEvent {
    pub chat_seq: RoomId,
    pub user_id: UserId,
    pub username: Arc<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceStatus {
    Online,
    Offline,
}

/// A user came online or went offline: `presence`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceEvent {
    pub user_id: UserId,
    pub status: PresenceStatus,
}

/// A message was taken back: `message deleted`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteEvent {
    pub chat_seq: RoomId,
    pub seq: Seq,
    pub msg_id: MsgId,
    pub by_user_id: UserId,
}

/// A reaction was added or removed: `reaction`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionEvent {
    pub chat_seq: RoomId,
    pub seq: Seq,
    pub msg_id: MsgId,
    pub emoji: Arc<str>,
    pub user_id: UserId,
    pub added: bool,
}

/// Why a user is no longer in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaveReason {
    Leave,
    Kick,
    Ban,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinEvent {
    pub chat_seq: RoomId,
    pub user_id: UserId,
    pub username: Arc<str>,
    pub room: RoomView,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaveEvent {
    pub chat_seq: RoomId,
    pub user_id: UserId,
    pub username: Arc<str>,
    pub reason: LeaveReason,
    /// Who made the user leave; the user themself for `leave`.
    pub by_user_id: UserId,
    /// For a ban: when it ends (`null`: never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<Option<String>>,
}

/// A mute, unmute, ban or unban.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModerationEvent {
    pub chat_seq: RoomId,
    pub user_id: UserId,
    pub username: Arc<str>,
    /// When the mute or ban ends (`null`: a ban for ever, or a lift).
    pub until: Option<String>,
    /// Who acted; `null` when a mute or ban ran out.
    pub by_user_id: Option<UserId>,
}

/// A room's settings changed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomUpdateEvent {
    pub room: RoomView,
    pub by_user_id: UserId,
}

/// A user was invited to a room.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InviteEvent {
    pub chat_seq: RoomId,
    pub user_id: UserId,
    pub username: Arc<str>,
    pub room: RoomView,
    pub by_user_id: UserId,
}

/// A member as owners and admins see it: with a mute in force.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModeratedMemberView {
    #[serde(flatten)]
    pub member: MemberView,
    pub muted_until: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BanView {
    pub user_id: UserId,
    pub username: Arc<str>,
    /// `null`: for ever.
    pub until: Option<String>,
    pub by_user_id: UserId,
}

/// `GET /api/chatrooms/{roomId}/members`: mutes and bans only for owners and admins.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum MembersView {
    Moderated {
        members: Vec<ModeratedMemberView>,
        bans: Vec<BanView>,
    },
    Plain {
        members: Vec<MemberView>,
    },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleEvent {
    pub chat_seq: RoomId,
    pub user_id: UserId,
    pub username: Arc<str>,
    pub role: RoleName,
    /// Who changed the role; `None` when it followed from a departure.
    pub by_user_id: Option<UserId>,
}

/// Sent instead of a replay when a client is too far behind: reload the room's
/// history from the newest message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResyncEvent {
    pub chat_seq: RoomId,
    pub last_msg_id: MsgId,
    pub last_seq: Seq,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorEvent {
    pub error: &'static str,
    pub message: String,
    /// The refused frame's event, room and `clientMsgId`, where known.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<serde_json::Value>,
}

/// Every event a connection receives. Serializes as its data alone: how the name and
/// the data are framed (`{"event", "data"}` on `/ws`, a socket.io packet) is each
/// transport's business; [`Event::name`] gives the name.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Event {
    /// The user's rooms, right after a connection is accepted.
    Rooms(Vec<RoomView>),
    NewRoom(RoomView),
    JoinRoom(JoinEvent),
    UserLeave(LeaveEvent),
    /// A member's role changed (named, removed, or ownership passed on).
    RoleChange(RoleEvent),
    UserMute(ModerationEvent),
    UserUnmute(ModerationEvent),
    UserBan(ModerationEvent),
    UserUnban(ModerationEvent),
    RoomUpdate(RoomUpdateEvent),
    Invite(InviteEvent),
    /// A new message (or, in a replay, a message posted since, as it is now).
    Chat(MessageView),
    MessageEdited(EditEvent),
    MessageDeleted(DeleteEvent),
    Reaction(ReactionEvent),
    Typing(TypingEvent),
    Presence(PresenceEvent),
    Resync(ResyncEvent),
    /// The user's read marker in a room moved (on another connection, maybe).
    Read(ReadEvent),
    Error(ErrorEvent),
}

impl Event {
    /// The event's name on the wire, the original design's.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Rooms(_) => "rooms",
            Self::NewRoom(_) => "new room",
            Self::JoinRoom(_) => "join room",
            Self::UserLeave(_) => "user leave",
            Self::RoleChange(_) => "role change",
            Self::UserMute(_) => "user mute",
            Self::UserUnmute(_) => "user unmute",
            Self::UserBan(_) => "user ban",
            Self::UserUnban(_) => "user unban",
            Self::RoomUpdate(_) => "room update",
            Self::Invite(_) => "invite",
            Self::Chat(_) => "chat",
            Self::MessageEdited(_) => "message edited",
            Self::MessageDeleted(_) => "message deleted",
            Self::Reaction(_) => "reaction",
            Self::Typing(_) => "typing",
            Self::Presence(_) => "presence",
            Self::Resync(_) => "resync",
            Self::Read(_) => "read",
            Self::Error(_) => "error",
        }
    }
}

impl Event {
    /// The room and change number of a change event (a message, an edit, a delete, a
    /// reaction): what a resuming session compares to drop what its replay sent.
    pub fn change(&self) -> Option<(RoomId, Seq)> {
        match self {
            Self::Chat(view) => Some((view.message.room_id, view.message.seq)),
            Self::MessageEdited(e) => Some((e.chat_seq, e.seq)),
            Self::MessageDeleted(e) => Some((e.chat_seq, e.seq)),
            Self::Reaction(e) => Some((e.chat_seq, e.seq)),
            _ => None,
        }
    }
}
