//! Search: what a user may find (the rooms they are a member of now, never the
//! messages of users they block), the bounds of a query and of a page, and the
//! cursor that pages go on from. The words are [`crate::search`]'s, the index
//! [`crate::indexer`]'s.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use super::view::MessageView;
use super::{Caller, Chat};
use crate::error::{Error, Result};
use crate::indexer::{text_of, Cursor, SearchIndex};
use crate::model::{Message, MsgId, RoomId, Seq};
use crate::search::{Query, QueryError};
use crate::store::Store;

/// Results per page when the client does not say.
pub const SEARCH_PAGE_DEFAULT: usize = 20;
/// Candidates one request checks at most: a query whose words are common but whose
/// text is rare answers with fewer results and a cursor to go on from, instead of
/// reading the whole history.
pub const SEARCH_SCAN_MAX: usize = 2000;

/// A page of `GET /api/search`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage {
    pub results: Vec<MessageView>,
    /// The `before` of the next (older) page; `null` at the end.
    pub next_before: Option<String>,
    /// The query's terms as they are compared (normalized, lower case), for a
    /// client to highlight.
    pub terms: Vec<String>,
}

/// What a search asks for.
#[derive(Debug, Default)]
pub struct SearchRequest<'a> {
    pub q: &'a str,
    pub room: Option<RoomId>,
    /// A `nextBefore`, or (with `room`) a msg id.
    pub before: Option<&'a str>,
    pub limit: Option<usize>,
}

fn bad_cursor() -> Error {
    Error::bad_request(
        "invalid_cursor",
        "before is a nextBefore from an earlier page (or, with room, a msgId)",
    )
}

fn parse_cursor(text: &str) -> Result<Cursor> {
    match text.split('-').collect::<Vec<_>>()[..] {
        [at, room, msg] => Ok(Cursor {
            at: at.parse().map_err(|_| bad_cursor())?,
            room: room.parse().map_err(|_| bad_cursor())?,
            msg: msg.parse().map_err(|_| bad_cursor())?,
        }),
        _ => Err(bad_cursor()),
    }
}

fn cursor_text(cursor: &Cursor) -> String {
    format!("{}-{}-{}", cursor.at, cursor.room, cursor.msg)
}

impl Chat {
    /// Sets the search index (the server's; commands that only open the data
    /// directory have none, and a search then answers 503).
    pub fn set_search_index(&self, index: Arc<SearchIndex>) {
        let _ = self.search_index.set(index);
    }

    /// `GET /api/search`: the caller's rooms' messages that match `q`, newest first.
    pub async fn search(&self, caller: Caller, request: SearchRequest<'_>) -> Result<SearchPage> {
        let max = self.settings.limits.search_page_max;
        let limit = request.limit.unwrap_or(SEARCH_PAGE_DEFAULT.min(max));
        if limit == 0 || limit > max {
            return Err(Error::bad_request(
                "invalid_limit",
                format!("limit must be between 1 and {max}"),
            ));
        }
        let query = Query::parse(request.q).map_err(|e| {
            let message = match e {
                QueryError::Empty => "q must hold a word to search for".to_owned(),
                other => other.to_string(),
            };
            Error::bad_request("invalid_query", message)
        })?;
        let (rooms, blocked) = {
            let directory = self.directory();
            let rooms: Vec<RoomId> = match request.room {
                Some(room) => {
                    directory.joined(room, caller.user_id)?;
                    vec![room]
                }
                None => directory
                    .user_rooms
                    .get(&caller.user_id)
                    .map(|rooms| rooms.iter().copied().collect())
                    .unwrap_or_default(),
            };
            let blocked = directory
                .blocks
                .get(&caller.user_id)
                .cloned()
                .unwrap_or_default();
            (rooms, blocked)
        };
        let include_buffer = self.include_buffer();
        let before = match (request.before, request.room) {
            (None, _) => None,
            (Some(text), Some(room)) if !text.contains('-') => {
                // A msg id of the room: below that message.
                let msg_id: MsgId = text.parse().map_err(|_| bad_cursor())?;
                let message = self
                    .store
                    .message(room, msg_id, include_buffer)?
                    .ok_or_else(bad_cursor)?;
                Some(Cursor::of(&message))
            }
            (Some(text), _) => Some(parse_cursor(text)?),
        };
        let index = self
            .search_index
            .get()
            .cloned()
            .ok_or_else(|| Error::Unavailable {
                code: "search_unavailable",
                message: "search is not running".into(),
            })?;
        let store = self.store.clone();
        let tail = self.settings.limits.search_tail_changes;
        let terms: Vec<String> = query.terms().map(str::to_owned).collect();
        let found = tokio::task::spawn_blocking(move || {
            find(
                &store,
                &index,
                &rooms,
                &query,
                before,
                limit,
                tail,
                include_buffer,
                |message| !blocked.contains(&message.sender_id),
            )
        })
        .await
        .map_err(|_| Error::Internal)??;
        Ok(SearchPage {
            results: self.views_for(caller, found.hits),
            next_before: found.next.as_ref().map(cursor_text),
            terms,
        })
    }
}

