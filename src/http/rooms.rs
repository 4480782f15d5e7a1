//! Rooms over HTTP: create, list, join, leave, history, send, read markers.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{body, caller, json_reply, no_content, parse_id, parse_json, with_chat, BodyLimits};
use crate::chat::view::ChatType;
use crate::chat::{Before, Caller, Chat, NewRoom};
use crate::error::Error;
use crate::model::{FileId, RoomId, UserId};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    chat_type: Option<ChatType>,
    chat_name: Option<String>,
    password: Option<String>,
    #[serde(default)]
    is_directed: bool,
    target_user_id: Option<UserId>,
}

/// POST /api/chatrooms/new {chatType, chatName, password, isDirected, targetUserId}
/// → 201 {chatSeq, chatName, …}; 200 with the existing direct room of the pair.
pub(super) fn create(
    chat: Arc<Chat>,
    limit: BodyLimits,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "chatrooms" / "new")
        .and(warp::post())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and(body(limit))
        .and_then(|chat: Arc<Chat>, caller: Caller, body: Bytes| async move {
            let b: CreateBody = parse_json(&body)?;
            let request = NewRoom {
                chat_type: b.chat_type,
                chat_name: b.chat_name,
                password: b.password,
                is_directed: b.is_directed,
                target_user_id: b.target_user_id,
            };
            let (room, created) = chat.create_room(caller, request).await?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok::<_, Rejection>(json_reply(status, &room))
        })
}

/// GET /api/chatrooms → the rooms the caller may see: public and protected ones, and
/// every room the caller is in.
pub(super) fn list(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "chatrooms")
        .and(warp::get())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .map(|chat: Arc<Chat>, caller: Caller| {
            json_reply(StatusCode::OK, &chat.visible_rooms(caller))
        })
}

/// GET /api/chatrooms/mine → the caller's rooms.
pub(super) fn mine(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "chatrooms" / "mine")
        .and(warp::get())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .map(|chat: Arc<Chat>, caller: Caller| {
            json_reply(StatusCode::OK, &chat.my_rooms(caller.user_id))
        })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JoinBody {
    chat_seq: Option<RoomId>,
    password: Option<String>,
}

/// PUT /api/chatrooms/join/{roomId} {chatSeq?, password?} → 200 the room and members.
pub(super) fn join(
    chat: Arc<Chat>,
    limit: BodyLimits,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "chatrooms" / "join" / String)
        .and(warp::put())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and(body(limit))
        .and_then(
            |room: String, chat: Arc<Chat>, caller: Caller, body: Bytes| async move {
                let room_id = parse_id(&room, "roomId")?;
                let b: JoinBody = if body.is_empty() {
                    JoinBody::default()
                } else {
                    parse_json(&body)?
                };
                if b.chat_seq.is_some_and(|seq| seq != room_id) {
                    return Err(Error::bad_request(
                        "chat_seq_mismatch",
                        "chatSeq differs from the roomId of the path",
                    )
                    .into());
                }
                let detail = chat.join(caller, room_id, b.password).await?;
                Ok::<_, Rejection>(json_reply(StatusCode::OK, &detail))
            },
        )
}

/// DELETE /api/chatrooms/leave/{roomId} → 204
pub(super) fn leave(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "chatrooms" / "leave" / String)
        .and(warp::delete())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and_then(|room: String, chat: Arc<Chat>, caller: Caller| async move {
            chat.leave(caller, parse_id(&room, "roomId")?)?;
            Ok::<_, Rejection>(no_content())
        })
}

/// GET /api/chatrooms/message/{roomId}/{msgID}/{count} → up to `count` messages
/// older than `msgID` (`-1`: the newest), oldest first.
pub(super) fn history(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "chatrooms" / "message" / String / String / String)
        .and(warp::get())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and_then(|room: String, before: String, count: String, chat: Arc<Chat>, caller: Caller| async move {
            let room_id = parse_id(&room, "roomId")?;
            let before = match before.as_str() {
                "-1" => Before::Newest,
                id => Before::Msg(parse_id(id, "msgID (or -1 for the newest)")?),
            };
            let count = count.parse::<u32>().map_err(|_| {
                Error::bad_request("invalid_count", "count must be a positive integer")
            })?;
            let page = chat.history(caller, room_id, before, count).await?;
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &page))
        })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendBody {
    #[serde(default)]
    content: String,
    client_msg_id: Option<String>,
    attachments: Option<Vec<FileId>>,
}

/// POST /api/chatrooms/{roomId}/messages {content, clientMsgId?, attachments?} → 201
/// the message,
/// which also reaches the room's sockets as a `chat` event; 200 with the original
/// when `clientMsgId` was sent before.
pub(super) fn send(
    chat: Arc<Chat>,
    limit: BodyLimits,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "chatrooms" / String / "messages")
        .and(warp::post())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and(body(limit))
        .and_then(
            |room: String, chat: Arc<Chat>, caller: Caller, body: Bytes| async move {
                let room_id = parse_id(&room, "roomId")?;
                let b: SendBody = parse_json(&body)?;
                let sent = chat
                    .send(
                        caller,
                        room_id,
                        b.content,
                        b.client_msg_id,
                        b.attachments.unwrap_or_default(),
                    )
                    .await?;
                let status = if sent.duplicate {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                Ok::<_, Rejection>(json_reply(status, &sent.view))
            },
        )
}

/// PUT /api/chatrooms/{roomId}/read/{msgId} → 204; moves the caller's read marker
/// forward (never back; a `msgId` beyond the newest message marks the room read).
pub(super) fn mark_read(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "chatrooms" / String / "read" / String)
        .and(warp::put())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and_then(
            |room: String, msg: String, chat: Arc<Chat>, caller: Caller| async move {
                let room_id = parse_id(&room, "roomId")?;
                let msg_id = parse_id(&msg, "msgId")?;
                chat.mark_read(caller, room_id, msg_id)?;
                Ok::<_, Rejection>(no_content())
            },
        )
}
