//! Who may do what in a room: the whole permission model in one table.
//!
//! Roles are owner, admin and member. The owner may do everything; admins moderate
//! members (kick, ban, mute, invite) but not the owner nor other admins; members
//! moderate no one. Room settings, admin roles and ownership belong to the owner.

use crate::error::{Error, Result};
use crate::model::Role;

/// A moderation or administration action on a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Kick,
    Ban,
    Unban,
    Mute,
    Unmute,
    Invite,
    SetAdmin,
    UnsetAdmin,
    TransferOwnership,
    Configure,
    /// Read mutes and bans.
    SeeModeration,
    /// Delete another member's message.
    DeleteMessage,
}

impl Action {
    fn owner_only(self) -> bool {
        matches!(
            self,
            Action::SetAdmin | Action::UnsetAdmin | Action::TransferOwnership | Action::Configure
        )
    }

    /// Actions aimed at a user whose rank protects them from admins.
    fn aimed_at_a_peer(self) -> bool {
        matches!(
            self,
            Action::Kick | Action::Ban | Action::Unban | Action::Mute | Action::Unmute
        )
    }

    fn describe(self) -> &'static str {
        match self {
            Action::Kick => "kick members",
            Action::Ban => "ban users",
            Action::Unban => "lift bans",
            Action::Mute => "mute members",
            Action::Unmute => "lift mutes",
            Action::Invite => "invite users",
            Action::SetAdmin | Action::UnsetAdmin => "name or remove admins",
            Action::TransferOwnership => "hand the room over",
            Action::Configure => "change the room's settings",
            Action::SeeModeration => "see mutes and bans",
            Action::DeleteMessage => "delete others' messages",
        }
    }
}

/// Whether a member of role `actor` may take `action` on a user whose role in the
/// room is `target` (`None`: not a member, or no target).
pub fn check(actor: Role, action: Action, target: Option<Role>) -> Result<()> {
    let allowed_by_rank = match actor {
        Role::Owner => true,
        Role::Admin => !action.owner_only(),
        Role::Member => false,
    };
    if !allowed_by_rank {
        let who = if action.owner_only() {
            "the owner"
        } else {
            "the owner and admins"
        };
        return Err(Error::forbidden(
            "not_allowed",
            format!("only {who} may {}", action.describe()),
        ));
    }
    if action.aimed_at_a_peer() {
        match (actor, target) {
            (_, Some(Role::Owner)) => {
                return Err(Error::forbidden(
                    "not_allowed",
                    "no one may act on the room's owner",
                ))
            }
            (Role::Admin, Some(Role::Admin)) => {
                return Err(Error::forbidden(
                    "not_allowed",
                    "an admin cannot act on another admin; ask the owner",
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use Role::*;

    const ALL: [Action; 12] = [
        Kick,
        Ban,
        Unban,
        Mute,
        Unmute,
        Invite,
        SetAdmin,
        UnsetAdmin,
        TransferOwnership,
        Configure,
        SeeModeration,
        DeleteMessage,
    ];

    #[test]
    fn members_may_do_nothing() {
        for action in ALL {
            for target in [None, Some(Member), Some(Admin), Some(Owner)] {
                assert!(
                    check(Member, action, target).is_err(),
                    "{action:?} on {target:?}"
                );
            }
        }
    }

    #[test]
    fn admins_moderate_members_only() {
        for action in [Kick, Ban, Unban, Mute, Unmute] {
            assert!(check(Admin, action, Some(Member)).is_ok(), "{action:?}");
            assert!(
                check(Admin, action, None).is_ok(),
                "{action:?} on a non-member"
            );
            assert!(
                check(Admin, action, Some(Admin)).is_err(),
                "{action:?} on an admin"
            );
            assert!(
                check(Admin, action, Some(Owner)).is_err(),
                "{action:?} on the owner"
            );
        }
        assert!(check(Admin, Invite, None).is_ok());
        assert!(check(Admin, SeeModeration, None).is_ok());
        assert!(check(Admin, DeleteMessage, None).is_ok());
        for action in [SetAdmin, UnsetAdmin, TransferOwnership, Configure] {
            assert!(check(Admin, action, Some(Member)).is_err(), "{action:?}");
        }
    }

    #[test]
    fn the_owner_may_do_everything_but_to_itself() {
        for action in ALL {
            assert!(check(Owner, action, Some(Member)).is_ok(), "{action:?}");
        }
        for action in [Kick, Ban, Mute] {
            assert!(
                check(Owner, action, Some(Admin)).is_ok(),
                "{action:?} on an admin"
            );
            assert!(
                check(Owner, action, Some(Owner)).is_err(),
                "{action:?} on the owner"
            );
        }
    }
}
