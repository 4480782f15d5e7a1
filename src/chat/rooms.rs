//! Rooms and membership: create, list, join, leave; direct rooms between two users.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::accounts::check_password;
use super::password;
use super::view::{
    timestamp, ChatType, Event, JoinEvent, LeaveEvent, LeaveReason, MemberView, RoleEvent,
    RoomDetail, RoomView,
};
use super::{rate_limited, Caller, Chat, Directory, RoomEntry, Sequence};
use crate::error::{Error, Result};
use crate::model::*;

pub const ROOM_NAME_MAX_CHARS: usize = 64;

/// A request to create a room, as the HTTP body gives it.
#[derive(Debug, Clone)]
pub struct NewRoom {
    pub chat_type: Option<ChatType>,
    pub chat_name: Option<String>,
    pub password: Option<String>,
    pub is_directed: bool,
    pub target_user_id: Option<UserId>,
}

/// Checks a room name. Control and format characters (bidirectional overrides,
/// zero-width spaces and joiners) are refused: they make one name look like
/// another, or reorder the text around it.
pub(super) fn check_room_name(name: &str) -> Result<String> {
    let name = name.trim();
    let hidden = |c: char| {
        c.is_control()
            || matches!(
                c.general_category(),
                GeneralCategory::Format
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
            )
    };
    if name.is_empty() || name.chars().count() > ROOM_NAME_MAX_CHARS || name.chars().any(hidden) {
        return Err(Error::bad_request(
            "invalid_chat_name",
            format!(
                "chatName is 1 to {ROOM_NAME_MAX_CHARS} characters, without control or format (invisible) characters"
            ),
        ));
    }
    Ok(name.to_owned())
}

/// The 429 of a user who created too many rooms.
fn too_many_rooms(chat: &Chat, refusal: super::Refusal) -> Error {
    rate_limited(
        "too_many_rooms",
        format!(
            "too many new rooms: at most {} per hour",
            chat.settings.limits.rooms_per_hour
        ),
        refusal,
    )
}

/// Refuses a user whose ban on the room is in force.
fn check_not_banned(entry: &RoomEntry, user: UserId) -> Result<()> {
    match entry.ban_of(user, now_millis()) {
        Some(ban) => Err(Error::forbidden(
            "banned",
            match ban.until {
                Some(until) => format!("you are banned from this room until {}", timestamp(until)),
                None => "you are banned from this room".to_owned(),
            },
        )),
        None => Ok(()),
    }
}

impl Chat {
    /// The room as everyone sees it (for events sent to several users).
    pub(super) fn room_view(&self, id: RoomId, entry: &RoomEntry) -> RoomView {
        self.view_of(id, entry, None)
    }

    /// The room as `viewer` sees it: with their read marker and unread count.
    pub(super) fn room_view_for(&self, id: RoomId, entry: &RoomEntry, viewer: UserId) -> RoomView {
        self.view_of(id, entry, Some(viewer))
    }

    fn view_of(&self, id: RoomId, entry: &RoomEntry, viewer: Option<UserId>) -> RoomView {
        // One look at the sequence, so that the count agrees with `lastMsgId`.
        let (last_msg_id, last_at, last_seq, read) = {
            let sequence = entry.sequence();
            (
                sequence.last,
                sequence.last_at,
                sequence.last_seq,
                viewer.map(|v| sequence.read_state(v)),
            )
        };
        RoomView {
            chat_seq: id,
            chat_name: entry.record.name.clone(),
            chat_type: entry.record.room_type.into(),
            is_directed: entry.record.direct.is_some(),
            owner_id: entry.owner(),
            member_count: entry.members.len(),
            last_msg_id,
            last_message_at: last_at.map(timestamp),
            last_seq,
            read,
        }
    }

    pub(super) fn member_views(&self, entry: &RoomEntry) -> Vec<MemberView> {
        let mut members: Vec<_> = entry
            .members
            .iter()
            .map(|(id, m)| (m.role, m.joined_at, *id))
            .collect();
        members.sort();
        members
            .into_iter()
            .map(|(role, _, user_id)| MemberView {
                user_id,
                username: self.username(user_id),
                role: role.into(),
                online: self.is_online(user_id),
            })
            .collect()
    }