/// A page of messages found, and where the next one starts.
struct Found {
    hits: Vec<Arc<Message>>,
    next: Option<Cursor>,
}

/// The messages of `rooms` that match `query` as they are now, newest first below
/// `before`, at most `limit`: the index proposes candidates (at most
/// [`SEARCH_SCAN_MAX`]), the tail of each room's log that the index does not hold
/// yet (its newest `tail` changes at most; the write-behind buffer's changes included unless `include_buffer` is
/// false) adds its own, and the message as it is now decides: its text matches the
/// query and `accept` takes it.
#[allow(clippy::too_many_arguments)]
fn find(
    store: &Store,
    index: &SearchIndex,
    rooms: &[RoomId],
    query: &Query,
    before: Option<Cursor>,
    limit: usize,
    tail: usize,
    include_buffer: bool,
    accept: impl Fn(&Message) -> bool,
) -> Result<Found> {
    let matches = |message: &Message| {
        text_of(message).is_some_and(|text| query.matches(text)) && accept(message)
    };
    let below = |c: &Cursor| before.is_none_or(|b| *c < b);
    // The marks first, then the index's searcher (see `crate::indexer`).
    let marks = index.marks();
    let tokens = query.tokens();
    let mut checked: HashMap<Cursor, Option<Arc<Message>>> = HashMap::new();
    let mut fetch = (limit + 1) * 2;
    // Where the index's candidates stopped: results are complete only above it.
    let (mut hits, complete_from) = loop {
        let candidates = index
            .candidates(rooms, &tokens, before, fetch)
            .map_err(|e| {
                tracing::error!(error = %e, "search index query failed");
                Error::Internal
            })?;
        let exhausted = candidates.len() < fetch;
        let mut hits = Vec::new();
        for cursor in candidates.iter().filter(|c| below(c)) {
            let found = match checked.get(cursor) {
                Some(found) => found.clone(),
                None => {
                    let message = store
                        .message(
                            RoomId::new(cursor.room),
                            MsgId::new(cursor.msg),
                            include_buffer,
                        )?
                        .filter(|m| matches(m));
                    checked.insert(*cursor, message.clone());
                    message
                }
            };
            hits.extend(found);
        }
        if exhausted {
            break (hits, None);
        }
        if hits.len() > limit || fetch >= SEARCH_SCAN_MAX {
            break (hits, candidates.last().copied());
        }
        fetch = (fetch * 4).min(SEARCH_SCAN_MAX);
    };
    let in_range = |c: &Cursor| below(c) && complete_from.is_none_or(|from| *c >= from);
    // What the index does not hold yet: each room's log after its mark (its newest
    // part, bounded), and the buffer.
    let mut seen: HashSet<(RoomId, MsgId)> = hits.iter().map(|m| (m.room_id, m.msg_id)).collect();
    for &room in rooms {
        let mark = marks.get(&room).copied().unwrap_or(Seq::new(0));
        let last = store.last_seq(room)?;
        let after = Seq::new(mark.get().max(last.get().saturating_sub(tail as u64)));
        for change in store.changes_after(room, after, tail.saturating_mul(2), include_buffer)? {
            let message = change.message;
            if in_range(&Cursor::of(&message))
                && matches(&message)
                && seen.insert((message.room_id, message.msg_id))
            {
                hits.push(message);
            }
        }
    }
    hits.sort_by_key(|m| std::cmp::Reverse(Cursor::of(m)));
    let next = if hits.len() > limit {
        hits.truncate(limit);
        hits.last().map(|m| Cursor::of(m))
    } else {
        complete_from
    };
    Ok(Found { hits, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_go_there_and_back() {
        let cursor = Cursor {
            at: 1_780_000_000_123,
            room: 4,
            msg: 99,
        };
        assert_eq!(parse_cursor(&cursor_text(&cursor)).expect("parse"), cursor);
        for bad in ["", "1-2", "a-b-c", "1-2-3-4", "-1-2-3"] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }
}
