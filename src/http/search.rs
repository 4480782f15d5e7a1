//! Search over HTTP: `GET /api/search`.

use std::sync::Arc;

use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{caller, json_reply, parse_id, with_chat};
use crate::chat::search::SearchRequest;
use crate::chat::{Caller, Chat};
use crate::error::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    q: Option<String>,
    room: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// GET /api/search?q=TEXT&room=ID&before=CURSOR&limit=N → 200 {results: [Message],
/// nextBefore, terms}: the caller's rooms' messages that match, newest first.
pub(super) fn search(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "search")
        .and(warp::get())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and_then(
            |chat: Arc<Chat>, caller: Caller, query: String| async move {
                let query: SearchQuery = serde_urlencoded::from_str(&query).map_err(|_| {
                    Error::bad_request("invalid_query", "the query string is malformed")
                })?;
                let room = match query.room.as_deref() {
                    None => None,
                    Some(text) => Some(parse_id(text, "room")?),
                };
                let limit = match query.limit.as_deref() {
                    None => None,
                    Some(text) => Some(text.parse::<usize>().map_err(|_| {
                        Error::bad_request("invalid_limit", "limit must be a positive integer")
                    })?),
                };
                let request = SearchRequest {
                    q: query.q.as_deref().unwrap_or(""),
                    room,
                    before: query.before.as_deref(),
                    limit,
                };
                let page = chat.search(caller, request).await?;
                Ok::<_, Rejection>(json_reply(StatusCode::OK, &page))
            },
        )
}