    /// Creates a room owned by the caller, or returns the existing direct room of the
    /// pair. The `bool` says whether the room is new.
    pub async fn create_room(&self, caller: Caller, request: NewRoom) -> Result<(RoomView, bool)> {
        if request.is_directed {
            return self.open_direct_room(caller, request);
        }
        let chat_type = request.chat_type.ok_or_else(|| {
            Error::bad_request(
                "invalid_chat_type",
                "chatType is required: public, protected or private",
            )
        })?;
        let name = check_room_name(request.chat_name.as_deref().unwrap_or(""))?;
        self.limits
            .room_creations
            .take(&caller.user_id)
            .map_err(|refusal| too_many_rooms(self, refusal))?;
        let password = request.password.filter(|p| !p.is_empty());
        let password_hash = match (chat_type, password) {
            (ChatType::Protected, Some(password)) => {
                check_password(&password, "invalid_password")?;
                Some(self.hashing.hash(password, password::Pool::Other).await?)
            }
            (ChatType::Protected, None) => {
                return Err(Error::bad_request(
                    "password_required",
                    "a protected room needs a password",
                ))
            }
            (_, Some(_)) => {
                return Err(Error::bad_request(
                    "unexpected_password",
                    "only protected rooms have a password",
                ))
            }
            (_, None) => None,
        };
        if request.target_user_id.is_some() {
            return Err(Error::bad_request(
                "unexpected_target",
                "targetUserId is only for direct rooms (isDirected: true)",
            ));
        }
        let record = Room {
            name,
            room_type: chat_type.into(),
            password_hash,
            direct: None,
            created_by: caller.user_id,
            created_at: now_millis(),
            closed: false,
        };
        let mut directory = self.directory_mut();
        let (id, view) = self.insert_room(&mut directory, record, &[caller.user_id])?;
        if chat_type == ChatType::Private {
            self.bus
                .publish([caller.user_id], Event::NewRoom(view.clone()));
        } else {
            self.bus.publish_all(Event::NewRoom(view.clone()));
        }
        tracing::info!(room_id = %id, user_id = %caller.user_id, "room created");
        Ok((self.caller_view(&directory, id, caller, view), true))
    }

