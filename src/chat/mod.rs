//! The chat domain (the original design's service): accounts, rooms, membership and
//! messages, with every rule about who may do what.
//!
//! Users, tokens, rooms and memberships are few; they live in memory, loaded once at
//! start-up and written through to the store on every change. Messages live in the
//! store (buffer and disk). Every change is published on the event bus; the domain
//! never touches a connection and never imports warp.

mod accounts;
pub mod admin;
mod changes;
pub mod files;
mod limits;
mod mentions;
mod messages;
mod moderation;
pub mod password;
mod policy;
mod presence;
mod reading;
mod rooms;
pub mod search;
pub mod view;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::config::{Config, Durability, LimitsConfig};
use crate::error::{Error, Result};
use crate::events::Bus;
use crate::metrics::Metrics;
use crate::model::*;
use crate::store::{Store, StoreResult};
pub use view::Event;

pub use accounts::Caller;
use limits::{KeyedLimit, Refusal};
pub use mentions::MentionsPage;
pub use messages::{Accepted, Before, Replay, ResumeFrom, Sent};
pub use moderation::RoomChanges;
pub use rooms::NewRoom;

/// The limits and switches of the domain, from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub open_registration: bool,
    pub durability: Durability,
    /// How long after a user's last session closes they are announced offline.
    pub presence_grace: std::time::Duration,
    /// `[limits]` as configured.
    pub limits: LimitsConfig,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            open_registration: config.auth.open_registration,
            presence_grace: config.server.presence_grace,
            durability: config.storage.durability,
            limits: config.limits.clone(),
        }
    }
}

/// The chat service. One per server, shared by `http` and `ws`.
pub struct Chat {
    store: Store,
    bus: Arc<Bus<Event>>,
    metrics: Arc<Metrics>,
    /// When a flush last started (any outcome), in milliseconds: readiness checks
    /// that the flush job is alive.
    last_flush_attempt: AtomicI64,
    settings: Settings,
    accounts: RwLock<Accounts>,
    directory: RwLock<Directory>,
    /// A hash to verify against when a login names an unknown user, so that such a
    /// login takes as long as a wrong password and does not reveal which names exist.
    decoy_hash: tokio::sync::OnceCell<String>,
    /// Client ids of messages not yet on disk (those on disk are looked up there), so
    /// that a resend is answered with the original. Emptied by every flush.
    pending_client_ids: Mutex<HashMap<UserId, HashMap<String, MessageRef>>>,
    /// Rooms with read markers not yet saved (each room's [`Sequence::unsaved`] says
    /// whose). A room is added when its first marker changes after a save, so the
    /// per-message cost of a marker is an insert into a set its room already locks.
    unsaved_read_rooms: Mutex<HashSet<RoomId>>,
    /// Held while read markers are saved, so that an older save cannot land after a
    /// newer one and move a marker back on disk.
    read_saving: tokio::sync::Mutex<()>,
    limits: Limits,
    hashing: password::Hashing,
    /// Who is online: sessions per user, and when the last one closed.
    presence: Mutex<presence::Presence>,
    /// When each member last typed in each room, for the typing throttle.
    typing_times: Mutex<presence::TypingTimes>,
    /// The search index, set by the server once it runs.
    search_index: std::sync::OnceLock<Arc<crate::indexer::SearchIndex>>,
}

/// The rate limits of the domain. Keys that a client chooses (an address, a name)
/// are checked for shape before they become keys, and every limiter has a bound
/// on its keys (`limits.rate_limit_keys`).
struct Limits {
    messages: KeyedLimit<UserId>,
    /// Login attempts for one (lower-cased) name from one address: an attacker
    /// elsewhere cannot lock the name's owner out.
    login_by_name: KeyedLimit<(String, IpAddr)>,
    login_by_addr: KeyedLimit<IpAddr>,
    registrations: KeyedLimit<IpAddr>,
    room_password_by_user: KeyedLimit<UserId>,
    room_password_by_room: KeyedLimit<RoomId>,
    room_creations: KeyedLimit<UserId>,
    uploads: KeyedLimit<UserId>,
}

