//! The search index the server does not use: an inverted index kept in sled, one
//! entry per (room, token, message), and the query that walks it newest first. The
//! `search-index --engine sled` scenario measures it against tantivy (the decision:
//! ARCHITECTURE.md, "Search: decision").
//!
//! Key: `room id ‖ token ‖ 0xFF ‖ time ‖ msg id`, big-endian, value empty (Conduit's
//! shape, with the time in front of the id so that the rooms of a user merge newest
//! first). A token is UTF-8, which never holds the byte 0xFF, so a token's entries
//! are exactly the keys under `room id ‖ token ‖ 0xFF`, in time order. The tokens
//! are [`daehwa::search`]'s.
//!
//! The index proposes candidates; the caller checks each against the stored text
//! ([`daehwa::search::Query::matches`]). So the index may hold more than the stored
//! messages (entries of a message lost in a crash, or the old words of an edit
//! whose removal did not reach the disk) but never less.
//!
//! Measured where it would live (BENCHMARKS.md, "Issue 16"), inserting the entries
//! in the flush, one key at a time, cost far more than the messages themselves.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

type StoreResult<T> = Result<T, sled::Error>;

/// Separates a token from the position in a key.
const SEPARATOR: u8 = 0xFF;
/// Bytes of a position: time and msg id.
const POSITION_BYTES: usize = 16;

/// Where an entry is within a room: its message's time (milliseconds) and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub at: u64,
    pub msg: u64,
}

impl Position {
    fn bytes(self) -> [u8; POSITION_BYTES] {
        let mut b = [0; POSITION_BYTES];
        b[..8].copy_from_slice(&self.at.to_be_bytes());
        b[8..].copy_from_slice(&self.msg.to_be_bytes());
        b
    }

    fn of_key(key: &[u8]) -> Option<Self> {
        let tail = key
            .len()
            .checked_sub(POSITION_BYTES)
            .map(|start| &key[start..])?;
        let at = u64::from_be_bytes(tail[..8].try_into().ok()?);
        let msg = u64::from_be_bytes(tail[8..].try_into().ok()?);
        Some(Self { at, msg })
    }
}

/// Where a search stopped, across rooms: results are ordered by
/// `(time, room, msg id)`, newest first, and a page goes on below its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    pub at: u64,
    pub room: u64,
    pub msg: u64,
}

impl Cursor {
    /// The exclusive upper bound of `room`'s positions below this cursor.
    fn bound_in(self, room: u64) -> Position {
        use std::cmp::Ordering::*;
        match room.cmp(&self.room) {
            Less => Position {
                at: self.at.saturating_add(1),
                msg: 0,
            },
            Equal => Position {
                at: self.at,
                msg: self.msg,
            },
            Greater => Position {
                at: self.at,
                msg: 0,
            },
        }
    }
}

fn token_prefix(room: u64, token: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + token.len() + 1 + POSITION_BYTES);
    k.extend_from_slice(&room.to_be_bytes());
    k.extend_from_slice(token.as_bytes());
    k.push(SEPARATOR);
    k
}

fn entry_key(room: u64, token: &str, position: Position) -> Vec<u8> {
    let mut k = token_prefix(room, token);
    k.extend_from_slice(&position.bytes());
    k
}

/// The keys of a message's entries, each inserted with an empty value (one at a
/// time: a running server writes no sled batches, see `Store`'s `Inner`).
pub fn entries(room: u64, position: Position, text: &str) -> impl Iterator<Item = Vec<u8>> {
    daehwa::search::index_tokens(text)
        .into_iter()
        .map(move |token| entry_key(room, &token, position))
}

/// The positions of one room whose entries hold every token, newest first: a
/// leapfrog over the tokens' entries, each step one seek (a sled range's last key).
struct RoomCandidates<'a> {
    tree: &'a sled::Tree,
    room: u64,
    prefixes: Vec<Vec<u8>>,
    /// Positions at or above this are done (exclusive).
    below: Position,
    finished: bool,
}

impl<'a> RoomCandidates<'a> {
    fn new(tree: &'a sled::Tree, room: u64, tokens: &[String], below: Position) -> Self {
        Self {
            tree,
            room,
            prefixes: tokens.iter().map(|t| token_prefix(room, t)).collect(),
            below,
            finished: tokens.is_empty(),
        }
    }

