//! The repository: sled trees for users, tokens, rooms, memberships and messages, and
//! the write-behind buffer in front of the message tree.
//!
//! Keys are big-endian ids, so a range scan walks a room's history in `msg_id` order;
//! values are bincode. Users, tokens, rooms and memberships are written through;
//! messages go to [`buffer::WriteBehind`] and reach sled on the next flush.

mod backup;
mod buffer;
mod files;
mod migrate;
mod records;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::*;
pub use backup::{BackupStats, BackupWriter};
use buffer::WriteBehind;
pub use buffer::{Batch, FlushReport, Generation};
pub use files::{FilesUsage, Upload, HEAD_BYTES};
use records::*;

/// Written into the `meta` tree of a new database; a database without it, or with
/// another value, is not ours and is never written to.
const SCHEMA: &[u8] = b"daehwa/3";
const SCHEMA_KEY: &[u8] = b"schema";
/// Changes per chunk when a flush writes the buffer (see [`ChunkWrites`]).
const WRITE_CHUNK: usize = 1000;
/// A background flush gives the core away after this much writing...
const PAUSE_EVERY: Duration = Duration::from_micros(250);
/// ...for this long (the kernel's timer slack makes it about 50 µs).
const PAUSE: Duration = Duration::from_micros(1);

/// How a flush shares the core with the runtime's worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPriority {
    /// For `buffered` durability, where no one waits for the flush: it pauses every
    /// [`PAUSE_EVERY`] of writing, so that a worker woken meanwhile runs within that
    /// time instead of after the flush thread's slice of the core (about 3 ms). A
    /// lower scheduling priority would do it without the pauses but lets a busy core
    /// starve the flush, and with it the loss bound (see ARCHITECTURE.md,
    /// "Background threads").
    Background,
    /// Straight through: `sync` durability, whose answers wait for the flush.
    Server,
}

/// Makes a background flush pause (see [`FlushPriority::Background`]).
struct Pacer {
    pauses: bool,
    since: Instant,
}

impl Pacer {
    fn new(priority: FlushPriority) -> Self {
        Self {
            pauses: priority == FlushPriority::Background,
            since: Instant::now(),
        }
    }

    /// Called after each write: pauses when it is time.
    fn tick(&mut self) {
        if self.pauses && self.since.elapsed() >= PAUSE_EVERY {
            std::thread::sleep(PAUSE);
            self.since = Instant::now();
        }
    }
}
/// sled's page cache when the caller does not say (`storage.cache_mib`'s default).
/// sled counts a page by its encoded size; the nodes it keeps in memory take about
/// two and a half times that (the heap in use at the many-rooms peak: about 26 MiB
/// with 4, 43 MiB with 16). See ARCHITECTURE.md, "Memory and sled's lock".
pub const DEFAULT_CACHE_BYTES: u64 = 4 * 1024 * 1024;
/// Present in `meta` exactly while the database is closed after a graceful shutdown.
const CLEAN_KEY: &[u8] = b"clean_shutdown";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sled(#[from] sled::Error),
    #[error("record encoding: {0}")]
    Codec(#[from] bincode::Error),
    #[error("{0}")]
    NotOurs(String),
    #[error("the data directory is in use by a running daehwa; stop it first, or use its HTTP admin endpoints")]
    Locked,
    #[error("backup: {0}")]
    Backup(String),
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
    #[error("a blocking store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The database, cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// sled 0.34 takes no lock for single-key operations until the first
/// `apply_batch` or transaction of the process; from then on every operation takes
/// a process-wide read-write lock, and a batch or transaction takes it for writing.
/// A batch then waits for sled's background flusher (which holds it for reading
/// through its disk writes) and every reader waits behind the batch: the runtime's
/// worker stalled for 40-60 ms per flush. So a running server makes single-key
/// writes only (`compare_and_swap` where two writes race); only `restore`, on a
/// database no server holds, writes batches.
struct Inner {
    db: sled::Db,
    /// user id → [`UserRecord`].
    userid_user: sled::Tree,
    /// lower-cased username → user id; the uniqueness guard for names.
    username_userid: sled::Tree,
    /// BLAKE2b-256 of a token → [`TokenRecord`].
    tokenhash_token: sled::Tree,
    /// room id → [`RoomRecord`].
    roomid_room: sled::Tree,
    /// room id ++ user id → [`MemberRecord`].
    roomid_userid_member: sled::Tree,
    /// room id ++ msg id → [`MessageRecord`]: each message as it is now.
    roomid_msgid_message: sled::Tree,
    /// user id ++ created at ++ room id ++ msg id → (): the messages that mention a
    /// user, in time order, for `GET /api/users/me/mentions`. Written with the change
    /// that mentions, never rewritten: readers check the message as it is now.
    userid_createdat_roomid_msgid_mention: sled::Tree,
    /// room id ++ user id ++ msg id → (): the same mentions by room, for each
    /// member's unread mentions at start.
    roomid_userid_msgid_mention: sled::Tree,
    /// room id ++ msg id ++ file id → [`AttachmentRecord`]: the files a message
    /// carries, written with the message, before it; taken out after its delete.
    roomid_msgid_fileid_attachment: sled::Tree,
    /// file id ++ room id ++ msg id → (): the messages that carry a file, so that a
    /// file goes once no message refers to it.
    fileid_roomid_msgid_attachment: sled::Tree,
    /// room id ++ seq → [`ChangeRecord`]: each room's log of edits, deletes and
    /// reactions. A new message is not logged: its record carries the seq of the
    /// change that posted it, and posted seqs rise with msg ids, so the room's
    /// messages are the log of its new messages (see [`Store::changes_after`]).
    /// One record per new message instead of two (see ARCHITECTURE.md, "One record
    /// per new message").
    roomid_seq_change: sled::Tree,
    /// room id → the highest `msg_id` that may have been handed out. Made durable
    /// before any id above it is used, so a crash never leads to an id used twice.
    roomid_reservedmsgid: sled::Tree,
    /// room id → the highest `seq` that may have been handed out, likewise.
    roomid_reservedseq: sled::Tree,
    /// user id ++ clientMsgId → [`MessageRef`], written with the message itself.
    userid_clientmsgid_ref: sled::Tree,
    /// room id ++ user id → the member's read marker, a big-endian msg id. Written
    /// lazily, by the periodic flush and at shutdown (see [`Store::save_read_markers`]).
    roomid_userid_readmsgid: sled::Tree,
    /// room id ++ user id → [`BanRecord`].
    roomid_userid_ban: sled::Tree,
    /// room id ++ user id → [`MuteRecord`].
    roomid_userid_mute: sled::Tree,
    /// room id ++ user id → [`InviteRecord`].
    roomid_userid_invite: sled::Tree,
    /// blocking user id ++ blocked user id → [`BlockRecord`].
    userid_userid_block: sled::Tree,
    /// `meta`: the schema marker and the clean-shutdown marker.
    meta: sled::Tree,
    /// Changes accepted but not yet on disk.
    buffer: WriteBehind,
    /// Uploaded files: their records and their bytes.
    files: files::Files,
    /// Whether the previous run ended with a graceful shutdown.
    clean_start: bool,
    /// Told of each flush's changes once they are on disk (the search indexer).
    on_flush: std::sync::OnceLock<FlushListener>,
}

/// What is told of each flush's changes once they are on disk; it must not wait.
pub type FlushListener = Box<dyn Fn(Vec<Arc<Change>>) + Send + Sync>;

fn key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn pair_key(a: u64, b: u64) -> [u8; 16] {
    let mut k = [0; 16];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..].copy_from_slice(&b.to_be_bytes());
    k
}

fn triple_key(a: u64, b: u64, c: u64) -> [u8; 24] {
    let mut k = [0; 24];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..16].copy_from_slice(&b.to_be_bytes());
    k[16..].copy_from_slice(&c.to_be_bytes());
    k
}

