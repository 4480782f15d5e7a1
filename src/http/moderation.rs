//! Running a room over HTTP: kick, ban, mute, admins, owner, invite, settings,
//! members; and blocking users.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{body, caller, json_reply, no_content, parse_id, parse_json, with_chat};
use crate::chat::view::ChatType;
use crate::chat::{Caller, Chat, RoomChanges};
use crate::error::Error;

pub fn routes(
    chat: Arc<Chat>,
    limit: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let action = |name: &'static str| {
        warp::path("api")
            .and(warp::path("chatrooms"))
            .and(warp::path::param::<String>())
            .and(warp::path(name))
            .and(warp::path::param::<String>())
            .and(warp::path::end())
    };
    let authed = with_chat(chat.clone()).and(caller(chat.clone()));

    // POST /api/chatrooms/{roomId}/kick/{userId} → 204
    let kick = action("kick")
        .and(warp::post())
        .and(authed.clone())
        .and_then(
            |room: String, user: String, chat: Arc<Chat>, caller: Caller| async move {
                let (room, user) = ids(&room, &user)?;
                chat.kick(caller, room, user)?;
                Ok::<_, Rejection>(no_content())
            },
        );
    // POST /api/chatrooms/{roomId}/ban/{userId} {minutes?} → 204 (no minutes: for ever)
    let ban = action("ban")
        .and(warp::post())
        .and(authed.clone())
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
        );
    // DELETE /api/chatrooms/{roomId}/ban/{userId} → 204
    let unban = action("ban")
        .and(warp::delete())
        .and(authed.clone())
        .and_then(
            |room: String, user: String, chat: Arc<Chat>, caller: Caller| async move {
                let (room, user) = ids(&room, &user)?;
                chat.unban(caller, room, user)?;
                Ok::<_, Rejection>(no_content())
            },
        );
    // POST /api/chatrooms/{roomId}/mute/{userId} {minutes} → 204
    let mute = action("mute")
        .and(warp::post())
        .and(authed.clone())
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
        );
    // DELETE /api/chatrooms/{roomId}/mute/{userId} → 204
    let unmute = action("mute")
        .and(warp::delete())
        .and(authed.clone())
        .and_then(
            |room: String, user: String, chat: Arc<Chat>, caller: Caller| async move {
                let (room, user) = ids(&room, &user)?;
                chat.unmute(caller, room, user)?;
                Ok::<_, Rejection>(no_content())
            },
        );
    // PUT /api/chatrooms/{roomId}/admins/{userId} → 204; DELETE → 204
    let admins = action("admins")
        .and(
            warp::put()
                .map(|| true)
                .or(warp::delete().map(|| false))
                .unify(),
        )
        .and(authed.clone())
        .and_then(
            |room: String, user: String, admin: bool, chat: Arc<Chat>, caller: Caller| async move {
                let (room, user) = ids(&room, &user)?;
                chat.set_admin(caller, room, user, admin)?;
                Ok::<_, Rejection>(no_content())
            },
        );
    // PUT /api/chatrooms/{roomId}/owner/{userId} → 204
    let owner = action("owner")
        .and(warp::put())
        .and(authed.clone())
        .and_then(
            |room: String, user: String, chat: Arc<Chat>, caller: Caller| async move {
                let (room, user) = ids(&room, &user)?;
                chat.transfer_ownership(caller, room, user)?;
                Ok::<_, Rejection>(no_content())
            },
        );
    // POST /api/chatrooms/{roomId}/invite/{userId} → 204
    let invite = action("invite")
        .and(warp::post())
        .and(authed.clone())
        .and_then(
            |room: String, user: String, chat: Arc<Chat>, caller: Caller| async move {
                let (room, user) = ids(&room, &user)?;
                chat.invite(caller, room, user)?;
                Ok::<_, Rejection>(no_content())
            },
        );
    // PATCH /api/chatrooms/{roomId} {chatName?, chatType?, password?} → 200 the room
    let settings = warp::path!("api" / "chatrooms" / String)
        .and(warp::patch())
        .and(authed.clone())
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
        );
    // GET /api/chatrooms/{roomId}/members → {members, bans?}
    let members = warp::path!("api" / "chatrooms" / String / "members")
        .and(warp::get())
        .and(authed.clone())
        .and_then(|room: String, chat: Arc<Chat>, caller: Caller| async move {
            let room = parse_id(&room, "roomId")?;
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &chat.members(caller, room)?))
        });
    // PUT /api/users/blocks/{userId} → 204; DELETE → 204
    let block = warp::path!("api" / "users" / "blocks" / String)
        .and(
            warp::put()
                .map(|| true)
                .or(warp::delete().map(|| false))
                .unify(),
        )
        .and(authed.clone())
        .and_then(
            |user: String, blocking: bool, chat: Arc<Chat>, caller: Caller| async move {
                let user = parse_id(&user, "userId")?;
                if blocking {
                    chat.block(caller, user)?;
                } else {
                    chat.unblock(caller, user)?;
                }
                Ok::<_, Rejection>(no_content())
            },
        );
    // GET /api/users/blocks → [{userId, username}]
    let blocks = warp::path!("api" / "users" / "blocks")
        .and(warp::get())
        .and(authed)
        .map(|chat: Arc<Chat>, caller: Caller| {
            json_reply(StatusCode::OK, &chat.blocked_users(caller))
        });

    kick.or(ban)
        .unify()
        .or(unban)
        .unify()
        .or(mute)
        .unify()
        .or(unmute)
        .unify()
        .or(admins)
        .unify()
        .or(owner)
        .unify()
        .or(invite)
        .unify()
        .or(settings)
        .unify()
        .or(members)
        .unify()
        .or(block)
        .unify()
        .or(blocks)
        .unify()
}

fn ids(room: &str, user: &str) -> Result<(u64, u64), Error> {
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