    /// The newest position of token `i` below `bound` (or at it, if `inclusive`).
    fn seek(&self, i: usize, bound: Position, inclusive: bool) -> StoreResult<Option<Position>> {
        let prefix = &self.prefixes[i];
        let mut upper = prefix.clone();
        upper.extend_from_slice(&bound.bytes());
        let last = if inclusive {
            self.tree
                .range(prefix.as_slice()..=upper.as_slice())
                .next_back()
        } else {
            self.tree
                .range(prefix.as_slice()..upper.as_slice())
                .next_back()
        };
        match last {
            None => Ok(None),
            Some(entry) => Ok(Position::of_key(&entry?.0)),
        }
    }

    fn next_position(&mut self) -> StoreResult<Option<Position>> {
        if self.finished {
            return Ok(None);
        }
        let count = self.prefixes.len();
        let Some(mut target) = self.seek(0, self.below, false)? else {
            self.finished = true;
            return Ok(None);
        };
        let mut agreeing = 1;
        let mut i = 1 % count;
        while agreeing < count {
            match self.seek(i, target, true)? {
                None => {
                    self.finished = true;
                    return Ok(None);
                }
                Some(found) if found == target => agreeing += 1,
                Some(found) => {
                    target = found;
                    agreeing = 1;
                }
            }
            i = (i + 1) % count;
        }
        self.below = target;
        Ok(Some(target))
    }
}

/// What one search found.
#[derive(Debug)]
pub struct Found<T> {
    pub hits: Vec<T>,
    /// Where to go on from, when there may be more.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the bench reads first pages; the tests page")
    )]
    pub next: Option<Cursor>,
}

/// Bounds of one search.
#[derive(Debug, Clone, Copy)]
pub struct SearchBounds {
    /// Results wanted.
    pub limit: usize,
    /// Candidates checked at most: a query whose tokens are common but whose text
    /// is rare stops here and hands back a cursor to go on from.
    pub budget: usize,
}

/// Searches `rooms` for messages holding every token, newest first, below
/// `before`. Each candidate is given to `check` (room, msg id), which reads the
/// message and says whether it is a result. Stops at `limit` results or after
/// `budget` candidates.
pub fn search<T>(
    tree: &sled::Tree,
    rooms: &[u64],
    tokens: &[String],
    before: Option<Cursor>,
    bounds: SearchBounds,
    mut check: impl FnMut(u64, u64) -> StoreResult<Option<T>>,
) -> StoreResult<Found<T>> {
    let start = before.unwrap_or(Cursor {
        at: u64::MAX,
        room: u64::MAX,
        msg: u64::MAX,
    });
    let mut streams: Vec<RoomCandidates<'_>> = rooms
        .iter()
        .map(|&room| RoomCandidates::new(tree, room, tokens, start.bound_in(room)))
        .collect();
    // The newest candidate of each room, merged: a max-heap of cursors.
    let mut heads: BinaryHeap<(Cursor, Reverse<usize>)> = BinaryHeap::new();
    for (i, stream) in streams.iter_mut().enumerate() {
        if let Some(p) = stream.next_position()? {
            heads.push((cursor(stream.room, p), Reverse(i)));
        }
    }
    let mut hits = Vec::new();
    let mut checked = 0;
    while let Some((head, Reverse(i))) = heads.pop() {
        if let Some(hit) = check(head.room, head.msg)? {
            hits.push(hit);
        }
        checked += 1;
        if let Some(p) = streams[i].next_position()? {
            heads.push((cursor(streams[i].room, p), Reverse(i)));
        }
        if hits.len() >= bounds.limit || checked >= bounds.budget {
            let next = (!heads.is_empty()).then_some(head);
            return Ok(Found { hits, next });
        }
    }
    Ok(Found { hits, next: None })
}