    fn open_direct_room(&self, caller: Caller, request: NewRoom) -> Result<(RoomView, bool)> {
        let target = request.target_user_id.ok_or_else(|| {
            Error::bad_request("target_required", "a direct room needs targetUserId")
        })?;
        if target == caller.user_id {
            return Err(Error::bad_request(
                "invalid_target",
                "a direct room is between two different users",
            ));
        }
        if request.password.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(Error::bad_request(
                "unexpected_password",
                "direct rooms have no password",
            ));
        }
        let target_name = self.user(target)?.username;
        let pair = (caller.user_id.min(target), caller.user_id.max(target));
        let mut directory = self.directory_mut();
        if directory.blocks(target, caller.user_id) {
            return Err(Error::forbidden("blocked", "this user has blocked you"));
        }
        if let Some(&id) = directory.direct.get(&pair) {
            // Members of a direct room never leave it, they hide it: opening it
            // again shows it again, with its history.
            let Some(member) = directory
                .rooms
                .get_mut(&id)
                .and_then(|r| r.members.get_mut(&caller.user_id))
            else {
                return Err(Error::RoomNotFound);
            };
            if member.hidden_through.take().is_some() {
                self.store.put_member(id, caller.user_id, member)?;
            }
            let Some(entry) = directory.rooms.get(&id) else {
                return Err(Error::RoomNotFound);
            };
            return Ok((self.room_view_for(id, entry, caller.user_id), false));
        }
        self.limits
            .room_creations
            .take(&caller.user_id)
            .map_err(|refusal| too_many_rooms(self, refusal))?;
        let name = format!("{}, {}", self.username(caller.user_id), target_name);
        let record = Room {
            name,
            room_type: RoomType::Private,
            password_hash: None,
            direct: Some(pair),
            created_by: caller.user_id,
            created_at: now_millis(),
            closed: false,
        };
        let (id, view) = self.insert_room(&mut directory, record, &[caller.user_id, target])?;
        directory.direct.insert(pair, id);
        self.bus
            .publish([caller.user_id, target], Event::NewRoom(view.clone()));
        tracing::info!(
            room_id = %id,
            user_id = %caller.user_id,
            "direct room created"
        );
        Ok((self.caller_view(&directory, id, caller, view), true))
    }

    /// The view of a room just made, for its creator's reply.
    fn caller_view(
        &self,
        directory: &Directory,
        id: RoomId,
        caller: Caller,
        shared: RoomView,
    ) -> RoomView {
        match directory.rooms.get(&id) {
            Some(entry) => self.room_view_for(id, entry, caller.user_id),
            None => shared,
        }
    }

    /// Stores a new room whose first member is its owner, and the other members.
    fn insert_room(
        &self,
        directory: &mut Directory,
        record: Room,
        members: &[UserId],
    ) -> Result<(RoomId, RoomView)> {
        let id = directory.next_room_id;
        self.store.put_room(id, &record)?;
        let mut entry = RoomEntry::new(record, Sequence::default());
        for (i, &user) in members.iter().enumerate() {
            let member = Member::new(if i == 0 { Role::Owner } else { Role::Member });
            self.store.put_member(id, user, &member)?;
            entry.members.insert(user, member);
            directory.user_rooms.entry(user).or_default().insert(id);
            self.start_reading(id, &entry, user);
        }
        directory.next_room_id = id.next();
        let view = self.room_view(id, &entry);
        self.reserve_first_block(id, &entry);
        directory.rooms.insert(id, entry);
        Ok((id, view))
    }

    /// Rooms the caller may see and join, and every room the caller is in.
    pub fn visible_rooms(&self, caller: Caller) -> Vec<RoomView> {
        let directory = self.directory();
        let mut rooms: Vec<_> = directory
            .rooms
            .iter()
            .filter(|(_, r)| r.listed_for(caller.user_id))
            .map(|(id, r)| self.room_view_for(*id, r, caller.user_id))
            .collect();
        rooms.sort_by_key(|r| r.chat_seq);
        rooms
    }

    /// The rooms the user is a member of.
    /// How many rooms `user` is a member of.
    pub fn room_count(&self, user: UserId) -> usize {
        self.directory()
            .user_rooms
            .get(&user)
            .map_or(0, |rooms| rooms.len())
    }

    pub fn my_rooms(&self, user: UserId) -> Vec<RoomView> {
        let directory = self.directory();
        directory
            .user_rooms
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|id| directory.rooms.get(id).map(|r| (id, r)))
            .filter(|(_, r)| r.listed_for(user))
            .map(|(id, r)| self.room_view_for(*id, r, user))
            .collect()
    }

    /// Joins a room. Joining a room one is in already changes nothing.
    pub async fn join(
        &self,
        caller: Caller,
        room_id: RoomId,
        password: Option<String>,
    ) -> Result<RoomDetail> {
        let password_hash = {
            let directory = self.directory();
            let entry = directory.visible(room_id, caller.user_id)?;
            if entry.members.contains_key(&caller.user_id) {
                return Ok(self.room_detail(room_id, entry, caller.user_id));
            }
            check_not_banned(entry, caller.user_id)?;
            let invited = entry.invites.contains_key(&caller.user_id);
            match entry.record.room_type {
                _ if invited => None,
                RoomType::Private => {
                    return Err(Error::forbidden(
                        "invitation_required",
                        "this room is private: only invited users may join",
                    ))
                }
                RoomType::Protected => entry.record.password_hash.clone(),
                RoomType::Public => None,
            }
        };
        if let Some(stored) = password_hash {
            // Every try costs a token, per user and per room, before the hash is
            // checked: guessing is slow, and so is the CPU it can buy.
            let limited = |refusal| {
                rate_limited(
                    "too_many_attempts",
                    format!(
                        "too many room password tries: at most {} per minute",
                        self.settings.limits.room_password_attempts_per_minute
                    ),
                    refusal,
                )
            };
            self.limits
                .room_password_by_user
                .take(&caller.user_id)
                .map_err(limited)?;
            self.limits
                .room_password_by_room
                .take(&room_id)
                .map_err(limited)?;
            let given = password.unwrap_or_default();
            if given.is_empty()
                || given.len() > super::accounts::PASSWORD_MAX_BYTES
                || !self
                    .hashing
                    .verify(given, stored, password::Pool::Other)
                    .await?
            {
                return Err(Error::forbidden("wrong_password", "wrong room password"));
            }
        }

        let mut directory = self.directory_mut();
        // The room may have changed while the password was checked.
        let entry = directory.visible(room_id, caller.user_id)?;
        if entry.members.contains_key(&caller.user_id) {
            return Ok(self.room_detail(room_id, entry, caller.user_id));
        }
        check_not_banned(entry, caller.user_id)?;
        if entry.invites.contains_key(&caller.user_id) {
            self.store.remove_invite(room_id, caller.user_id)?;
        }
        let member = Member::new(Role::Member);
        self.store.put_member(room_id, caller.user_id, &member)?;
        directory
            .user_rooms
            .entry(caller.user_id)
            .or_default()
            .insert(room_id);
        let Some(entry) = directory.rooms.get_mut(&room_id) else {
            return Err(Error::RoomNotFound);
        };
        entry.invites.remove(&caller.user_id);
        entry.members.insert(caller.user_id, member);
        self.start_reading(room_id, entry, caller.user_id);
        self.bus.publish(
            entry.members.keys().copied(),
            Event::JoinRoom(JoinEvent {
                chat_seq: room_id,
                user_id: caller.user_id,
                username: self.username(caller.user_id),
                room: self.room_view(room_id, entry),
            }),
        );
        Ok(self.room_detail(room_id, entry, caller.user_id))
    }

    /// The reply to a join: the room as the joiner sees it, and its members.
    fn room_detail(&self, id: RoomId, entry: &RoomEntry, viewer: UserId) -> RoomDetail {
        RoomDetail {
            room: self.room_view_for(id, entry, viewer),
            members: self.member_views(entry),
        }
    }

    /// Leaves a room. Leaving a direct room only hides it from one's lists until a
    /// new message arrives; the pair's room and history stay.
    pub fn leave(&self, caller: Caller, room_id: RoomId) -> Result<()> {
        let user = caller.user_id;
        let mut directory = self.directory_mut();
        let entry = directory.visible(room_id, user)?;
        if !entry.members.contains_key(&user) {
            return Err(Error::conflict(
                "not_a_member",
                format!("you are not a member of room {room_id}"),
            ));
        }
        if entry.record.direct.is_some() {
            let last = entry.last_msg_id();
            let Some(member) = directory
                .rooms
                .get_mut(&room_id)
                .and_then(|r| r.members.get_mut(&user))
            else {
                return Err(Error::RoomNotFound);
            };
            member.hidden_through = Some(last);
            self.store.put_member(room_id, user, member)?;
            self.bus.publish(
                [user],
                Event::UserLeave(self.leave_event(room_id, user, LeaveReason::Leave, user, None)),
            );
            return Ok(());
        }
        self.remove_member(
            &mut directory,
            room_id,
            user,
            LeaveReason::Leave,
            user,
            None,
        )
    }

    pub(super) fn leave_event(
        &self,
        room_id: RoomId,
        user: UserId,
        reason: LeaveReason,
        by: UserId,
        until: Option<Option<String>>,
    ) -> LeaveEvent {
        LeaveEvent {
            chat_seq: room_id,
            user_id: user,
            username: self.username(user),
            reason,
            by_user_id: by,
            until,
        }
    }

    /// Takes a member out of a room (leave, kick, ban), telling the members and the
    /// one leaving. An owner who leaves hands the room to the oldest admin, else the
    /// oldest member; the last one to leave closes it.
    pub(super) fn remove_member(
        &self,
        directory: &mut Directory,
        room_id: RoomId,
        user: UserId,
        reason: LeaveReason,
        by: UserId,
        until: Option<Option<String>>,
    ) -> Result<()> {
        let Some(entry) = directory.rooms.get_mut(&room_id) else {
            return Err(Error::RoomNotFound);
        };
        self.bus.publish(
            entry.members.keys().copied(),
            Event::UserLeave(self.leave_event(room_id, user, reason, by, until)),
        );
        self.store.remove_member(room_id, user)?;
        self.stop_reading(room_id, entry, user);
        let was_owner = entry
            .members
            .remove(&user)
            .is_some_and(|m| m.role == Role::Owner);
        if let Some(rooms) = directory.user_rooms.get_mut(&user) {
            rooms.remove(&room_id);
        }
        if entry.members.is_empty() {
            entry.record.closed = true;
            self.store.put_room(room_id, &entry.record)?;
            if let Some(pair) = entry.record.direct {
                directory.direct.remove(&pair);
            }
            tracing::info!(%room_id, "room closed: its last member left");
            return Ok(());
        }
        if was_owner {
            let heir = entry
                .members
                .iter()
                .map(|(id, m)| (m.role != Role::Admin, m.joined_at, *id))
                .min()
                .map(|(_, _, id)| id);
            if let Some(heir) = heir {
                self.set_role(entry, room_id, heir, Role::Owner, None)?;
            }
        }
        Ok(())
    }

    /// Gives a member a role and tells the room.
    pub(super) fn set_role(
        &self,
        entry: &mut RoomEntry,
        room_id: RoomId,
        user: UserId,
        role: Role,
        by: Option<UserId>,
    ) -> Result<()> {
        let Some(member) = entry.members.get_mut(&user) else {
            return Err(Error::conflict(
                "not_a_member",
                "that user is not a member of this room",
            ));
        };
        member.role = role;
        self.store.put_member(room_id, user, member)?;
        self.bus.publish(
            entry.members.keys().copied(),
            Event::RoleChange(RoleEvent {
                chat_seq: room_id,
                user_id: user,
                username: self.username(user),
                role: role.into(),
                by_user_id: by,
            }),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        for good in ["general", "  trimmed  ", "잡담방", "🎉 party", "a-b c"] {
            assert!(check_room_name(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "   ",
            "a\nb",
            "evil\u{202e}txt.exe",
            "gen\u{200b}eral",
            "gen\u{200d}eral",
            "\u{2066}isolate",
            "soft\u{ad}hyphen",
            "line\u{2028}sep",
            &"x".repeat(65),
        ] {
            assert!(check_room_name(bad).is_err(), "{bad:?}");
        }
    }
}