/// Where a message that mentions someone is, in the order of a user's mentions:
/// by time, then room, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MentionKey {
    pub created_at: Millis,
    pub room_id: RoomId,
    pub msg_id: MsgId,
}

/// user ++ created at (0 for a time before 1970) ++ room ++ msg.
fn mention_key(user: UserId, at: &MentionKey) -> [u8; 32] {
    let mut k = [0; 32];
    k[..8].copy_from_slice(&user.to_be_bytes());
    k[8..16].copy_from_slice(&(at.created_at.max(0) as u64).to_be_bytes());
    k[16..24].copy_from_slice(&at.room_id.to_be_bytes());
    k[24..].copy_from_slice(&at.msg_id.to_be_bytes());
    k
}

fn client_key(user: UserId, client_msg_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + client_msg_id.len());
    k.extend_from_slice(&user.to_be_bytes());
    k.extend_from_slice(client_msg_id.as_bytes());
    k
}

fn id_of(bytes: &[u8]) -> StoreResult<u64> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| {
        StoreError::NotOurs(format!(
            "a key of {} bytes where 8 were expected",
            bytes.len()
        ))
    })?;
    Ok(u64::from_be_bytes(array))
}

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    Ok(bincode::serialize(value)?)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    Ok(bincode::deserialize(bytes)?)
}

/// Reads every record `R` of a tree keyed by one id, as domain values `T`.
fn load_all<R, T>(tree: &sled::Tree) -> StoreResult<Vec<(u64, T)>>
where
    R: DeserializeOwned,
    T: From<R>,
{
    tree.iter()
        .map(|entry| {
            let (k, v) = entry?;
            Ok((id_of(&k)?, T::from(decode::<R>(&v)?)))
        })
        .collect()
}

/// Reads every record `R` of a tree keyed by two ids, as domain values `T`.
fn load_pairs<R, T>(tree: &sled::Tree) -> StoreResult<Vec<(u64, u64, T)>>
where
    R: DeserializeOwned,
    T: From<R>,
{
    tree.iter()
        .map(|entry| {
            let (k, v) = entry?;
            if k.len() != 16 {
                return Err(StoreError::NotOurs(format!(
                    "a pair key of {} bytes",
                    k.len()
                )));
            }
            Ok((id_of(&k[..8])?, id_of(&k[8..])?, T::from(decode::<R>(&v)?)))
        })
        .collect()
}

/// Pairs of (room, user) ids, typed.
fn room_user<T>(pairs: Vec<(u64, u64, T)>) -> Vec<(RoomId, UserId, T)> {
    pairs
        .into_iter()
        .map(|(room, user, value)| (RoomId::new(room), UserId::new(user), value))
        .collect()
}

fn put_pair<T: Serialize>(tree: &sled::Tree, a: u64, b: u64, value: &T) -> StoreResult<()> {
    tree.insert(pair_key(a, b), encode(value)?)?;
    Ok(())
}

fn remove_pair(tree: &sled::Tree, a: u64, b: u64) -> StoreResult<()> {
    tree.remove(pair_key(a, b))?;
    Ok(())
}

/// What one chunk of a flush writes, one list per tree, applied one insert (or
/// removal) at a time (never a sled batch: see [`Inner`] on sled's lock) in an order
/// that a crash can only cut, never reorder (sled recovers its log in order):
/// 1. what points to messages (client-id references, the mention index; an index
///    of what messages say joins here, adding a change's new text and taking out
///    `Change::before`'s): after a crash a stored message has all of them, and one
///    whose message is missing (or no longer says it) is recognized by its reader;
/// 2. the messages as they are after the chunk's changes (a new message's record is
///    also its entry in the room's log);
/// 3. the log entries of edits, deletes and reactions: a logged change always finds
///    its message at least as new.
///
/// Each list is in the chunk's order, each room's changes in `seq` order, so a cut
/// inside one leaves a prefix of each room.
#[derive(Default)]
struct ChunkWrites {
    references: Writes,
    /// With 1.: the files messages carry (both ways).
    attachments: Writes,
    attachment_refs: Writes,
    /// After 3.: the attachments of deleted messages, and the files that may be
    /// referred to by no message any more.
    attachments_removed: Writes,
    attachment_refs_removed: Writes,
    maybe_orphaned: Vec<FileId>,
    mentions_by_user: Writes,
    mentions_by_room: Writes,
    messages: Writes,
    log: Writes,
}