fn cursor(room: u64, p: Position) -> Cursor {
    Cursor {
        at: p.at,
        room,
        msg: p.msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daehwa::search::Query;
    use std::collections::HashMap;

    struct Fixture {
        _dir: tempfile::TempDir,
        tree: sled::Tree,
        texts: HashMap<(u64, u64), String>,
    }

    impl Fixture {
        fn new(messages: &[(u64, u64, u64, &str)]) -> Self {
            let dir = tempfile::TempDir::new().expect("tmp");
            let db = sled::Config::new()
                .path(dir.path())
                .temporary(true)
                .open()
                .expect("db");
            let tree = db.open_tree("index").expect("tree");
            let mut texts = HashMap::new();
            for &(room, msg, at, text) in messages {
                for k in entries(room, Position { at, msg }, text) {
                    tree.insert(k, Vec::new()).expect("insert");
                }
                texts.insert((room, msg), text.to_owned());
            }
            Self {
                _dir: dir,
                tree,
                texts,
            }
        }

        fn search(
            &self,
            rooms: &[u64],
            q: &str,
            before: Option<Cursor>,
            limit: usize,
        ) -> Found<(u64, u64)> {
            let query = Query::parse(q).expect("query");
            let bounds = SearchBounds {
                limit,
                budget: 1000,
            };
            search(
                &self.tree,
                rooms,
                &query.tokens(),
                before,
                bounds,
                |room, msg| {
                    Ok(self
                        .texts
                        .get(&(room, msg))
                        .filter(|text| query.matches(text))
                        .map(|_| (room, msg)))
                },
            )
            .expect("search")
        }
    }

    #[test]
    fn finds_all_words_newest_first_across_rooms() {
        let fixture = Fixture::new(&[
            (1, 1, 100, "학교에 갔다"),
            (1, 2, 300, "Deploy the API"),
            (2, 1, 200, "오늘 학교는 쉬어요"),
            (2, 2, 400, "the api deploy failed at 학교"),
            (3, 1, 500, "학교 deploy"),
        ]);
        assert_eq!(
            fixture.search(&[1, 2], "학교", None, 10).hits,
            [(2, 2), (2, 1), (1, 1)]
        );
        assert_eq!(
            fixture.search(&[1, 2], "deploy api", None, 10).hits,
            [(2, 2), (1, 2)]
        );
        assert_eq!(
            fixture.search(&[1, 2, 3], "deploy 학교", None, 10).hits,
            [(3, 1), (2, 2)]
        );
        assert!(fixture.search(&[1, 2], "nothing", None, 10).hits.is_empty());
        assert_eq!(fixture.search(&[1], "갔다", None, 10).hits, [(1, 1)]);
    }

    #[test]
    fn pages_go_on_below_their_cursor_without_gaps_or_repeats() {
        // Three rooms, times that tie across rooms.
        let mut messages = Vec::new();
        let texts: Vec<String> = (0..30).map(|i| format!("word 학교 number {i}")).collect();
        for (i, text) in texts.iter().enumerate() {
            let i = i as u64;
            messages.push((1 + i % 3, 1 + i / 3, 1000 + i / 2, text.as_str()));
        }
        let fixture = Fixture::new(&messages);
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = fixture.search(&[1, 2, 3], "학교 word", before, 4);
            seen.extend(page.hits);
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        let mut expected: Vec<(u64, u64, u64)> = messages
            .iter()
            .map(|&(room, msg, at, _)| (at, room, msg))
            .collect();
        expected.sort();
        expected.reverse();
        let expected: Vec<(u64, u64)> = expected.into_iter().map(|(_, r, m)| (r, m)).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn removed_entries_are_not_found_and_a_budget_hands_back_a_cursor() {
        let fixture = Fixture::new(&[
            (1, 1, 10, "교에서 학교"),
            (1, 2, 20, "학교 에서 교에"),
            (1, 3, 30, "학교에서"),
        ]);
        // The bigrams of 학교에서 are in all three; the text is in one.
        assert_eq!(fixture.search(&[1], "학교에서", None, 10).hits, [(1, 3)]);
        for k in entries(1, Position { at: 30, msg: 3 }, "학교에서") {
            fixture.tree.remove(k).expect("remove");
        }
        assert!(fixture.search(&[1], "학교에서", None, 10).hits.is_empty());

        let query = Query::parse("학교").expect("query");
        let found = search(
            &fixture.tree,
            &[1],
            &query.tokens(),
            None,
            SearchBounds {
                limit: 10,
                budget: 1,
            },
            |_, _| Ok(None::<()>),
        )
        .expect("search");
        assert!(found.hits.is_empty());
        assert_eq!(
            found.next,
            Some(Cursor {
                at: 20,
                room: 1,
                msg: 2
            })
        );
    }
}
