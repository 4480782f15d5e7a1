//! Running a room over HTTP: kick, ban, mute, admins, owner, invite, settings,
//! members; and blocking users.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{body, caller, json_reply, no_content, parse_id, parse_json, with_chat, BodyLimits};
use crate::chat::view::ChatType;
use crate::chat::{Caller, Chat, RoomChanges};
use crate::error::Error;
use crate::model::{RoomId, UserId};

/// `/api/chatrooms/{roomId}/{name}/{userId}`, the ids still as text.
fn room_user_path(
    name: &'static str,
) -> impl Filter<Extract = (String, String), Error = Rejection> + Clone {
    warp::path("api")
        .and(warp::path("chatrooms"))
        .and(warp::path::param::<String>())
        .and(warp::path(name))
        .and(warp::path::param::<String>())
        .and(warp::path::end())
}

/// What a body-less action on a user in a room does.
type Act = fn(&Chat, Caller, RoomId, UserId) -> Result<(), Error>;

/// `METHOD /api/chatrooms/{roomId}/{name}/{userId}` without a body → 204.
fn targeted<M>(
    chat: Arc<Chat>,
    name: &'static str,
    method: M,
    act: Act,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone
where
    M: Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static,
{
    room_user_path(name)
        .and(method)
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and_then(
            move |room: String, user: String, chat: Arc<Chat>, caller: Caller| async move {
                let (room, user) = ids(&room, &user)?;
                act(&chat, caller, room, user)?;
                Ok::<_, Rejection>(no_content())
            },
        )
}

/// POST /api/chatrooms/{roomId}/kick/{userId} → 204
pub(super) fn kick(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    targeted(chat, "kick", warp::post(), Chat::kick)
}

/// DELETE /api/chatrooms/{roomId}/ban/{userId} → 204
pub(super) fn unban(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    targeted(chat, "ban", warp::delete(), Chat::unban)
}

/// DELETE /api/chatrooms/{roomId}/mute/{userId} → 204
pub(super) fn unmute(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    targeted(chat, "mute", warp::delete(), Chat::unmute)
}

/// PUT /api/chatrooms/{roomId}/admins/{userId} → 204
pub(super) fn add_admin(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    targeted(chat, "admins", warp::put(), |chat, caller, room, user| {
        chat.set_admin(caller, room, user, true)
    })
}

/// DELETE /api/chatrooms/{roomId}/admins/{userId} → 204
pub(super) fn remove_admin(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    targeted(
        chat,
        "admins",
        warp::delete(),
        |chat, caller, room, user| chat.set_admin(caller, room, user, false),
    )
}

/// PUT /api/chatrooms/{roomId}/owner/{userId} → 204
pub(super) fn transfer_ownership(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    targeted(chat, "owner", warp::put(), Chat::transfer_ownership)
}

/// POST /api/chatrooms/{roomId}/invite/{userId} → 204
pub(super) fn invite(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    targeted(chat, "invite", warp::post(), Chat::invite)
}

/// DELETE /api/chatrooms/{roomId}/invite → 204: the invited user declines.
pub(super) fn decline_invite(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "chatrooms" / String / "invite")
        .and(warp::delete())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and_then(|room: String, chat: Arc<Chat>, caller: Caller| async move {
            let room = parse_id(&room, "roomId")?;
            chat.decline_invite(caller, room)?;
            Ok::<_, Rejection>(no_content())
        })
}

/// POST /api/chatrooms/{roomId}/ban/{userId} {minutes?} → 204 (no minutes: for ever)
pub(super) fn ban(
    chat: Arc<Chat>,
    limit: BodyLimits,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    room_user_path("ban")
        .and(warp::post())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and(body(limit))
        .and_then(
            |room: String, user: String, chat: Arc<Chat>, caller: Caller, body: Bytes| async move {
                let (room, user) = ids(&room, &user)?;
                let b: Minutes = if body.is_empty() {
                    Minutes::default()
                } else {
                    parse_json(&body)?
                };
                chat.ban(caller, room, user, b.minutes)?;
                Ok::<_, Rejection>(no_content())
            },
        )
}

/// POST /api/chatrooms/{roomId}/mute/{userId} {minutes} → 204
pub(super) fn mute(
    chat: Arc<Chat>,
    limit: BodyLimits,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    room_user_path("mute")
        .and(warp::post())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and(body(limit))
        .and_then(
            |room: String, user: String, chat: Arc<Chat>, caller: Caller, body: Bytes| async move {
                let (room, user) = ids(&room, &user)?;
                let b: Minutes = parse_json(&body)?;
                let minutes = b
                    .minutes
                    .ok_or_else(|| Error::bad_request("invalid_minutes", "a mute needs minutes"))?;
                chat.mute(caller, room, user, minutes)?;
                Ok::<_, Rejection>(no_content())
            },
        )
}

/// PATCH /api/chatrooms/{roomId} {chatName?, chatType?, password?} → 200 the room
pub(super) fn settings(
    chat: Arc<Chat>,
    limit: BodyLimits,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "chatrooms" / String)
        .and(warp::patch())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and(body(limit))
        .and_then(
            |room: String, chat: Arc<Chat>, caller: Caller, body: Bytes| async move {
                let room = parse_id(&room, "roomId")?;
                let b: SettingsBody = parse_json(&body)?;
                let changes = RoomChanges {
                    chat_name: b.chat_name,
                    chat_type: b.chat_type,
                    password: b.password,
                };
                let view = chat.update_room(caller, room, changes).await?;
                Ok::<_, Rejection>(json_reply(StatusCode::OK, &view))
            },
        )
}

/// GET /api/chatrooms/{roomId}/members → {members, bans?}
pub(super) fn members(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "chatrooms" / String / "members")
        .and(warp::get())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and_then(|room: String, chat: Arc<Chat>, caller: Caller| async move {
            let room = parse_id(&room, "roomId")?;
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &chat.members(caller, room)?))
        })
}

/// `METHOD /api/users/blocks/{userId}` → 204, doing `act` on the user.
fn on_blocked_user<M>(
    chat: Arc<Chat>,
    method: M,
    act: fn(&Chat, Caller, UserId) -> Result<(), Error>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone
where
    M: Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static,
{
    warp::path!("api" / "users" / "blocks" / String)
        .and(method)
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and_then(
            move |user: String, chat: Arc<Chat>, caller: Caller| async move {
                act(&chat, caller, parse_id(&user, "userId")?)?;
                Ok::<_, Rejection>(no_content())
            },
        )
}

/// PUT /api/users/blocks/{userId} → 204
pub(super) fn block(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    on_blocked_user(chat, warp::put(), Chat::block)
}

/// DELETE /api/users/blocks/{userId} → 204
pub(super) fn unblock(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    on_blocked_user(chat, warp::delete(), Chat::unblock)
}

/// GET /api/users/blocks → [{userId, username}]
pub(super) fn blocks(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "users" / "blocks")
        .and(warp::get())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .map(|chat: Arc<Chat>, caller: Caller| {
            json_reply(StatusCode::OK, &chat.blocked_users(caller))
        })
}

fn ids(room: &str, user: &str) -> Result<(RoomId, UserId), Error> {
    Ok((parse_id(room, "roomId")?, parse_id(user, "userId")?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Minutes {
    minutes: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsBody {
    chat_name: Option<String>,
    chat_type: Option<ChatType>,
    /// Absent: unchanged; `null` or `""`: removed; a string: set.
    #[serde(default, deserialize_with = "present")]
    password: Option<Option<String>>,
}

/// Tells an absent field (`None`) from a `null` one (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}
