//! Changes to messages over HTTP: edit, delete, reactions; and the caller's
//! mentions.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{
    body, caller, json_reply, no_content, parse_id, parse_json, parse_limit, with_chat, BodyLimits,
};
use crate::chat::{Caller, Chat};
use crate::error::Error;
use crate::model::{MsgId, RoomId};

fn ids(room: &str, msg: &str) -> Result<(RoomId, MsgId), Error> {
    Ok((parse_id(room, "roomId")?, parse_id(msg, "msgId")?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditBody {
    content: String,
}

/// PATCH /api/chatrooms/{roomId}/messages/{msgId} {content} → 200 the message, with
/// `editedAt`; the room hears `message edited`.
pub(super) fn edit(
    chat: Arc<Chat>,
    limit: BodyLimits,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "chatrooms" / String / "messages" / String)
        .and(warp::patch())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and(body(limit))
        .and_then(
            |room: String, msg: String, chat: Arc<Chat>, caller: Caller, body: Bytes| async move {
                let (room, msg) = ids(&room, &msg)?;
                let b: EditBody = parse_json(&body)?;
                let view = chat.edit_message(caller, room, msg, b.content).await?;
                Ok::<_, Rejection>(json_reply(StatusCode::OK, &view))
            },
        )
}

/// DELETE /api/chatrooms/{roomId}/messages/{msgId} → 204; the room hears
/// `message deleted`.
pub(super) fn delete(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "chatrooms" / String / "messages" / String)
        .and(warp::delete())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and_then(
            |room: String, msg: String, chat: Arc<Chat>, caller: Caller| async move {
                let (room, msg) = ids(&room, &msg)?;
                chat.delete_message(caller, room, msg).await?;
                Ok::<_, Rejection>(no_content())
            },
        )
}

/// Decodes a percent-encoded path segment (the emoji of a reaction).
fn percent_decoded(segment: &str) -> Result<String, Error> {
    let invalid = || {
        Error::bad_request(
            "invalid_emoji",
            "the emoji is not valid percent-encoded UTF-8",
        )
    };
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3).ok_or_else(invalid)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| invalid())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid())
}

/// PUT or DELETE /api/chatrooms/{roomId}/messages/{msgId}/reactions/{emoji} → 204,
/// idempotent; the room hears `reaction` when something changed.
pub(super) fn react(
    chat: Arc<Chat>,
    added: bool,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "chatrooms" / String / "messages" / String / "reactions" / String)
        .map(move |room, msg, emoji| (room, msg, emoji, added))
        .untuple_one()
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and_then(
            |room: String,
             msg: String,
             emoji: String,
             added: bool,
             chat: Arc<Chat>,
             caller: Caller| async move {
                let (room, msg) = ids(&room, &msg)?;
                let emoji = percent_decoded(&emoji)?;
                chat.react(caller, room, msg, &emoji, added).await?;
                Ok::<_, Rejection>(no_content())
            },
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MentionsQuery {
    before: Option<String>,
    limit: Option<String>,
}

/// GET /api/users/me/mentions?before=CURSOR&limit=N → 200 {mentions: [Message],
/// nextBefore}: the messages that mention the caller, newest first.
pub(super) fn mentions(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "users" / "me" / "mentions")
        .and(warp::get())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and(warp::query::<MentionsQuery>())
        .and_then(
            |chat: Arc<Chat>, caller: Caller, query: MentionsQuery| async move {
                let limit = parse_limit(query.limit.as_deref())?;
                let page = chat.mentions_of(caller, query.before.as_deref(), limit)?;
                Ok::<_, Rejection>(json_reply(StatusCode::OK, &page))
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_segments_are_percent_decoded() {
        assert_eq!(percent_decoded("%F0%9F%91%8D").expect("decoded"), "👍");
        assert_eq!(percent_decoded(":tada:").expect("decoded"), ":tada:");
        for bad in ["%F0%9F", "%zz", "%4"] {
            assert!(percent_decoded(bad).is_err(), "{bad}");
        }
    }
}