/// Inserts into (and removals from) one tree, in order.
#[derive(Default)]
struct Writes(Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl Writes {
    fn insert(&mut self, key: &[u8], value: impl Into<Vec<u8>>) {
        self.0.push((key.to_vec(), Some(value.into())));
    }

    fn remove(&mut self, key: &[u8]) {
        self.0.push((key.to_vec(), None));
    }

    fn apply(self, tree: &sled::Tree, pacer: &mut Pacer) -> StoreResult<()> {
        for (key, value) in self.0 {
            match value {
                Some(value) => tree.insert(key, value)?,
                None => tree.remove(key)?,
            };
            pacer.tick();
        }
        Ok(())
    }
}

impl ChunkWrites {
    fn add(&mut self, change: &Change) -> StoreResult<()> {
        let message = &change.message;
        let room = message.room_id.get();
        self.add_attachments(change)?;
        if change.kind == ChangeKind::Posted {
            if let Some(client_id) = &message.client_msg_id {
                let reference = MessageRefRecord {
                    room_id: room,
                    msg_id: message.msg_id.get(),
                    created_at: message.created_at,
                };
                self.references.insert(
                    &client_key(message.sender_id, client_id),
                    encode(&reference)?,
                );
            }
        }
        for &user in &change.mentioned {
            let at = MentionKey {
                created_at: message.created_at,
                room_id: message.room_id,
                msg_id: message.msg_id,
            };
            self.mentions_by_user
                .insert(&mention_key(user, &at), Vec::new());
            self.mentions_by_room.insert(
                &triple_key(room, user.get(), message.msg_id.get()),
                Vec::new(),
            );
        }
        // A later change of the same message in this chunk replaces the state.
        self.messages.insert(
            &pair_key(room, message.msg_id.get()),
            encode(&MessageRecord::from(&**message))?,
        );
        if change.kind != ChangeKind::Posted {
            self.log.insert(
                &pair_key(room, change.seq.get()),
                encode(&ChangeRecord::from(change))?,
            );
        }
        Ok(())
    }

    fn add_attachments(&mut self, change: &Change) -> StoreResult<()> {
        let message = &change.message;
        let (room, msg) = (message.room_id.get(), message.msg_id.get());
        match change.kind {
            ChangeKind::Posted => {
                for a in &message.attachments {
                    let file = a.file_id.get();
                    self.attachments.insert(
                        &triple_key(room, msg, file),
                        encode(&AttachmentRecord::from(a))?,
                    );
                    self.attachment_refs
                        .insert(&triple_key(file, room, msg), Vec::new());
                }
            }
            ChangeKind::Deleted => {
                let carried = change.before.as_deref().unwrap_or(message);
                for a in &carried.attachments {
                    let file = a.file_id.get();
                    self.attachments_removed
                        .remove(&triple_key(room, msg, file));
                    self.attachment_refs_removed
                        .remove(&triple_key(file, room, msg));
                    self.maybe_orphaned.push(a.file_id);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn apply(self, inner: &Inner, pacer: &mut Pacer) -> StoreResult<()> {
        self.attachment_refs
            .apply(&inner.fileid_roomid_msgid_attachment, pacer)?;
        self.attachments
            .apply(&inner.roomid_msgid_fileid_attachment, pacer)?;
        self.references
            .apply(&inner.userid_clientmsgid_ref, pacer)?;
        self.mentions_by_user
            .apply(&inner.userid_createdat_roomid_msgid_mention, pacer)?;
        self.mentions_by_room
            .apply(&inner.roomid_userid_msgid_mention, pacer)?;
        self.messages.apply(&inner.roomid_msgid_message, pacer)?;
        self.log.apply(&inner.roomid_seq_change, pacer)?;
        self.attachments_removed
            .apply(&inner.roomid_msgid_fileid_attachment, pacer)?;
        self.attachment_refs_removed
            .apply(&inner.fileid_roomid_msgid_attachment, pacer)?;
        // A file no message refers to any more goes: its record now, its bytes at
        // the next sweep.
        for file in self.maybe_orphaned {
            let prefix = file.get().to_be_bytes();
            if inner
                .fileid_roomid_msgid_attachment
                .scan_prefix(prefix)
                .next()
                .is_none()
            {
                inner.files.forget(file)?;
            }
        }
        Ok(())
    }
}

/// Sets a big-endian counter to `value` unless it is already higher.
fn raise(tree: &sled::Tree, k: [u8; 8], value: u64) -> StoreResult<()> {
    tree.update_and_fetch(k, |old| {
        let old = old
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_be_bytes);
        Some(key(old.max(value)).to_vec())
    })?;
    Ok(())
}

impl Store {
    /// Opens (or creates) the database in `path` with the default cache. Refuses a
    /// directory that holds something other than a daehwa database, without writing
    /// to it.
    pub fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] with a page cache of `cache_bytes` (sled's own default is
    /// 1 GiB, which a long-running server fills with history it read once).
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> StoreResult<Self> {
        if path.is_dir() && !path.join("conf").exists() && !path.join("db").exists() {
            let mut entries = std::fs::read_dir(path)
                .map_err(|e| StoreError::NotOurs(format!("cannot read {}: {e}", path.display())))?;
            if entries.next().is_some() {
                return Err(StoreError::NotOurs(format!(
                    "{} is not empty and holds no daehwa database; refusing to write there",
                    path.display()
                )));
            }
        }
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| match e {
                // sled words its lock failure as an I/O error of its own.
                sled::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("could not acquire lock") =>
                {
                    StoreError::Locked
                }
                other => StoreError::Sled(other),
            })?;
        // Look before creating anything: a database without our `meta` tree and with
        // data of its own belongs to someone else.
        let has_meta = db.tree_names().iter().any(|name| name.as_ref() == b"meta");
        if !has_meta && (db.tree_names().len() > 1 || !db.is_empty()) {
            return Err(StoreError::NotOurs(format!(
                "{} is a sled database but not a daehwa one; refusing to write there",
                path.display()
            )));
        }
        // `schema` → SCHEMA, and the clean-shutdown marker.
        let meta = db.open_tree("meta")?;
        match meta.get(SCHEMA_KEY)? {
            Some(found) if found == SCHEMA => migrate::tidy(&db, &meta)?,
            Some(found) if migrate::FROM.contains(&found.as_ref()) => {
                migrate::run(&db, &meta, &found, path)?
            }
            Some(found) => {
                return Err(StoreError::NotOurs(format!(
                    "{} holds schema {:?}, this daehwa reads {:?}",
                    path.display(),
                    String::from_utf8_lossy(&found),
                    String::from_utf8_lossy(SCHEMA)
                )))
            }
            None if has_meta => {
                return Err(StoreError::NotOurs(format!(
                    "{} has no daehwa schema marker; refusing to write there",
                    path.display()
                )))
            }
            None => {
                // A new database: as clean as after a graceful shutdown.
                meta.insert(SCHEMA_KEY, SCHEMA)?;
                meta.insert(CLEAN_KEY, &[1])?;
                db.flush()?;
            }
        }
        let clean_start = meta.remove(CLEAN_KEY)?.is_some();
        // From here on a crash must be detectable at the next start.
        db.flush()?;
        let inner = Inner {
            roomid_reservedmsgid: db.open_tree("roomid_reservedmsgid")?,
            roomid_reservedseq: db.open_tree("roomid_reservedseq")?,
            roomid_seq_change: db.open_tree("roomid_seq_change")?,
            roomid_msgid_fileid_attachment: db.open_tree("roomid_msgid_fileid_attachment")?,
            fileid_roomid_msgid_attachment: db.open_tree("fileid_roomid_msgid_attachment")?,
            userid_createdat_roomid_msgid_mention: db
                .open_tree("userid_createdat_roomid_msgid_mention")?,
            roomid_userid_msgid_mention: db.open_tree("roomid_userid_msgid_mention")?,
            userid_clientmsgid_ref: db.open_tree("userid_clientmsgid_ref")?,
            roomid_userid_readmsgid: db.open_tree("roomid_userid_readmsgid")?,
            roomid_userid_ban: db.open_tree("roomid_userid_ban")?,
            roomid_userid_mute: db.open_tree("roomid_userid_mute")?,
            roomid_userid_invite: db.open_tree("roomid_userid_invite")?,
            userid_userid_block: db.open_tree("userid_userid_block")?,
            meta,
            clean_start,
            on_flush: std::sync::OnceLock::new(),
            userid_user: db.open_tree("userid_user")?,
            username_userid: db.open_tree("username_userid")?,
            tokenhash_token: db.open_tree("tokenhash_token")?,
            roomid_room: db.open_tree("roomid_room")?,
            roomid_userid_member: db.open_tree("roomid_userid_member")?,
            roomid_msgid_message: db.open_tree("roomid_msgid_message")?,
            buffer: WriteBehind::default(),
            files: files::Files::open(&db, path)?,
            db,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    // ----- users and tokens -----

    pub fn load_users(&self) -> StoreResult<Vec<(UserId, User)>> {
        Ok(load_all::<UserRecord, User>(&self.inner.userid_user)?
            .into_iter()
            .map(|(id, user)| (UserId::new(id), user))
            .collect())
    }

    /// Inserts a new user and claims its name. Returns `false` (and writes nothing)
    /// when the name is taken.
    pub fn insert_user(&self, id: UserId, user: &User) -> StoreResult<bool> {
        let inner = &self.inner;
        let name_key = user.username.to_lowercase();
        let id = key(id.get());
        // The user first, then the name, claimed atomically. A crash in between leaves
        // a user whose name is unclaimed; start-up reads names from the users
        // themselves, so the account is whole all the same.
        inner
            .userid_user
            .insert(id, encode(&UserRecord::from(user))?)?;
        let claimed = inner.username_userid.compare_and_swap(
            name_key.as_bytes(),
            None as Option<&[u8]>,
            Some(&id),
        )?;
        if claimed.is_err() {
            inner.userid_user.remove(id)?;
            return Ok(false);
        }
        Ok(true)
    }

    pub fn put_user(&self, id: UserId, user: &User) -> StoreResult<()> {
        self.inner
            .userid_user
            .insert(key(id.get()), encode(&UserRecord::from(user))?)?;
        Ok(())
    }

    pub fn load_tokens(&self) -> StoreResult<Vec<([u8; 32], Token)>> {
        self.inner
            .tokenhash_token
            .iter()
            .map(|entry| {
                let (k, v) = entry?;
                let hash: [u8; 32] = k.as_ref().try_into().map_err(|_| {
                    StoreError::NotOurs(format!("a token key of {} bytes", k.len()))
                })?;
                Ok((hash, Token::from(decode::<TokenRecord>(&v)?)))
            })
            .collect()
    }

    pub fn insert_token(&self, hash: &[u8; 32], token: &Token) -> StoreResult<()> {
        self.inner
            .tokenhash_token
            .insert(hash, encode(&TokenRecord::from(token))?)?;
        Ok(())
    }

    pub fn remove_token(&self, hash: &[u8; 32]) -> StoreResult<()> {
        self.inner.tokenhash_token.remove(hash)?;
        Ok(())
    }

    // ----- rooms and memberships -----

    pub fn load_rooms(&self) -> StoreResult<Vec<(RoomId, Room)>> {
        Ok(load_all::<RoomRecord, Room>(&self.inner.roomid_room)?
            .into_iter()
            .map(|(id, room)| (RoomId::new(id), room))
            .collect())
    }

    pub fn put_room(&self, id: RoomId, room: &Room) -> StoreResult<()> {
        self.inner
            .roomid_room
            .insert(key(id.get()), encode(&RoomRecord::from(room))?)?;
        Ok(())
    }

    pub fn load_members(&self) -> StoreResult<Vec<(RoomId, UserId, Member)>> {
        Ok(room_user(load_pairs::<MemberRecord, Member>(
            &self.inner.roomid_userid_member,
        )?))
    }

    pub fn put_member(&self, room: RoomId, user: UserId, member: &Member) -> StoreResult<()> {
        put_pair(
            &self.inner.roomid_userid_member,
            room.get(),
            user.get(),
            &MemberRecord::from(member),
        )
    }

    pub fn remove_member(&self, room: RoomId, user: UserId) -> StoreResult<()> {
        remove_pair(&self.inner.roomid_userid_member, room.get(), user.get())
    }

    // ----- moderation: bans, mutes, invitations, blocks -----

    pub fn load_bans(&self) -> StoreResult<Vec<(RoomId, UserId, Ban)>> {
        Ok(room_user(load_pairs::<BanRecord, Ban>(
            &self.inner.roomid_userid_ban,
        )?))
    }

    pub fn put_ban(&self, room: RoomId, user: UserId, ban: &Ban) -> StoreResult<()> {
        put_pair(
            &self.inner.roomid_userid_ban,
            room.get(),
            user.get(),
            &BanRecord::from(ban),
        )
    }

    pub fn remove_ban(&self, room: RoomId, user: UserId) -> StoreResult<()> {
        remove_pair(&self.inner.roomid_userid_ban, room.get(), user.get())
    }

    pub fn load_mutes(&self) -> StoreResult<Vec<(RoomId, UserId, Mute)>> {
        Ok(room_user(load_pairs::<MuteRecord, Mute>(
            &self.inner.roomid_userid_mute,
        )?))
    }

    pub fn put_mute(&self, room: RoomId, user: UserId, mute: &Mute) -> StoreResult<()> {
        put_pair(
            &self.inner.roomid_userid_mute,
            room.get(),
            user.get(),
            &MuteRecord::from(mute),
        )
    }

    pub fn remove_mute(&self, room: RoomId, user: UserId) -> StoreResult<()> {
        remove_pair(&self.inner.roomid_userid_mute, room.get(), user.get())
    }

    pub fn load_invites(&self) -> StoreResult<Vec<(RoomId, UserId, Invite)>> {
        Ok(room_user(load_pairs::<InviteRecord, Invite>(
            &self.inner.roomid_userid_invite,
        )?))
    }

    pub fn put_invite(&self, room: RoomId, user: UserId, invite: &Invite) -> StoreResult<()> {
        put_pair(
            &self.inner.roomid_userid_invite,
            room.get(),
            user.get(),
            &InviteRecord::from(invite),
        )
    }

    pub fn remove_invite(&self, room: RoomId, user: UserId) -> StoreResult<()> {
        remove_pair(&self.inner.roomid_userid_invite, room.get(), user.get())
    }

    pub fn load_blocks(&self) -> StoreResult<Vec<(UserId, UserId, Block)>> {
        Ok(
            load_pairs::<BlockRecord, Block>(&self.inner.userid_userid_block)?
                .into_iter()
                .map(|(blocker, blocked, block)| {
                    (UserId::new(blocker), UserId::new(blocked), block)
                })
                .collect(),
        )
    }

    pub fn put_block(&self, blocker: UserId, blocked: UserId, block: &Block) -> StoreResult<()> {
        put_pair(
            &self.inner.userid_userid_block,
            blocker.get(),
            blocked.get(),
            &BlockRecord::from(block),
        )
    }

    pub fn remove_block(&self, blocker: UserId, blocked: UserId) -> StoreResult<()> {
        remove_pair(
            &self.inner.userid_userid_block,
            blocker.get(),
            blocked.get(),
        )
    }

    // ----- read markers -----

    /// Every stored read marker: (room, user, last read msg id).
    pub fn load_read_markers(&self) -> StoreResult<Vec<(RoomId, UserId, MsgId)>> {
        self.inner
            .roomid_userid_readmsgid
            .iter()
            .map(|entry| {
                let (k, v) = entry?;
                if k.len() != 16 {
                    return Err(StoreError::NotOurs(format!(
                        "a read marker key of {} bytes",
                        k.len()
                    )));
                }
                Ok((
                    RoomId::new(id_of(&k[..8])?),
                    UserId::new(id_of(&k[8..])?),
                    MsgId::new(id_of(&v)?),
                ))
            })
            .collect()
    }

    /// Writes read markers one by one (no sled batch: see `Inner`), on a blocking
    /// thread: `Some(msg id)` sets a
    /// member's marker, `None` forgets it (the member left). Not flushed to disk
    /// here: the message flush that follows, sled's own periodic flush (every
    /// 500 ms), or the shutdown's flush does.
    pub async fn save_read_markers(
        &self,
        markers: Vec<(RoomId, UserId, Option<MsgId>)>,
    ) -> StoreResult<()> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_read_markers(&markers)).await?
    }

    fn write_read_markers(&self, markers: &[(RoomId, UserId, Option<MsgId>)]) -> StoreResult<()> {
        let tree = &self.inner.roomid_userid_readmsgid;
        for &(room, user, marker) in markers {
            let k = pair_key(room.get(), user.get());
            match marker {
                Some(msg_id) => tree.insert(k, &key(msg_id.get()))?,
                None => tree.remove(k)?,
            };
        }
        Ok(())
    }

    // ----- messages -----

    /// Whether the previous run ended with a graceful shutdown (so that every
    /// change it acknowledged is on disk).
    pub fn clean_start(&self) -> bool {
        self.inner.clean_start
    }

    /// The highest `msg_id` of a room on disk and when that message was sent (the
    /// buffer is empty at start-up); `(0, None)` for a room without messages.
    pub fn last_message(&self, room: RoomId) -> StoreResult<(MsgId, Option<Millis>)> {
        match self
            .inner
            .roomid_msgid_message
            .scan_prefix(key(room.get()))
            .next_back()
        {
            Some(entry) => {
                let (k, v) = entry?;
                let record: MessageRecord = decode(&v)?;
                Ok((MsgId::new(id_of(&k[8..])?), Some(record.created_at)))
            }
            None => Ok((MsgId::ZERO, None)),
        }
    }

    /// The highest `seq` of a room's changes on disk (the buffer is empty at
    /// start-up): its last logged change or its newest message's posting.
    pub fn last_seq(&self, room: RoomId) -> StoreResult<Seq> {
        let logged = match self
            .inner
            .roomid_seq_change
            .scan_prefix(key(room.get()))
            .next_back()
        {
            Some(entry) => id_of(&entry?.0[8..])?,
            None => 0,
        };
        let posted = match self
            .inner
            .roomid_msgid_message
            .scan_prefix(key(room.get()))
            .next_back()
        {
            Some(entry) => decode::<MessageRecord>(&entry?.1)?.seq,
            None => 0,
        };
        Ok(Seq::new(logged.max(posted)))
    }

    /// Every room's reservations: the highest `msg_id` and `seq` that may have been
    /// handed out.
    pub fn load_reservations(&self) -> StoreResult<Vec<(RoomId, MsgId, Seq)>> {
        let seqs: std::collections::HashMap<u64, u64> = self
            .inner
            .roomid_reservedseq
            .iter()
            .map(|entry| {
                let (k, v) = entry?;
                Ok((id_of(&k)?, id_of(&v)?))
            })
            .collect::<StoreResult<_>>()?;
        self.inner
            .roomid_reservedmsgid
            .iter()
            .map(|entry| {
                let (k, v) = entry?;
                let room = id_of(&k)?;
                let seq = seqs.get(&room).copied().unwrap_or(0);
                Ok((RoomId::new(room), MsgId::new(id_of(&v)?), Seq::new(seq)))
            })
            .collect()
    }

    /// Records that ids up to `msg_upto` and changes up to `seq_upto` may be handed
    /// out in `room`, durably, before returning. Blocks for one sled flush; callers
    /// reserve in blocks. The stored values only rise: of two reservations racing,
    /// the higher stays.
    pub fn reserve(&self, room: RoomId, msg_upto: MsgId, seq_upto: Seq) -> StoreResult<()> {
        let room = key(room.get());
        raise(&self.inner.roomid_reservedmsgid, room, msg_upto.get())?;
        raise(&self.inner.roomid_reservedseq, room, seq_upto.get())?;
        self.inner.db.flush()?;
        Ok(())
    }

    /// Accepts a change: from now on every reader sees it; the next flush stores it.
    /// The generation of the batch it will be stored in.
    pub fn append(&self, change: Arc<Change>) -> Generation {
        self.inner.buffer.push(change)
    }

    /// The generation of the batch being filled now.
    pub fn newest_generation(&self) -> Generation {
        self.inner.buffer.newest_generation()
    }

    /// A message read from disk, with the files it carries.
    fn with_attachments(&self, mut message: Message) -> StoreResult<Message> {
        let prefix = pair_key(message.room_id.get(), message.msg_id.get());
        for entry in self
            .inner
            .roomid_msgid_fileid_attachment
            .scan_prefix(prefix)
        {
            let (k, v) = entry?;
            let file = FileId::new(id_of(&k[16..])?);
            message
                .attachments
                .push(decode::<AttachmentRecord>(&v)?.into_attachment(file));
        }
        Ok(message)
    }

    fn disk_message(&self, room: RoomId, msg_id: MsgId) -> StoreResult<Option<Message>> {
        match self
            .inner
            .roomid_msgid_message
            .get(pair_key(room.get(), msg_id.get()))?
        {
            Some(v) => Ok(Some(self.with_attachments(
                decode::<MessageRecord>(&v)?.into_message(room, msg_id),
            )?)),
            None => Ok(None),
        }
    }

    /// One message as it is now, from the buffer or the disk; from the disk alone
    /// when `include_buffer` is false (what is durable).
    pub fn message(
        &self,
        room: RoomId,
        msg_id: MsgId,
        include_buffer: bool,
    ) -> StoreResult<Option<Arc<Message>>> {
        if let Some(message) = self.buffered_message(room, msg_id, include_buffer) {
            return Ok(Some(message));
        }
        Ok(self.disk_message(room, msg_id)?.map(Arc::new))
    }

    /// Up to `count` messages of `room` with `msg_id < before`, oldest first, as they
    /// are now: from the buffer and the disk together, or from the disk alone when
    /// `include_buffer` is false (what is durable).
    pub fn history(
        &self,
        room: RoomId,
        before: MsgId,
        count: usize,
        include_buffer: bool,
    ) -> StoreResult<Vec<Arc<Message>>> {
        let (buffered, disk_before) = if include_buffer {
            self.inner.buffer.newest_before(room, before, count)
        } else {
            (Vec::new(), before)
        };
        let wanted = count - buffered.len();
        if wanted == 0 || disk_before <= MsgId::new(1) {
            return Ok(buffered);
        }
        let range = pair_key(room.get(), 0)..pair_key(room.get(), disk_before.get());
        let mut older = self
            .inner
            .roomid_msgid_message
            .range(range)
            .rev()
            .take(wanted)
            .map(|entry| {
                let (k, v) = entry?;
                let msg_id = MsgId::new(id_of(&k[8..])?);
                Ok(Arc::new(self.with_attachments(
                    decode::<MessageRecord>(&v)?.into_message(room, msg_id),
                )?))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        older.reverse();
        if include_buffer {
            self.inner.buffer.overlay(room, &mut older);
        }
        older.extend(buffered);
        Ok(older)
    }

    /// Up to `count` changes of `room` with `seq > after`, in order, each with its
    /// message as it is now (not as it was after the change): from the buffer and
    /// the disk, or from the disk alone when `include_buffer` is false. On disk, the
    /// new messages come from the message tree (each record carries the seq that
    /// posted it) and the other changes from the log, merged by seq. A logged change
    /// whose message is missing (a crash between the two writes of a flush) is left
    /// out.
    pub fn changes_after(
        &self,
        room: RoomId,
        after: Seq,
        count: usize,
        include_buffer: bool,
    ) -> StoreResult<Vec<Change>> {
        let (buffered, first_buffered) = if include_buffer {
            self.inner.buffer.changes_after(room, after, count)
        } else {
            (Vec::new(), None)
        };
        // Changes from `first_buffered` on are the buffer's, whatever part of them a
        // flush in progress has written already.
        let disk_end = first_buffered.map_or(u64::MAX, Seq::get);
        let logged = self
            .inner
            .roomid_seq_change
            .range(
                pair_key(room.get(), after.get().saturating_add(1))..pair_key(room.get(), disk_end),
            )
            .map(|entry| {
                let (k, v) = entry?;
                Ok((id_of(&k[8..])?, decode::<ChangeRecord>(&v)?))
            })
            .take(count)
            .collect::<StoreResult<Vec<(u64, ChangeRecord)>>>()?;
        let first = self.first_posted_after(room, after)?;
        let posted = self
            .inner
            .roomid_msgid_message
            .range(pair_key(room.get(), first.get())..=pair_key(room.get(), u64::MAX))
            .map(|entry| {
                let (k, v) = entry?;
                Ok((MsgId::new(id_of(&k[8..])?), decode::<MessageRecord>(&v)?))
            })
            .take_while(|posted| !matches!(posted, Ok((_, record)) if record.seq >= disk_end))
            .take(count)
            .collect::<StoreResult<Vec<(MsgId, MessageRecord)>>>()?;
        let mut changes = Vec::new();
        let mut logged = logged.into_iter().peekable();
        let mut posted = posted.into_iter().peekable();
        while changes.len() < count {
            let next_is_posted = match (posted.peek(), logged.peek()) {
                (Some((_, message)), Some((seq, _))) => message.seq < *seq,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (seq, kind, message) = if next_is_posted {
                let Some((msg_id, record)) = posted.next() else {
                    break;
                };
                let seq = Seq::new(record.seq);
                let message = match self.buffered_message(room, msg_id, include_buffer) {
                    Some(newer) => newer,
                    None => Arc::new(self.with_attachments(record.into_message(room, msg_id))?),
                };
                (seq, ChangeKind::Posted, message)
            } else {
                let Some((seq, record)) = logged.next() else {
                    break;
                };
                let Some(message) =
                    self.message(room, MsgId::new(record.msg_id), include_buffer)?
                else {
                    continue;
                };
                (Seq::new(seq), record.kind.into_kind(), message)
            };
            changes.push(Change {
                seq,
                kind,
                message,
                mentioned: Vec::new(),
                before: None,
            });
        }
        for change in buffered {
            if changes.len() == count {
                break;
            }
            let message = self
                .inner
                .buffer
                .message(room, change.msg_id())
                .unwrap_or_else(|| Arc::clone(&change.message));
            changes.push(Change {
                seq: change.seq,
                kind: change.kind.clone(),
                message,
                mentioned: Vec::new(),
                before: None,
            });
        }
        Ok(changes)
    }

    /// A message's state in the buffer, if it is asked for and there.
    fn buffered_message(
        &self,
        room: RoomId,
        msg_id: MsgId,
        include_buffer: bool,
    ) -> Option<Arc<Message>> {
        include_buffer
            .then(|| self.inner.buffer.message(room, msg_id))
            .flatten()
    }

    /// The lowest msg id from which `room`'s messages on disk were posted after
    /// `after` (one above the newest when none was). Posted seqs rise with msg ids
    /// (both are handed out under the room's lock), so a binary search: about 20
    /// seeks for a million messages, none when the newest was posted before.
    fn first_posted_after(&self, room: RoomId, after: Seq) -> StoreResult<MsgId> {
        let tree = &self.inner.roomid_msgid_message;
        let newest = match tree.scan_prefix(key(room.get())).next_back() {
            Some(entry) => {
                let (k, v) = entry?;
                let newest = id_of(&k[8..])?;
                // The usual resume: what was missed is newer than the disk's newest
                // message (still in the buffer, or a log entry).
                if decode::<MessageRecord>(&v)?.seq <= after.get() {
                    return Ok(MsgId::new(newest.saturating_add(1)));
                }
                newest
            }
            None => return Ok(MsgId::new(1)),
        };
        // The seq that posted the first message at or above `from`, if there is one.
        let posted_from = |from: u64| -> StoreResult<Option<u64>> {
            match tree
                .range(pair_key(room.get(), from)..=pair_key(room.get(), u64::MAX))
                .next()
            {
                Some(entry) => Ok(Some(decode::<MessageRecord>(&entry?.1)?.seq)),
                None => Ok(None),
            }
        };
        // The answer is in lo..=hi: the newest was posted after `after`.
        let (mut lo, mut hi) = (1, newest);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if posted_from(mid)?.is_none_or(|seq| seq > after.get()) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(MsgId::new(lo))
    }

    /// Up to `max` of the messages that mention `user`, newest first, below
    /// `before`: from the index, and the buffer's changes unless `include_buffer`
    /// is false. Entries may point to messages edited or deleted since.
    pub fn mentions_before(
        &self,
        user: UserId,
        before: Option<MentionKey>,
        max: usize,
        include_buffer: bool,
    ) -> StoreResult<Vec<MentionKey>> {
        let start = mention_key(
            user,
            &MentionKey {
                created_at: 0,
                room_id: RoomId::ZERO,
                msg_id: MsgId::ZERO,
            },
        );
        let end = match &before {
            Some(at) => mention_key(user, at).to_vec(),
            None => user.next().to_be_bytes().to_vec(),
        };
        let mut keys: Vec<MentionKey> = Vec::new();
        for entry in self
            .inner
            .userid_createdat_roomid_msgid_mention
            .range(start.to_vec()..end)
            .rev()
            .take(max)
        {
            let (k, _) = entry?;
            if k.len() != 32 {
                return Err(StoreError::NotOurs(format!(
                    "a mention key of {} bytes",
                    k.len()
                )));
            }
            keys.push(MentionKey {
                created_at: id_of(&k[8..16])? as Millis,
                room_id: RoomId::new(id_of(&k[16..24])?),
                msg_id: MsgId::new(id_of(&k[24..])?),
            });
        }
        if include_buffer {
            keys.extend(
                self.inner
                    .buffer
                    .mentioned(user)
                    .into_iter()
                    .filter(|key| before.is_none_or(|b| *key < b)),
            );
            keys.sort_unstable_by(|a, b| b.cmp(a));
            keys.dedup();
            keys.truncate(max);
        }
        Ok(keys)
    }

    /// Up to `max` msg ids above `after` of messages of `room` that mention `user`,
    /// from the index (at start, when the buffer is empty).
    pub fn mentioned_after(
        &self,
        room: RoomId,
        user: UserId,
        after: MsgId,
        max: usize,
    ) -> StoreResult<Vec<MsgId>> {
        let start = triple_key(room.get(), user.get(), after.get().saturating_add(1));
        let end = triple_key(room.get(), user.get(), u64::MAX);
        self.inner
            .roomid_userid_msgid_mention
            .range(start..=end)
            .take(max)
            .map(|entry| Ok(MsgId::new(id_of(&entry?.0[16..])?)))
            .collect()
    }

    /// Changes waiting in the write-behind buffer.
    pub fn buffered_changes(&self) -> usize {
        self.inner.buffer.len()
    }

    /// Whether the last flush failed.
    pub fn flush_failing(&self) -> bool {
        self.inner.buffer.is_failing()
    }

    /// Resolves once a change has been buffered since the last call.
    pub async fn change_pushed(&self) {
        self.inner.buffer.pushed().await
    }

    /// Resolves once the batch of `generation` is on disk.
    pub async fn durable(&self, generation: Generation) {
        self.inner.buffer.durable(generation).await
    }

    /// Writes the oldest buffered batch to sled, with the client ids of its new
    /// messages, and flushes sled to disk.
    pub async fn flush_changes(&self, priority: FlushPriority) -> StoreResult<FlushReport> {
        let store = self.clone();
        self.inner
            .buffer
            .flush(move |batch| store.write_batch(batch, priority))
            .await
    }

    fn write_batch(&self, batch: &Batch, priority: FlushPriority) -> StoreResult<()> {
        let mut pacer = Pacer::new(priority);
        let changes: Vec<&Arc<Change>> = batch.iter().collect();
        // The batch iterates each room's changes in order, so whatever a crash leaves
        // on disk is still a prefix of each room (see `ChunkWrites`).
        for chunk in changes.chunks(WRITE_CHUNK) {
            let mut writes = ChunkWrites::default();
            for change in chunk {
                writes.add(change)?;
            }
            writes.apply(&self.inner, &mut pacer)?;
        }
        self.inner.db.flush()?;
        if let Some(listener) = self.inner.on_flush.get() {
            listener(changes.into_iter().cloned().collect());
        }
        Ok(())
    }

    /// Sets what is told of each flush's changes once they are on disk (once; the
    /// server's search indexer).
    pub fn on_flush(&self, listener: FlushListener) {
        if self.inner.on_flush.set(listener).is_err() {
            tracing::warn!("a second flush listener was ignored");
        }
    }

    /// Where the message a user sent under `client_msg_id` was stored, if it was.
    pub fn client_msg_ref(
        &self,
        user: UserId,
        client_msg_id: &str,
    ) -> StoreResult<Option<MessageRef>> {
        match self
            .inner
            .userid_clientmsgid_ref
            .get(client_key(user, client_msg_id))?
        {
            Some(v) => Ok(Some(MessageRef::from(decode::<MessageRefRecord>(&v)?))),
            None => Ok(None),
        }
    }

    /// Forgets client ids of messages stored before `before`.
    pub fn prune_message_refs(&self, before: Millis) -> StoreResult<usize> {
        let mut pruned = 0;
        for entry in self.inner.userid_clientmsgid_ref.iter() {
            let (k, v) = entry?;
            if decode::<MessageRefRecord>(&v)?.created_at < before {
                self.inner.userid_clientmsgid_ref.remove(k)?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    /// Closes the database for a command that wrote no messages (admin, backup): the
    /// clean-shutdown marker is put back as it was found, so that the next start
    /// still knows whether the last server run crashed.
    pub fn close(&self) -> StoreResult<()> {
        if self.inner.clean_start {
            self.inner.meta.insert(CLEAN_KEY, &[1])?;
        }
        self.inner.db.flush()?;
        Ok(())
    }

    /// Marks the database as closed cleanly. Called last, after the final flush.
    pub async fn mark_clean_shutdown(&self) -> StoreResult<()> {
        self.inner.meta.insert(CLEAN_KEY, &[1])?;
        self.flush_db().await
    }

    /// Flushes sled's own caches to disk (the write-through trees).
    pub async fn flush_db(&self) -> StoreResult<()> {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || db.flush()).await??;
        Ok(())
    }

    /// Size of the database on disk, in bytes.
    pub fn size_on_disk(&self) -> StoreResult<u64> {
        Ok(self.inner.db.size_on_disk()?)
    }
}

/// A text message of user 1, for the store's tests: message `msg_id` of `room_id`,
/// posted by change `seq`.
#[cfg(test)]
fn test_message(room_id: u64, msg_id: u64, seq: u64, text: &str) -> Message {
    Message {
        room_id: RoomId::new(room_id),
        msg_id: MsgId::new(msg_id),
        seq: Seq::new(seq),
        sender_id: UserId::new(1),
        created_at: 0,
        client_msg_id: None,
        body: Body::Text {
            content: text.into(),
            edited_at: None,
            mentions: Mentions::default(),
        },
        reactions: Vec::new(),
        attachments: Vec::new(),
    }
}

#[cfg(test)]
mod write_tests {
    use super::*;

    fn user(name: &str) -> User {
        User {
            username: name.to_owned(),
            password_hash: "hash".to_owned(),
            created_at: 0,
            disabled: false,
        }
    }

    #[test]
    fn a_taken_name_is_refused_and_leaves_no_user_behind() {
        let tmp = tempfile::TempDir::new().expect("tmp");
        let store = Store::open(&tmp.path().join("db")).expect("open");
        assert!(store
            .insert_user(UserId::new(1), &user("Ann"))
            .expect("insert"));
        // Names are compared lower-cased.
        assert!(!store
            .insert_user(UserId::new(2), &user("ann"))
            .expect("insert"));
        let users = store.load_users().expect("load");
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].0, UserId::new(1));
        assert!(store
            .insert_user(UserId::new(3), &user("bob"))
            .expect("insert"));
    }

    #[test]
    fn a_reservation_never_lowers_the_stored_one() {
        let tmp = tempfile::TempDir::new().expect("tmp");
        let store = Store::open(&tmp.path().join("db")).expect("open");
        let (seven, eight) = (RoomId::new(7), RoomId::new(8));
        store
            .reserve(seven, MsgId::new(2000), Seq::new(3000))
            .expect("reserve");
        store
            .reserve(seven, MsgId::new(1000), Seq::new(1000))
            .expect("reserve");
        store
            .reserve(eight, MsgId::new(1000), Seq::new(1000))
            .expect("reserve");
        let mut reservations = store.load_reservations().expect("load");
        reservations.sort();
        assert_eq!(
            reservations,
            [
                (seven, MsgId::new(2000), Seq::new(3000)),
                (eight, MsgId::new(1000), Seq::new(1000))
            ]
        );
    }

    fn change(seq: u64, kind: ChangeKind, message: Arc<Message>) -> Arc<Change> {
        Arc::new(Change {
            seq: Seq::new(seq),
            kind,
            message,
            mentioned: Vec::new(),
            before: None,
        })
    }

    /// New messages are read back from the message tree, the other changes from
    /// the log, merged by seq, on disk and with the buffer after them.
    #[tokio::test]
    async fn changes_are_new_messages_and_logged_edits_merged_in_order() {
        let tmp = tempfile::TempDir::new().expect("tmp");
        let store = Store::open(&tmp.path().join("db")).expect("open");
        let room = RoomId::new(1);
        // Posted seqs rise with msg ids, with edits between them.
        let first = test_message(1, 1, 1, "one");
        let second = test_message(1, 2, 2, "two");
        let third = test_message(1, 3, 4, "three");
        let fourth = test_message(1, 4, 6, "four");
        let mut edited = first.clone();
        edited.body = Body::Text {
            content: "one, edited".into(),
            edited_at: Some(5),
            mentions: Mentions::default(),
        };
        let mut deleted = second.clone();
        deleted.body = Body::Deleted {
            by: UserId::new(1),
            at: 6,
        };
        for c in [
            change(1, ChangeKind::Posted, Arc::new(first)),
            change(2, ChangeKind::Posted, Arc::new(second)),
            change(3, ChangeKind::Edited, Arc::new(edited)),
            change(4, ChangeKind::Posted, Arc::new(third)),
        ] {
            store.append(c);
        }
        store
            .flush_changes(FlushPriority::Server)
            .await
            .expect("flush");
        // Buffered only: a delete of message 2 and message 4.
        store.append(change(5, ChangeKind::Deleted, Arc::new(deleted)));
        store.append(change(6, ChangeKind::Posted, Arc::new(fourth)));

        let seen = |after: u64, count: usize, include_buffer: bool| -> Vec<(u64, u64, String)> {
            store
                .changes_after(room, Seq::new(after), count, include_buffer)
                .expect("changes")
                .iter()
                .map(|c| {
                    (
                        c.seq.get(),
                        c.message.msg_id.get(),
                        match (&c.kind, c.message.content()) {
                            (ChangeKind::Posted, Some(text)) => format!("posted {text}"),
                            (ChangeKind::Posted, None) => "posted, deleted since".to_owned(),
                            (ChangeKind::Edited, _) => "edited".to_owned(),
                            (ChangeKind::Deleted, _) => "deleted".to_owned(),
                            (other, _) => format!("{other:?}"),
                        },
                    )
                })
                .collect()
        };
        let everything = seen(0, 10, true);
        assert_eq!(
            everything,
            [
                (1, 1, "posted one, edited".to_owned()),
                (2, 2, "posted, deleted since".to_owned()),
                (3, 1, "edited".to_owned()),
                (4, 3, "posted three".to_owned()),
                (5, 2, "deleted".to_owned()),
                (6, 4, "posted four".to_owned()),
            ],
            "each change with its message as it is now"
        );
        for after in 0..=6 {
            for count in 1..=7 {
                let expected: Vec<_> = everything
                    .iter()
                    .filter(|c| c.0 > after)
                    .take(count)
                    .cloned()
                    .collect();
                assert_eq!(seen(after, count, true), expected, "after {after}, {count}");
            }
        }
        // The disk alone: the flushed changes, each message as it is on disk.
        let seqs: Vec<u64> = seen(0, 10, false).iter().map(|c| c.0).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(seen(0, 10, false)[1].2, "posted two");
        assert_eq!(seen(3, 10, false).len(), 1);
        assert!(seen(4, 10, false).is_empty());
        assert_eq!(store.last_seq(room).expect("seq"), Seq::new(4));
        assert!(store
            .changes_after(RoomId::new(2), Seq::ZERO, 10, true)
            .expect("changes")
            .is_empty());
    }
}
