//! The resume string a reconnecting client sends (`ROOM:LASTMSGID,…`, the `resume`
//! query parameter of `/ws` and the `resume` field of socket.io's handshake `auth`).

use std::collections::HashMap;

use crate::chat::{Caller, Chat};
use crate::error::Error;
use crate::model::{MsgId, RoomId};

/// Pairs a resume may name beyond the user's rooms: rooms the client has not yet
/// learnt it left (a kick while it was away), each answered with an `error` event.
pub const RESUME_EXTRA_PAIRS: usize = 32;

fn invalid(message: String) -> Error {
    Error::bad_request("invalid_resume", message)
}

/// Parses a resume string: `ROOM:LASTMSGID` pairs separated by commas, e.g.
/// `3:120,7:0`. A room named twice counts once, from the lower `msgId` (nothing is
/// skipped); more rooms than `caller` is in (plus [`RESUME_EXTRA_PAIRS`]) are
/// refused, so that one reconnect cannot ask for a replay per pair without bound.
pub fn parse_resume(
    chat: &Chat,
    caller: Caller,
    text: &str,
) -> Result<Vec<(RoomId, MsgId)>, Error> {
    let max = chat.room_count(caller.user_id) + RESUME_EXTRA_PAIRS;
    let mut pairs: Vec<(RoomId, MsgId)> = Vec::new();
    let mut index: HashMap<RoomId, usize> = HashMap::new();
    for pair in text.split(',').filter(|pair| !pair.is_empty()) {
        let (room, last) = pair.split_once(':').ok_or_else(|| {
            invalid(format!(
                "resume takes ROOM:LASTMSGID pairs separated by commas, not {pair:?}"
            ))
        })?;
        let (Ok(room), Ok(last)) = (room.parse::<RoomId>(), last.parse::<MsgId>()) else {
            return Err(invalid(format!(
                "resume pair {pair:?} is not two whole numbers"
            )));
        };
        match index.get(&room) {
            Some(&at) => pairs[at].1 = pairs[at].1.min(last),
            None => {
                if pairs.len() == max {
                    return Err(invalid(format!(
                        "resume names more rooms than you are in ({max} at most)"
                    )));
                }
                index.insert(room, pairs.len());
                pairs.push((room, last));
            }
        }
    }
    Ok(pairs)
}
