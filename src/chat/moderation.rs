//! Running a room: kick, ban, mute, invite, admin roles, ownership, settings; the
//! members list; blocking users; and the expiry of bans and mutes.
//!
//! Every action goes through [`Chat::staff_action`], which applies the one
//! permission table of `policy`; nothing here checks a role by hand.

use super::accounts::check_password;
use super::password;
use super::policy::{self, Action};
use super::rooms::check_room_name;
use super::view::{
    timestamp, BanView, ChatType, Event, InviteEvent, LeaveReason, MemberView, MembersView,
    ModeratedMemberView, ModerationEvent, RoomUpdateEvent, UserView,
};
use super::{Caller, Chat, Directory, RoomEntry};
use crate::error::{Error, Result};
use crate::model::*;

/// The longest timed ban or mute: ten years. Longer is "for ever" (a ban without
/// `minutes`).
const MAX_MINUTES: f64 = 10.0 * 365.0 * 24.0 * 60.0;

/// A change of a room's settings, as `PATCH /api/chatrooms/{roomId}` gives it.
#[derive(Debug, Clone, Default)]
pub struct RoomChanges {
    pub chat_name: Option<String>,
    pub chat_type: Option<ChatType>,
    /// `Some(None)`: remove the password (a protected room becomes public unless
    /// `chat_type` says otherwise).
    pub password: Option<Option<String>>,
}

/// Minutes from now, as the end of a ban or mute. Fractions are allowed.
fn until_from(minutes: f64) -> Result<Millis> {
    if !(minutes > 0.0 && minutes <= MAX_MINUTES) {
        return Err(Error::bad_request(
            "invalid_minutes",
            format!("minutes must be a number above 0 and at most {MAX_MINUTES}"),
        ));
    }
    Ok(now_millis() + (minutes * 60_000.0).round() as Millis)
}