impl Limits {
    fn new(settings: &Settings) -> Self {
        let keys = settings.limits.rate_limit_keys;
        let minute = std::time::Duration::from_secs(60);
        let hour = std::time::Duration::from_secs(3600);
        Self {
            messages: KeyedLimit::with_period(
                std::time::Duration::from_secs_f64(1.0 / settings.limits.messages_per_second),
                settings.limits.message_burst,
                keys,
            ),
            login_by_name: KeyedLimit::per_window(
                settings.limits.login_attempts_per_minute,
                minute,
                keys,
            ),
            login_by_addr: KeyedLimit::per_window(
                settings.limits.address_login_attempts_per_minute,
                minute,
                keys,
            ),
            registrations: KeyedLimit::per_window(
                settings.limits.registrations_per_hour,
                hour,
                keys,
            ),
            room_password_by_user: KeyedLimit::per_window(
                settings.limits.room_password_attempts_per_minute,
                minute,
                keys,
            ),
            room_password_by_room: KeyedLimit::per_window(
                settings.limits.room_password_attempts_per_minute,
                minute,
                keys,
            ),
            room_creations: KeyedLimit::per_window(settings.limits.rooms_per_hour, hour, keys),
            uploads: KeyedLimit::per_window(settings.limits.uploads_per_hour, hour, keys),
        }
    }

    fn prune(&self) {
        self.messages.prune();
        self.login_by_name.prune();
        self.login_by_addr.prune();
        self.registrations.prune();
        self.room_password_by_user.prune();
        self.room_password_by_room.prune();
        self.room_creations.prune();
        self.uploads.prune();
    }
}

/// The 429 of a refused attempt.
fn rate_limited(code: &'static str, what: String, refusal: Refusal) -> Error {
    let wait = refusal.retry_after();
    let message = match refusal {
        Refusal::Wait(_) => format!("{what}; retry in {} s", wait.as_secs().max(1)),
        Refusal::Full => {
            format!("{what}; the server is refusing such attempts for now, retry later")
        }
    };
    Error::RateLimited {
        code,
        message,
        retry_after_ms: wait.as_millis() as u64,
    }
}

#[derive(Default)]
struct Accounts {
    users: HashMap<UserId, Account>,
    /// Lower-cased username → id.
    by_name: HashMap<String, UserId>,
    /// Look-alike key ([`accounts::lookalike_key`]) → id: a new name may not look
    /// like an existing one. Built at start-up from the stored names (no schema
    /// change); two existing look-alikes both keep working.
    by_lookalike: HashMap<String, UserId>,
    /// Token hash → user.
    tokens: HashMap<[u8; 32], UserId>,
    next_user_id: UserId,
}

struct Account {
    username: Arc<str>,
    password_hash: String,
    created_at: Millis,
    disabled: bool,
}

#[derive(Default)]
struct Directory {
    rooms: HashMap<RoomId, RoomEntry>,
    /// The rooms each user is a member of.
    user_rooms: HashMap<UserId, BTreeSet<RoomId>>,
    /// (lower id, higher id) → their direct room.
    direct: HashMap<(UserId, UserId), RoomId>,
    /// Blocking user → the users they block. Read on every message, to leave the
    /// blockers out of its audience.
    blocks: HashMap<UserId, HashSet<UserId>>,
    next_room_id: RoomId,
}

struct RoomEntry {
    record: Room,
    members: BTreeMap<UserId, Member>,
    /// Bans, including expired ones the expiry job has not removed yet.
    bans: HashMap<UserId, Ban>,
    /// Mutes, including expired ones the expiry job has not removed yet.
    mutes: HashMap<UserId, Mute>,
    invites: HashMap<UserId, Invite>,
    /// Locked while a change is numbered, buffered and published, so that every
    /// member receives a room's changes in `seq` order (and messages in `msg_id`
    /// order).
    /// Shared with the task that reserves the room's next block of ids.
    sequence: Arc<Mutex<Sequence>>,
}

