//! The resume string a reconnecting client sends (`ROOM:LASTMSGID:LASTSEQ,…` or the
//! older `ROOM:LASTMSGID,…`; the `resume` query parameter of `/ws` and the `resume`
//! field of socket.io's handshake `auth`).

use std::collections::HashMap;

use crate::chat::{Caller, Chat, ResumeFrom};
use crate::error::Error;
use crate::model::{MsgId, RoomId, Seq};

/// Pairs a resume may name beyond the user's rooms: rooms the client has not yet
/// learnt it left (a kick while it was away), each answered with an `error` event.
pub const RESUME_EXTRA_PAIRS: usize = 32;

fn invalid(message: String) -> Error {
    Error::bad_request("invalid_resume", message)
}

/// Parses one entry: `ROOM:LASTMSGID:LASTSEQ` (every change after `LASTSEQ`;
/// `LASTMSGID` is not used) or `ROOM:LASTMSGID` (new messages after it).
fn parse_entry(entry: &str) -> Result<(RoomId, ResumeFrom), Error> {
    let numbers: Vec<&str> = entry.split(':').collect();
    let malformed = || {
        invalid(format!(
            "resume takes ROOM:LASTMSGID:LASTSEQ (or ROOM:LASTMSGID) entries separated by commas, each part a whole number, not {entry:?}"
        ))
    };
    match numbers[..] {
        [room, last] => match (room.parse::<RoomId>(), last.parse::<MsgId>()) {
            (Ok(room), Ok(last)) => Ok((room, ResumeFrom::Msg(last))),
            _ => Err(malformed()),
        },
        [room, last, seq] => match (
            room.parse::<RoomId>(),
            last.parse::<MsgId>(),
            seq.parse::<Seq>(),
        ) {
            (Ok(room), Ok(_), Ok(seq)) => Ok((room, ResumeFrom::Seq(seq))),
            _ => Err(malformed()),
        },
        _ => Err(malformed()),
    }
}

/// Parses a resume string: entries separated by commas, e.g. `3:120:131,7:0:0`, or
/// in the older form `3:120,7:0`. A room named twice counts once, from the earlier
/// point (nothing is skipped; a change number wins over a message id); more rooms
/// than `caller` is in (plus [`RESUME_EXTRA_PAIRS`]) are refused, so that one
/// reconnect cannot ask for a replay per entry without bound.
pub fn parse_resume(
    chat: &Chat,
    caller: Caller,
    text: &str,
) -> Result<Vec<(RoomId, ResumeFrom)>, Error> {
    let max = chat.room_count(caller.user_id) + RESUME_EXTRA_PAIRS;
    let mut pairs: Vec<(RoomId, ResumeFrom)> = Vec::new();
    let mut index: HashMap<RoomId, usize> = HashMap::new();
    for pair in text.split(',').filter(|pair| !pair.is_empty()) {
        let (room, from) = parse_entry(pair)?;
        match index.get(&room) {
            Some(&at) => pairs[at].1 = earlier(pairs[at].1, from),
            None => {
                if pairs.len() == max {
                    return Err(invalid(format!(
                        "resume names more rooms than you are in ({max} at most)"
                    )));
                }
                index.insert(room, pairs.len());
                pairs.push((room, from));
            }
        }
    }
    Ok(pairs)
}

/// The earlier of two points in a room, for a room named twice.
fn earlier(a: ResumeFrom, b: ResumeFrom) -> ResumeFrom {
    match (a, b) {
        (ResumeFrom::Msg(x), ResumeFrom::Msg(y)) => ResumeFrom::Msg(x.min(y)),
        (ResumeFrom::Seq(x), ResumeFrom::Seq(y)) => ResumeFrom::Seq(x.min(y)),
        (ResumeFrom::Seq(x), ResumeFrom::Msg(_)) | (ResumeFrom::Msg(_), ResumeFrom::Seq(x)) => {
            ResumeFrom::Seq(x)
        }
    }
}