impl Chat {
    /// Checks that `caller` may take `action` on `target` in the room, and returns
    /// the room. Refusals: 404 for a room the caller cannot see, 403 for a lack of
    /// right, 409 where the room's state forbids it (a direct room, oneself).
    fn staff_action<'d>(
        &self,
        directory: &'d mut Directory,
        room_id: RoomId,
        caller: UserId,
        action: Action,
        target: Option<UserId>,
    ) -> Result<&'d mut RoomEntry> {
        if let Some(target) = target {
            self.user(target)?;
        }
        let entry = directory.visible(room_id, caller)?;
        let actor = entry.role_of(caller).ok_or_else(|| {
            Error::forbidden(
                "not_a_member",
                format!("you are not a member of room {room_id}"),
            )
        })?;
        if entry.record.direct.is_some() && action != Action::SeeModeration {
            return Err(Error::conflict(
                "direct_room",
                "direct rooms have no moderation or settings",
            ));
        }
        if target == Some(caller) {
            return Err(Error::conflict(
                "cannot_target_self",
                "this action cannot target yourself",
            ));
        }
        policy::check(actor, action, target.and_then(|t| entry.role_of(t)))?;
        directory.rooms.get_mut(&room_id).ok_or(Error::RoomNotFound)
    }

    fn moderation_event(
        &self,
        room_id: RoomId,
        user: UserId,
        until: Option<Millis>,
        by: Option<UserId>,
    ) -> ModerationEvent {
        ModerationEvent {
            chat_seq: room_id,
            user_id: user,
            username: self.username(user),
            until: until.map(timestamp),
            by_user_id: by,
        }
    }

    /// Sends the user out now; they may join again.
    pub fn kick(&self, caller: Caller, room_id: RoomId, target: UserId) -> Result<()> {
        let mut directory = self.directory_mut();
        let entry = self.staff_action(
            &mut directory,
            room_id,
            caller.user_id,
            Action::Kick,
            Some(target),
        )?;
        if !entry.members.contains_key(&target) {
            return Err(Error::conflict(
                "not_a_member",
                "that user is not a member of this room",
            ));
        }
        self.remove_member(
            &mut directory,
            room_id,
            target,
            LeaveReason::Kick,
            caller.user_id,
            None,
        )
    }

    /// Bans a user (a member or not) for `minutes`, or for ever; a member leaves.
    pub fn ban(
        &self,
        caller: Caller,
        room_id: RoomId,
        target: UserId,
        minutes: Option<f64>,
    ) -> Result<()> {
        let until = minutes.map(until_from).transpose()?;
        let mut directory = self.directory_mut();
        let entry = self.staff_action(
            &mut directory,
            room_id,
            caller.user_id,
            Action::Ban,
            Some(target),
        )?;
        let ban = Ban {
            until,
            by: caller.user_id,
            at: now_millis(),
        };
        self.store.put_ban(room_id, target, &ban)?;
        entry.bans.insert(target, ban);
        if entry.invites.remove(&target).is_some() {
            self.store.remove_invite(room_id, target)?;
        }
        let was_member = entry.members.contains_key(&target);
        let audience = members_and(entry, target);
        self.bus.publish(
            audience,
            Event::UserBan(self.moderation_event(room_id, target, until, Some(caller.user_id))),
        );
        if was_member {
            let until = Some(until.map(timestamp));
            self.remove_member(
                &mut directory,
                room_id,
                target,
                LeaveReason::Ban,
                caller.user_id,
                until,
            )?;
        }
        Ok(())
    }

    pub fn unban(&self, caller: Caller, room_id: RoomId, target: UserId) -> Result<()> {
        let mut directory = self.directory_mut();
        let entry = self.staff_action(
            &mut directory,
            room_id,
            caller.user_id,
            Action::Unban,
            Some(target),
        )?;
        if entry.ban_of(target, now_millis()).is_none() {
            return Err(Error::conflict(
                "not_banned",
                "that user is not banned from this room",
            ));
        }
        self.lift_ban(entry, room_id, target, Some(caller.user_id))
    }

    fn lift_ban(
        &self,
        entry: &mut RoomEntry,
        room_id: RoomId,
        target: UserId,
        by: Option<UserId>,
    ) -> Result<()> {
        self.store.remove_ban(room_id, target)?;
        entry.bans.remove(&target);
        let audience = members_and(entry, target);
        self.bus.publish(
            audience,
            Event::UserUnban(self.moderation_event(room_id, target, None, by)),
        );
        Ok(())
    }

    /// Keeps a member from sending for `minutes`.
    pub fn mute(
        &self,
        caller: Caller,
        room_id: RoomId,
        target: UserId,
        minutes: f64,
    ) -> Result<()> {
        let until = until_from(minutes)?;
        let mut directory = self.directory_mut();
        let entry = self.staff_action(
            &mut directory,
            room_id,
            caller.user_id,
            Action::Mute,
            Some(target),
        )?;
        if !entry.members.contains_key(&target) {
            return Err(Error::conflict(
                "not_a_member",
                "that user is not a member of this room",
            ));
        }
        let mute = Mute {
            until,
            by: caller.user_id,
            at: now_millis(),
        };
        self.store.put_mute(room_id, target, &mute)?;
        entry.mutes.insert(target, mute);
        self.bus.publish(
            entry.members.keys().copied(),
            Event::UserMute(self.moderation_event(
                room_id,
                target,
                Some(until),
                Some(caller.user_id),
            )),
        );
        Ok(())
    }

    pub fn unmute(&self, caller: Caller, room_id: RoomId, target: UserId) -> Result<()> {
        let mut directory = self.directory_mut();
        let entry = self.staff_action(
            &mut directory,
            room_id,
            caller.user_id,
            Action::Unmute,
            Some(target),
        )?;
        if entry.mute_of(target, now_millis()).is_none() {
            return Err(Error::conflict(
                "not_muted",
                "that user is not muted in this room",
            ));
        }
        self.lift_mute(entry, room_id, target, Some(caller.user_id))
    }

    fn lift_mute(
        &self,
        entry: &mut RoomEntry,
        room_id: RoomId,
        target: UserId,
        by: Option<UserId>,
    ) -> Result<()> {
        self.store.remove_mute(room_id, target)?;
        entry.mutes.remove(&target);
        self.bus.publish(
            entry.members.keys().copied(),
            Event::UserUnmute(self.moderation_event(room_id, target, None, by)),
        );
        Ok(())
    }

    /// Names a member admin, or makes an admin a member again. Owner only.
    pub fn set_admin(
        &self,
        caller: Caller,
        room_id: RoomId,
        target: UserId,
        admin: bool,
    ) -> Result<()> {
        let action = if admin {
            Action::SetAdmin
        } else {
            Action::UnsetAdmin
        };
        let mut directory = self.directory_mut();
        let entry = self.staff_action(
            &mut directory,
            room_id,
            caller.user_id,
            action,
            Some(target),
        )?;
        let role = match entry.role_of(target) {
            None => {
                return Err(Error::conflict(
                    "not_a_member",
                    "that user is not a member of this room",
                ))
            }
            Some(Role::Owner) => {
                return Err(Error::conflict("is_owner", "the owner is not an admin"))
            }
            Some(role) => role,
        };
        let wanted = if admin { Role::Admin } else { Role::Member };
        if role == wanted {
            return Ok(());
        }
        self.set_role(entry, room_id, target, wanted, Some(caller.user_id))
    }

    /// Hands the room to another member; the old owner becomes an admin.
    pub fn transfer_ownership(
        &self,
        caller: Caller,
        room_id: RoomId,
        target: UserId,
    ) -> Result<()> {
        let mut directory = self.directory_mut();
        let entry = self.staff_action(
            &mut directory,
            room_id,
            caller.user_id,
            Action::TransferOwnership,
            Some(target),
        )?;
        if !entry.members.contains_key(&target) {
            return Err(Error::conflict(
                "not_a_member",
                "that user is not a member of this room",
            ));
        }
        self.set_role(entry, room_id, target, Role::Owner, Some(caller.user_id))?;
        self.set_role(
            entry,
            room_id,
            caller.user_id,
            Role::Admin,
            Some(caller.user_id),
        )
    }

    /// Invites a user; an invitation opens a private room and skips a protected
    /// room's password.
    pub fn invite(&self, caller: Caller, room_id: RoomId, target: UserId) -> Result<()> {
        let mut directory = self.directory_mut();
        let entry = self.staff_action(
            &mut directory,
            room_id,
            caller.user_id,
            Action::Invite,
            Some(target),
        )?;
        if entry.members.contains_key(&target) {
            return Err(Error::conflict(
                "already_member",
                "that user is a member already",
            ));
        }
        if entry.ban_of(target, now_millis()).is_some() {
            return Err(Error::conflict(
                "banned",
                "that user is banned from this room; lift the ban first",
            ));
        }
        if directory.blocks(target, caller.user_id) {
            return Err(Error::forbidden("blocked", "this user has blocked you"));
        }
        let Some(entry) = directory.rooms.get_mut(&room_id) else {
            return Err(Error::RoomNotFound);
        };
        let invite = Invite {
            by: caller.user_id,
            at: now_millis(),
        };
        self.store.put_invite(room_id, target, &invite)?;
        entry.invites.insert(target, invite);
        let room = self.room_view(room_id, entry);
        let audience = members_and(entry, target);
        self.bus.publish(
            audience,
            Event::Invite(InviteEvent {
                chat_seq: room_id,
                user_id: target,
                username: self.username(target),
                room,
                by_user_id: caller.user_id,
            }),
        );
        Ok(())
    }

    /// Declines the caller's invitation to a room: the room leaves their lists (a
    /// private one) and the invitation is gone.
    pub fn decline_invite(&self, caller: Caller, room_id: RoomId) -> Result<()> {
        let mut directory = self.directory_mut();
        directory.visible(room_id, caller.user_id)?;
        let Some(entry) = directory.rooms.get_mut(&room_id) else {
            return Err(Error::RoomNotFound);
        };
        if !entry.invites.contains_key(&caller.user_id) {
            return Err(Error::conflict(
                "not_invited",
                "you have no invitation to this room",
            ));
        }
        self.store.remove_invite(room_id, caller.user_id)?;
        entry.invites.remove(&caller.user_id);
        Ok(())
    }

    /// Renames the room, changes its type, sets or removes its password. Owner only.
    pub async fn update_room(
        &self,
        caller: Caller,
        room_id: RoomId,
        changes: RoomChanges,
    ) -> Result<super::view::RoomView> {
        if changes.chat_name.is_none() && changes.chat_type.is_none() && changes.password.is_none()
        {
            return Err(Error::bad_request(
                "nothing_to_change",
                "give at least one of chatName, chatType, password",
            ));
        }
        let name = changes
            .chat_name
            .as_deref()
            .map(check_room_name)
            .transpose()?;
        let new_hash = match &changes.password {
            Some(Some(password)) if !password.is_empty() => {
                check_password(password, "invalid_password")?;
                Some(
                    self.hashing
                        .hash(password.clone(), password::Pool::Other)
                        .await?,
                )
            }
            _ => None,
        };
        let removing = matches!(&changes.password, Some(None))
            || matches!(&changes.password, Some(Some(p)) if p.is_empty());

        let mut directory = self.directory_mut();
        let entry = self.staff_action(
            &mut directory,
            room_id,
            caller.user_id,
            Action::Configure,
            None,
        )?;
        let was_listed = entry.record.room_type != RoomType::Private;
        let mut record = entry.record.clone();
        let mut room_type = changes
            .chat_type
            .map(RoomType::from)
            .unwrap_or(record.room_type);
        if removing && changes.chat_type.is_none() && room_type == RoomType::Protected {
            room_type = RoomType::Public;
        }
        record.password_hash = match room_type {
            RoomType::Protected => match new_hash.or(if removing {
                None
            } else {
                record.password_hash.take()
            }) {
                Some(hash) => Some(hash),
                None => {
                    return Err(Error::bad_request(
                        "password_required",
                        "a protected room needs a password",
                    ))
                }
            },
            _ if new_hash.is_some() => {
                return Err(Error::bad_request(
                    "unexpected_password",
                    "only protected rooms have a password",
                ))
            }
            _ => None,
        };
        record.room_type = room_type;
        if let Some(name) = name {
            record.name = name;
        }
        self.store.put_room(room_id, &record)?;
        entry.record = record;
        let view = self.room_view(room_id, entry);
        let event = Event::RoomUpdate(RoomUpdateEvent {
            room: view.clone(),
            by_user_id: caller.user_id,
        });
        // Everyone could see the room before or can now: everyone hears of it.
        if was_listed || room_type != RoomType::Private {
            self.bus.publish_all(event);
        } else {
            let audience: Vec<UserId> = entry
                .members
                .keys()
                .chain(entry.invites.keys())
                .copied()
                .collect();
            self.bus.publish(audience, event);
        }
        Ok(view)
    }

    /// The members with their roles; owners and admins also see mutes and bans.
    pub fn members(&self, caller: Caller, room_id: RoomId) -> Result<MembersView> {
        let directory = self.directory();
        let entry = directory.joined(room_id, caller.user_id)?;
        let plain = self.member_views(entry);
        let staff = entry
            .role_of(caller.user_id)
            .is_some_and(|role| policy::check(role, Action::SeeModeration, None).is_ok());
        if !staff {
            return Ok(MembersView::Plain { members: plain });
        }
        let now = now_millis();
        let members = plain
            .into_iter()
            .map(|member: MemberView| ModeratedMemberView {
                muted_until: entry
                    .mute_of(member.user_id, now)
                    .map(|m| timestamp(m.until)),
                member,
            })
            .collect();
        let mut bans: Vec<BanView> = entry
            .bans
            .iter()
            .filter(|(user, _)| entry.ban_of(**user, now).is_some())
            .map(|(user, ban)| BanView {
                user_id: *user,
                username: self.username(*user),
                until: ban.until.map(timestamp),
                by_user_id: ban.by,
            })
            .collect();
        bans.sort_by_key(|b| b.user_id);
        Ok(MembersView::Moderated { members, bans })
    }

    /// Blocks a user: their messages no longer reach the caller, live or in history,
    /// they cannot open or write in a direct room with the caller nor invite them,
    /// and their pending invitations to the caller are dropped.
    pub fn block(&self, caller: Caller, target: UserId) -> Result<()> {
        if target == caller.user_id {
            return Err(Error::bad_request(
                "invalid_target",
                "you cannot block yourself",
            ));
        }
        self.user(target)?;
        let mut directory = self.directory_mut();
        self.store
            .put_block(caller.user_id, target, &Block { at: now_millis() })?;
        directory
            .blocks
            .entry(caller.user_id)
            .or_default()
            .insert(target);
        for (&room_id, entry) in directory.rooms.iter_mut() {
            if entry
                .invites
                .get(&caller.user_id)
                .is_some_and(|invite| invite.by == target)
            {
                self.store.remove_invite(room_id, caller.user_id)?;
                entry.invites.remove(&caller.user_id);
            }
        }
        Ok(())
    }

    pub fn unblock(&self, caller: Caller, target: UserId) -> Result<()> {
        self.user(target)?;
        let mut directory = self.directory_mut();
        self.store.remove_block(caller.user_id, target)?;
        if let Some(blocked) = directory.blocks.get_mut(&caller.user_id) {
            blocked.remove(&target);
            if blocked.is_empty() {
                directory.blocks.remove(&caller.user_id);
            }
        }
        Ok(())
    }

    pub fn blocked_users(&self, caller: Caller) -> Vec<UserView> {
        let mut blocked: Vec<UserId> = self
            .directory()
            .blocks
            .get(&caller.user_id)
            .map(|b| b.iter().copied().collect())
            .unwrap_or_default();
        blocked.sort_unstable();
        blocked
            .into_iter()
            .map(|user_id| UserView {
                user_id,
                username: self.username(user_id),
            })
            .collect()
    }

    /// Lifts the bans and mutes that have run out, telling the rooms. Called by a
    /// job; a ban or mute that has run out is already ignored where it is checked.
    pub fn expire_moderation(&self) -> Result<usize> {
        let now = now_millis();
        let anything_ran_out = self.directory().rooms.values().any(|entry| {
            entry
                .bans
                .values()
                .any(|b| b.until.is_some_and(|until| until <= now))
                || entry.mutes.values().any(|m| m.until <= now)
        });
        if !anything_ran_out {
            return Ok(0);
        }
        let mut directory = self.directory_mut();
        let mut lifted = 0;
        let room_ids: Vec<RoomId> = directory.rooms.keys().copied().collect();
        for room_id in room_ids {
            let Some(entry) = directory.rooms.get_mut(&room_id) else {
                continue;
            };
            let bans: Vec<UserId> = entry
                .bans
                .iter()
                .filter(|(_, b)| b.until.is_some_and(|until| until <= now))
                .map(|(user, _)| *user)
                .collect();
            let mutes: Vec<UserId> = entry
                .mutes
                .iter()
                .filter(|(_, m)| m.until <= now)
                .map(|(user, _)| *user)
                .collect();
            for user in &bans {
                self.lift_ban(entry, room_id, *user, None)?;
            }
            for user in &mutes {
                self.lift_mute(entry, room_id, *user, None)?;
            }
            lifted += bans.len() + mutes.len();
        }
        Ok(lifted)
    }
}

/// The members of a room and one more user (who may be among them), once each.
fn members_and(entry: &RoomEntry, user: UserId) -> Vec<UserId> {
    let mut audience: Vec<UserId> = entry.members.keys().copied().collect();
    if !entry.members.contains_key(&user) {
        audience.push(user);
    }
    audience
}

/// The refusal of a message or change in a direct room whose other member blocks
/// the caller. (In a group room it goes through; the blocker just does not see it.)
pub(super) fn check_direct_not_blocked(
    directory: &Directory,
    entry: &RoomEntry,
    user: UserId,
) -> Result<()> {
    let blocked = entry.record.direct.is_some()
        && entry
            .members
            .keys()
            .any(|&other| directory.blocks(other, user));
    if blocked {
        return Err(Error::forbidden("blocked", "this user has blocked you"));
    }
    Ok(())
}

/// The refusal of a member whose mute is in force.
pub(super) fn check_not_muted(entry: &RoomEntry, user: UserId) -> Result<()> {
    match entry.mute_of(user, now_millis()) {
        Some(mute) => Err(Error::forbidden(
            "muted",
            format!("you are muted in this room until {}", timestamp(mute.until)),
        )),
        None => Ok(()),
    }
}