/// A room's numbering of messages and of changes, and where each member has read up
/// to: a marker is compared with, and moved by, the numbering (a send marks the room
/// read for its sender), so all of it lives under one lock.
#[derive(Debug, Default)]
struct Sequence {
    /// The last `msg_id` handed out.
    last: MsgId,
    /// When the newest message was sent (`None` before the first, and after a crash
    /// until the next message if the newest ones were lost), for room lists.
    last_at: Option<Millis>,
    /// Ids up to here are durably reserved: a restart after a crash resumes above it.
    reserved: MsgId,
    /// The last change number handed out.
    last_seq: Seq,
    /// Change numbers up to here are durably reserved, like `reserved`.
    reserved_seq: Seq,
    /// Each member's read marker: the newest `msg_id` they have read, at most `last`.
    /// Every member has one; it is dropped when they leave.
    read: HashMap<UserId, MsgId>,
    /// Users whose marker changed (or was dropped) since the last save.
    unsaved: HashSet<UserId>,
    /// Each member's unread mentions: messages past their marker that mention them
    /// (at most [`mentions::UNREAD_MENTIONS_MAX`]).
    mentions: HashMap<UserId, BTreeSet<MsgId>>,
    /// Whether the next block of ids is being reserved, off the async threads.
    reserving: bool,
}

fn lock_sequence(sequence: &Mutex<Sequence>) -> MutexGuard<'_, Sequence> {
    sequence.lock().unwrap_or_else(|p| p.into_inner())
}

impl RoomEntry {
    fn owner(&self) -> Option<UserId> {
        self.members
            .iter()
            .find(|(_, m)| m.role == Role::Owner)
            .map(|(id, _)| *id)
    }

    fn sequence(&self) -> MutexGuard<'_, Sequence> {
        lock_sequence(&self.sequence)
    }

    fn last_msg_id(&self) -> MsgId {
        self.sequence().last
    }

    fn new(record: Room, sequence: Sequence) -> Self {
        Self {
            record,
            members: BTreeMap::new(),
            bans: HashMap::new(),
            mutes: HashMap::new(),
            invites: HashMap::new(),
            sequence: Arc::new(Mutex::new(sequence)),
        }
    }

    /// Whether `user` may see that the room exists: public and protected rooms are
    /// listed to all; private ones to members and invited users; direct ones to
    /// their pair.
    fn visible_to(&self, user: UserId) -> bool {
        if self.record.closed {
            return false;
        }
        match self.record.room_type {
            RoomType::Public | RoomType::Protected if self.record.direct.is_none() => true,
            _ => self.members.contains_key(&user) || self.invites.contains_key(&user),
        }
    }

    /// Whether the room shows in `user`'s lists (a direct room they left does not).
    fn listed_for(&self, user: UserId) -> bool {
        self.visible_to(user)
            && self
                .members
                .get(&user)
                .and_then(|m| m.hidden_through)
                .is_none_or(|through| self.last_msg_id() > through)
    }

    fn role_of(&self, user: UserId) -> Option<Role> {
        self.members.get(&user).map(|m| m.role)
    }

    /// The ban in force on `user` at `now`, if any.
    fn ban_of(&self, user: UserId, now: Millis) -> Option<&Ban> {
        self.bans
            .get(&user)
            .filter(|b| b.until.is_none_or(|until| until > now))
    }

    /// The mute in force on `user` at `now`, if any.
    fn mute_of(&self, user: UserId, now: Millis) -> Option<&Mute> {
        self.mutes.get(&user).filter(|m| m.until > now)
    }
}

