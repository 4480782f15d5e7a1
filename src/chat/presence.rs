//! Presence and typing: what is never stored.
//!
//! Presence: a user is online from the opening of their first session (any
//! transport) until `server.presence_grace` after their last one closed, so that a
//! reload (close, then open at once) does not flap. `presence` events go to the
//! users who share a room with them (except those who block them); the members list
//! says who is online.
//!
//! Typing: a member's `typing` frame tells the room's other members (except those
//! who block them), at most once per user and room every [`TYPING_INTERVAL`].

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::moderation::check_not_muted;
use super::view::{Event, PresenceEvent, PresenceStatus, TypingEvent};
use super::{Caller, Chat};
use crate::error::{Error, Result};
use crate::model::{RoomId, UserId};

/// The shortest time between two `typing` events of one user in one room.
pub const TYPING_INTERVAL: Duration = Duration::from_secs(2);

/// Who is online.
#[derive(Default)]
pub(super) struct Presence {
    users: HashMap<UserId, Online>,
}

struct Online {
    sessions: usize,
    /// When the last session closed; `offline` is announced `grace` after it.
    since_last: Option<Instant>,
}

/// When each member last typed in each room: keyed by memberships only (checked
/// before an insert), pruned by housekeeping.
pub(super) type TypingTimes = HashMap<(UserId, RoomId), Instant>;

impl Chat {
    fn presence(&self) -> std::sync::MutexGuard<'_, Presence> {
        self.presence.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `user` is online now (a session open, or closed within the grace).
    pub(super) fn is_online(&self, user: UserId) -> bool {
        self.presence().users.contains_key(&user)
    }

    /// A session of `user` opened: online, unless they already were.
    pub fn session_opened(&self, user: UserId) {
        let announce = {
            let mut presence = self.presence();
            // A user still in their grace was never announced offline: no event.
            let new = !presence.users.contains_key(&user);
            let online = presence.users.entry(user).or_insert(Online {
                sessions: 0,
                since_last: None,
            });
            online.sessions += 1;
            online.since_last = None;
            new
        };
        if announce {
            self.publish_presence(user, PresenceStatus::Online);
        }
    }

    /// A session of `user` closed; the last one starts the grace.
    pub fn session_closed(&self, user: UserId) {
        let mut presence = self.presence();
        if let Some(online) = presence.users.get_mut(&user) {
            online.sessions = online.sessions.saturating_sub(1);
            if online.sessions == 0 {
                online.since_last = Some(Instant::now());
            }
        }
    }

    /// Announces `offline` for users whose last session closed `grace` ago or more,
    /// and forgets them. Called by a job; how many went offline.
    pub fn expire_presence(&self, grace: Duration) -> usize {
        let gone: Vec<UserId> = {
            let mut presence = self.presence();
            let gone: Vec<UserId> = presence
                .users
                .iter()
                .filter(|(_, o)| {
                    o.sessions == 0 && o.since_last.is_some_and(|t| t.elapsed() >= grace)
                })
                .map(|(u, _)| *u)
                .collect();
            for user in &gone {
                presence.users.remove(user);
            }
            gone
        };
        for &user in &gone {
            self.publish_presence(user, PresenceStatus::Offline);
        }
        gone.len()
    }

    /// Tells the users who share a room with `user` (and do not block them).
    fn publish_presence(&self, user: UserId, status: PresenceStatus) {
        let directory = self.directory();
        let mut audience: HashSet<UserId> = HashSet::new();
        for room_id in directory.user_rooms.get(&user).into_iter().flatten() {
            if let Some(room) = directory.rooms.get(room_id) {
                audience.extend(room.members.keys().copied());
            }
        }
        audience.remove(&user);
        audience.retain(|&other| !directory.blocks(other, user));
        if audience.is_empty() {
            return;
        }
        self.bus.publish(
            audience,
            Event::Presence(PresenceEvent {
                user_id: user,
                status,
            }),
        );
    }

    /// A member is typing in a room: the other members hear of it, at most once per
    /// [`TYPING_INTERVAL`]; a `typing` frame sooner is refused (`rate_limited`).
    pub fn typing(&self, caller: Caller, room_id: RoomId) -> Result<()> {
        let directory = self.directory();
        let room = directory.joined(room_id, caller.user_id)?;
        check_not_muted(room, caller.user_id)?;
        {
            let mut times = self.typing_times.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if let Some(last) = times.get(&(caller.user_id, room_id)) {
                let since = now.saturating_duration_since(*last);
                if since < TYPING_INTERVAL {
                    let wait = TYPING_INTERVAL - since;
                    return Err(Error::RateLimited {
                        code: "rate_limited",
                        message: format!(
                            "typing: at most once every {} s per room; retry in {} ms",
                            TYPING_INTERVAL.as_secs(),
                            wait.as_millis()
                        ),
                        retry_after_ms: wait.as_millis() as u64,
                    });
                }
            }
            times.insert((caller.user_id, room_id), now);
        }
        let user = caller.user_id;
        let audience = room
            .members
            .keys()
            .copied()
            .filter(|&m| m != user && !directory.blocks(m, user));
        self.bus.publish(
            audience,
            Event::Typing(TypingEvent {
                chat_seq: room_id,
                user_id: user,
                username: self.username(user),
            }),
        );
        Ok(())
    }

    /// Forgets typing times older than the interval. Called by housekeeping.
    pub(super) fn prune_typing(&self) {
        let mut times = self.typing_times.lock().unwrap_or_else(|p| p.into_inner());
        times.retain(|_, at| at.elapsed() < TYPING_INTERVAL);
    }
}
