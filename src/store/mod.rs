//! The repository: sled trees for users, tokens, rooms, memberships and messages, and
//! the write-behind buffer in front of the message tree.
//!
//! Keys are big-endian ids, so a range scan walks a room's history in `msg_id` order;
//! values are bincode. Users, tokens, rooms and memberships are written through;
//! messages go to [`buffer::WriteBehind`] and reach sled on the next flush.

mod buffer;
pub mod records;

use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

pub use buffer::FlushReport;
use buffer::WriteBehind;
use records::*;

/// Written into the `meta` tree of a new database; a database without it, or with
/// another value, is not ours and is never written to.
const SCHEMA: &[u8] = b"daehwa/1";
const SCHEMA_KEY: &[u8] = b"schema";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sled(#[from] sled::Error),
    #[error("record encoding: {0}")]
    Codec(#[from] bincode::Error),
    #[error("{0}")]
    NotOurs(String),
    #[error("a blocking store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The database, cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

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
    /// room id ++ msg id → [`Message`].
    roomid_msgid_message: sled::Tree,
    /// Messages accepted but not yet in `roomid_msgid_message`.
    buffer: WriteBehind,
}

fn key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn pair_key(a: u64, b: u64) -> [u8; 16] {
    let mut k = [0; 16];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..].copy_from_slice(&b.to_be_bytes());
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

/// Reads every record of a tree keyed by one id.
fn load_all<T: DeserializeOwned>(tree: &sled::Tree) -> StoreResult<Vec<(u64, T)>> {
    tree.iter()
        .map(|entry| {
            let (k, v) = entry?;
            Ok((id_of(&k)?, decode(&v)?))
        })
        .collect()
}

impl Store {
    /// Opens (or creates) the database in `path`. Refuses a directory that holds
    /// something other than a daehwa database, without writing to it.
    pub fn open(path: &Path) -> StoreResult<Self> {
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
        let db = sled::Config::new().path(path).open()?;
        // `schema` → SCHEMA.
        let meta = db.open_tree("meta")?;
        match meta.get(SCHEMA_KEY)? {
            Some(found) if found == SCHEMA => {}
            Some(found) => {
                return Err(StoreError::NotOurs(format!(
                    "{} holds schema {:?}, this daehwa reads {:?}",
                    path.display(),
                    String::from_utf8_lossy(&found),
                    String::from_utf8_lossy(SCHEMA)
                )))
            }
            None if db.tree_names().len() > 2 || !db.is_empty() => {
                return Err(StoreError::NotOurs(format!(
                    "{} is a sled database but not a daehwa one",
                    path.display()
                )))
            }
            None => {
                meta.insert(SCHEMA_KEY, SCHEMA)?;
                db.flush()?;
            }
        }
        let inner = Inner {
            userid_user: db.open_tree("userid_user")?,
            username_userid: db.open_tree("username_userid")?,
            tokenhash_token: db.open_tree("tokenhash_token")?,
            roomid_room: db.open_tree("roomid_room")?,
            roomid_userid_member: db.open_tree("roomid_userid_member")?,
            roomid_msgid_message: db.open_tree("roomid_msgid_message")?,
            buffer: WriteBehind::default(),
            db,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    // ----- users and tokens -----

    pub fn load_users(&self) -> StoreResult<Vec<(UserId, UserRecord)>> {
        load_all(&self.inner.userid_user)
    }

    /// Inserts a new user and its name in one transaction. Returns `false` (and writes
    /// nothing) when the name is taken.
    pub fn insert_user(&self, id: UserId, user: &UserRecord) -> StoreResult<bool> {
        let name_key = user.username.to_lowercase();
        let value = encode(user)?;
        let outcome =
            (&self.inner.userid_user, &self.inner.username_userid).transaction(|(users, names)| {
                if names.get(name_key.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(()));
                }
                names.insert(name_key.as_bytes(), &key(id))?;
                users.insert(&key(id), value.as_slice())?;
                Ok(())
            });
        match outcome {
            Ok(()) => Ok(true),
            Err(TransactionError::Abort(())) => Ok(false),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    pub fn put_user(&self, id: UserId, user: &UserRecord) -> StoreResult<()> {
        self.inner.userid_user.insert(key(id), encode(user)?)?;
        Ok(())
    }

    pub fn load_tokens(&self) -> StoreResult<Vec<([u8; 32], TokenRecord)>> {
        self.inner
            .tokenhash_token
            .iter()
            .map(|entry| {
                let (k, v) = entry?;
                let hash: [u8; 32] = k.as_ref().try_into().map_err(|_| {
                    StoreError::NotOurs(format!("a token key of {} bytes", k.len()))
                })?;
                Ok((hash, decode(&v)?))
            })
            .collect()
    }

    pub fn insert_token(&self, hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()> {
        self.inner.tokenhash_token.insert(hash, encode(token)?)?;
        Ok(())
    }

    pub fn remove_token(&self, hash: &[u8; 32]) -> StoreResult<()> {
        self.inner.tokenhash_token.remove(hash)?;
        Ok(())
    }

    // ----- rooms and memberships -----

    pub fn load_rooms(&self) -> StoreResult<Vec<(RoomId, RoomRecord)>> {
        load_all(&self.inner.roomid_room)
    }

    pub fn put_room(&self, id: RoomId, room: &RoomRecord) -> StoreResult<()> {
        self.inner.roomid_room.insert(key(id), encode(room)?)?;
        Ok(())
    }

    pub fn load_members(&self) -> StoreResult<Vec<(RoomId, UserId, MemberRecord)>> {
        self.inner
            .roomid_userid_member
            .iter()
            .map(|entry| {
                let (k, v) = entry?;
                if k.len() != 16 {
                    return Err(StoreError::NotOurs(format!(
                        "a member key of {} bytes",
                        k.len()
                    )));
                }
                Ok((id_of(&k[..8])?, id_of(&k[8..])?, decode(&v)?))
            })
            .collect()
    }

    pub fn put_member(&self, room: RoomId, user: UserId, member: &MemberRecord) -> StoreResult<()> {
        self.inner
            .roomid_userid_member
            .insert(pair_key(room, user), encode(member)?)?;
        Ok(())
    }

    pub fn remove_member(&self, room: RoomId, user: UserId) -> StoreResult<()> {
        self.inner
            .roomid_userid_member
            .remove(pair_key(room, user))?;
        Ok(())
    }

    // ----- messages -----

    /// The highest `msg_id` of a room on disk (the buffer is empty at start-up).
    pub fn last_msg_id(&self, room: RoomId) -> StoreResult<MsgId> {
        match self
            .inner
            .roomid_msgid_message
            .scan_prefix(key(room))
            .next_back()
        {
            Some(entry) => {
                let (k, _) = entry?;
                id_of(&k[8..])
            }
            None => Ok(0),
        }
    }

    /// Accepts a message: from now on every reader sees it; the next flush stores it.
    pub fn append_message(&self, message: Arc<Message>) {
        self.inner.buffer.push(message);
    }

    /// Up to `count` messages of `room` with `msg_id < before`, oldest first,
    /// from the buffer and the disk together.
    pub fn history(
        &self,
        room: RoomId,
        before: MsgId,
        count: usize,
    ) -> StoreResult<Vec<Arc<Message>>> {
        let (buffered, disk_before) = self.inner.buffer.newest_before(room, before, count);
        let wanted = count - buffered.len();
        if wanted == 0 || disk_before <= 1 {
            return Ok(buffered);
        }
        let range = pair_key(room, 0)..pair_key(room, disk_before);
        let mut older = self
            .inner
            .roomid_msgid_message
            .range(range)
            .rev()
            .take(wanted)
            .map(|entry| {
                let (_, v) = entry?;
                Ok(Arc::new(decode::<Message>(&v)?))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        older.reverse();
        older.extend(buffered);
        Ok(older)
    }

    /// Messages waiting in the write-behind buffer.
    pub fn buffered_messages(&self) -> usize {
        self.inner.buffer.len()
    }

    /// Writes the buffer to sled in one batch and flushes sled to disk.
    pub async fn flush_messages(&self) -> StoreResult<FlushReport> {
        let store = self.clone();
        self.inner
            .buffer
            .flush(move |batch| {
                let inner = &store.inner;
                let mut sled_batch = sled::Batch::default();
                for message in batch.iter() {
                    sled_batch.insert(
                        &pair_key(message.room_id, message.msg_id),
                        encode(&**message)?,
                    );
                }
                inner.roomid_msgid_message.apply_batch(sled_batch)?;
                inner.db.flush()?;
                Ok(())
            })
            .await
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