impl Chat {
    /// Opens the data directory of `config` and loads the domain from it, with a bus
    /// of its own: what the server and the operator's commands share.
    pub fn load(config: &Config) -> StoreResult<(Store, Arc<Chat>)> {
        let store = Store::open_with_cache(&config.storage.path, config.storage.cache_bytes())?;
        let bus = Bus::new(config.limits.ws_send_queue);
        let settings = Settings::from_config(config);
        let chat = Chat::open(store.clone(), bus, settings, Arc::new(Metrics::default()))?;
        Ok((store, Arc::new(chat)))
    }

    /// Loads accounts, rooms and memberships from the store.
    pub fn open(
        store: Store,
        bus: Arc<Bus<Event>>,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> StoreResult<Self> {
        let mut accounts = Accounts {
            next_user_id: UserId::new(1),
            ..Accounts::default()
        };
        for (id, user) in store.load_users()? {
            accounts.by_name.insert(user.username.to_lowercase(), id);
            accounts
                .by_lookalike
                .entry(accounts::lookalike_key(&user.username))
                .or_insert(id);
            accounts.users.insert(
                id,
                Account {
                    username: user.username.into(),
                    password_hash: user.password_hash,
                    created_at: user.created_at,
                    disabled: user.disabled,
                },
            );
            accounts.next_user_id = accounts.next_user_id.max(id.next());
        }
        for (hash, token) in store.load_tokens()? {
            accounts.tokens.insert(hash, token.user_id);
        }

        let mut directory = Directory {
            next_room_id: RoomId::new(1),
            ..Directory::default()
        };
        let reservations: HashMap<RoomId, (MsgId, Seq)> = store
            .load_reservations()?
            .into_iter()
            .map(|(room, msg_id, seq)| (room, (msg_id, seq)))
            .collect();
        let clean = store.clean_start();
        if !clean {
            tracing::warn!(
                "the previous run did not shut down cleanly: changes of its last flush \
                 interval may be lost, and each room's ids resume above the reserved block"
            );
        }
        for (id, record) in store.load_rooms()? {
            directory.next_room_id = directory.next_room_id.max(id.next());
            if let (Some(pair), false) = (record.direct, record.closed) {
                directory.direct.insert(pair, id);
            }
            let (stored, last_at) = store.last_message(id)?;
            let stored_seq = store.last_seq(id)?;
            let (reserved, reserved_seq) = reservations.get(&id).copied().unwrap_or_default();
            let (reserved, reserved_seq) = (reserved.max(stored), reserved_seq.max(stored_seq));
            // After a crash, ids between the last stored one and the reservation may
            // have been acknowledged and lost: none of them is handed out again.
            let (last, last_seq) = if clean {
                (stored, stored_seq)
            } else {
                (reserved, reserved_seq)
            };
            directory.rooms.insert(
                id,
                RoomEntry::new(
                    record,
                    Sequence {
                        last,
                        last_at,
                        reserved,
                        last_seq,
                        reserved_seq,
                        ..Sequence::default()
                    },
                ),
            );
        }
        for (room_id, user_id, member) in store.load_members()? {
            if let Some(room) = directory.rooms.get_mut(&room_id) {
                room.members.insert(user_id, member);
                directory
                    .user_rooms
                    .entry(user_id)
                    .or_default()
                    .insert(room_id);
            }
        }
        reading::load_markers(&mut directory, store.load_read_markers()?);
        mentions::load_unread(&store, &mut directory)?;
        for (room_id, user_id, ban) in store.load_bans()? {
            if let Some(room) = directory.rooms.get_mut(&room_id) {
                room.bans.insert(user_id, ban);
            }
        }
        for (room_id, user_id, mute) in store.load_mutes()? {
            if let Some(room) = directory.rooms.get_mut(&room_id) {
                room.mutes.insert(user_id, mute);
            }
        }
        for (room_id, user_id, invite) in store.load_invites()? {
            if let Some(room) = directory.rooms.get_mut(&room_id) {
                room.invites.insert(user_id, invite);
            }
        }
        for (blocker, blocked, _) in store.load_blocks()? {
            directory.blocks.entry(blocker).or_default().insert(blocked);
        }
        let unsaved_read_rooms = directory
            .rooms
            .iter()
            .filter(|(_, room)| !room.sequence().unsaved.is_empty())
            .map(|(id, _)| *id)
            .collect();
        let swept = store.sweep_files(true, std::time::Duration::ZERO)?;
        if swept > 0 {
            tracing::info!(
                removed = swept,
                "removed abandoned uploads and deleted files"
            );
        }
        tracing::info!(
            users = accounts.users.len(),
            rooms = directory.rooms.len(),
            "chat state loaded"
        );
        Ok(Self {
            store,
            bus,
            metrics,
            last_flush_attempt: AtomicI64::new(now_millis()),
            accounts: RwLock::new(accounts),
            directory: RwLock::new(directory),
            decoy_hash: tokio::sync::OnceCell::new(),
            pending_client_ids: Mutex::new(HashMap::new()),
            unsaved_read_rooms: Mutex::new(unsaved_read_rooms),
            read_saving: tokio::sync::Mutex::new(()),
            limits: Limits::new(&settings),
            hashing: password::Hashing::new(
                settings.limits.concurrent_login_hashes,
                settings.limits.concurrent_other_hashes,
            ),
            presence: Mutex::new(presence::Presence::default()),
            typing_times: Mutex::new(presence::TypingTimes::new()),
            search_index: std::sync::OnceLock::new(),
            settings,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn bus(&self) -> &Arc<Bus<Event>> {
        &self.bus
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    // The locks below guard maps whose every update is a single insert or remove
    // made after the fallible work, so a panic elsewhere cannot leave them torn:
    // poisoning is ignored.

    fn accounts(&self) -> RwLockReadGuard<'_, Accounts> {
        self.accounts.read().unwrap_or_else(|p| p.into_inner())
    }

    fn accounts_mut(&self) -> RwLockWriteGuard<'_, Accounts> {
        self.accounts.write().unwrap_or_else(|p| p.into_inner())
    }

    fn directory(&self) -> RwLockReadGuard<'_, Directory> {
        self.directory.read().unwrap_or_else(|p| p.into_inner())
    }

    fn directory_mut(&self) -> RwLockWriteGuard<'_, Directory> {
        self.directory.write().unwrap_or_else(|p| p.into_inner())
    }

    fn unsaved_read_rooms(&self) -> MutexGuard<'_, HashSet<RoomId>> {
        self.unsaved_read_rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The name of a user, for views.
    fn username(&self, user: UserId) -> Arc<str> {
        self.accounts().name_of(user)
    }

    /// Forgets rate-limit buckets that have refilled. Called by a periodic job.
    pub fn prune_rate_limits(&self) {
        self.limits.prune();
        self.prune_typing();
    }
}

impl Accounts {
    fn name_of(&self, user: UserId) -> Arc<str> {
        self.users
            .get(&user)
            .map(|a| Arc::clone(&a.username))
            .unwrap_or_else(|| Arc::from("unknown"))
    }
}

impl Directory {
    /// Whether `blocker` blocks `user`.
    fn blocks(&self, blocker: UserId, user: UserId) -> bool {
        self.blocks.get(&blocker).is_some_and(|b| b.contains(&user))
    }

    /// The room, if `user` may know it exists; 404 otherwise, so that private and
    /// direct rooms do not leak to outsiders.
    fn visible(&self, room: RoomId, user: UserId) -> Result<&RoomEntry> {
        self.rooms
            .get(&room)
            .filter(|r| r.visible_to(user))
            .ok_or(Error::RoomNotFound)
    }

    /// The room, if `user` is a member of it.
    fn joined(&self, room: RoomId, user: UserId) -> Result<&RoomEntry> {
        let entry = self.visible(room, user)?;
        if entry.members.contains_key(&user) {
            Ok(entry)
        } else {
            Err(Error::forbidden(
                "not_a_member",
                format!("you are not a member of room {room}"),
            ))
        }
    }
}
