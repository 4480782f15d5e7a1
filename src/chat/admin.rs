//! What the operator does: accounts by hand, listings, backups.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use super::accounts::check_password;
use super::password;
use super::view::timestamp;
use super::Chat;
use crate::error::{Error, Result};
use crate::model::*;
use crate::store::{BackupWriter, StoreError};

/// A user as `daehwa admin list-users` shows it.
#[derive(Debug, Clone)]
pub struct UserSummary {
    pub user_id: UserId,
    pub username: Arc<str>,
    pub disabled: bool,
    pub rooms: usize,
}

/// A room as `daehwa admin list-rooms` shows it.
#[derive(Debug, Clone)]
pub struct RoomSummary {
    pub room_id: RoomId,
    pub name: String,
    pub kind: &'static str,
    pub members: usize,
    pub last_msg_id: MsgId,
    pub created_at: String,
    pub closed: bool,
}

impl Chat {
    fn user_id_by_name(&self, username: &str) -> Result<UserId> {
        self.accounts()
            .by_name
            .get(&username.to_lowercase())
            .copied()
            .ok_or(Error::UserNotFound)
    }

    /// Revokes every token of a user (their sockets close with 4001).
    fn revoke_tokens(&self, user: UserId) -> Result<usize> {
        let hashes: Vec<[u8; 32]> = {
            let accounts = self.accounts();
            accounts
                .tokens
                .iter()
                .filter(|(_, u)| **u == user)
                .map(|(h, _)| *h)
                .collect()
        };
        for hash in &hashes {
            self.store.remove_token(hash)?;
            self.accounts_mut().tokens.remove(hash);
            self.bus
                .close_token(user, hash, crate::events::CloseReason::LoggedOut);
        }
        Ok(hashes.len())
    }

    fn update_user(&self, user: UserId, change: impl FnOnce(&mut User)) -> Result<()> {
        let mut accounts = self.accounts_mut();
        let account = accounts.users.get_mut(&user).ok_or(Error::UserNotFound)?;
        let mut record = User {
            username: account.username.to_string(),
            password_hash: account.password_hash.clone(),
            created_at: account.created_at,
            disabled: account.disabled,
        };
        change(&mut record);
        self.store.put_user(user, &record)?;
        account.password_hash = record.password_hash;
        account.disabled = record.disabled;
        Ok(())
    }

    /// Sets a new password and signs the user out everywhere.
    pub async fn reset_password(&self, username: &str, new_password: String) -> Result<()> {
        let user = self.user_id_by_name(username)?;
        check_password(&new_password, "invalid_password")?;
        let hash = self
            .hashing
            .hash(new_password, password::Pool::Other)
            .await?;
        self.update_user(user, |record| record.password_hash = hash)?;
        self.revoke_tokens(user)?;
        Ok(())
    }

    /// Disables (or enables again) an account; disabling signs it out everywhere.
    pub fn set_disabled(&self, username: &str, disabled: bool) -> Result<()> {
        let user = self.user_id_by_name(username)?;
        self.update_user(user, |record| record.disabled = disabled)?;
        if disabled {
            self.revoke_tokens(user)?;
        }
        Ok(())
    }

    pub fn list_users(&self) -> Vec<UserSummary> {
        let directory = self.directory();
        let accounts = self.accounts();
        let mut users: Vec<UserSummary> = accounts
            .users
            .iter()
            .map(|(id, account)| UserSummary {
                user_id: *id,
                username: Arc::clone(&account.username),
                disabled: account.disabled,
                rooms: directory.user_rooms.get(id).map_or(0, |r| r.len()),
            })
            .collect();
        users.sort_by_key(|u| u.user_id);
        users
    }

    pub fn list_rooms(&self) -> Vec<RoomSummary> {
        let directory = self.directory();
        let mut rooms: Vec<RoomSummary> = directory
            .rooms
            .iter()
            .map(|(id, entry)| RoomSummary {
                room_id: *id,
                name: entry.record.name.clone(),
                kind: match (entry.record.direct.is_some(), entry.record.room_type) {
                    (true, _) => "direct",
                    (false, RoomType::Public) => "public",
                    (false, RoomType::Protected) => "protected",
                    (false, RoomType::Private) => "private",
                },
                members: entry.members.len(),
                last_msg_id: entry.last_msg_id(),
                created_at: timestamp(entry.record.created_at),
                closed: entry.record.closed,
            })
            .collect();
        rooms.sort_by_key(|r| r.room_id);
        rooms
    }

    /// Closes the store after an admin command: the written-through records are
    /// flushed, and the clean-shutdown marker is as it was found.
    pub fn close(&self) -> Result<()> {
        Ok(self.store.close()?)
    }

    /// A consistent snapshot of the database and its files, with everything
    /// buffered flushed first, as a stream of bytes. The trees are copied into
    /// memory first, so that flushes pause only as long as that takes, whatever the
    /// pace of the reader; the files are streamed from disk.
    pub async fn backup(&self) -> Result<BackupStream> {
        while self.store.buffered_changes() > 0 {
            self.flush().await?;
        }
        let store = self.store.clone();
        let started = std::time::Instant::now();
        let (trees, writer) = tokio::task::spawn_blocking(move || {
            let mut writer = BackupWriter::new();
            let mut trees = Vec::new();
            writer.trees(&store, &mut trees).map(|()| (trees, writer))
        })
        .await
        .map_err(|_| Error::Internal)??;
        let (sender, receiver) = tokio::sync::mpsc::channel(BACKUP_QUEUE);
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = ChannelWriter(sender.clone());
            let outcome = out
                .write_all(&trees)
                .map_err(StoreError::from)
                .and_then(|()| {
                    let mut writer = writer;
                    writer.files(&store, &mut out)?;
                    writer.finish(&mut out)
                });
            match outcome {
                Ok(stats) => tracing::info!(
                    entries = stats.entries,
                    files = stats.files,
                    file_bytes = stats.file_bytes,
                    millis = started.elapsed().as_millis() as u64,
                    "backup taken"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "backup failed");
                    // The reader sees the body break off, never a backup cut short.
                    let _ = sender.blocking_send(Err(std::io::Error::other("backup failed")));
                }
            }
        });
        Ok(BackupStream(receiver))
    }

    /// What the data directory takes: the database and the stored files.
    pub fn usage(&self) -> Result<Usage> {
        let files = self.store.files_usage()?;
        Ok(Usage {
            database_bytes: self.store.size_on_disk()?,
            files: files.files,
            file_bytes: files.bytes,
        })
    }
}

/// Pieces of a backup waiting for the reader.
const BACKUP_QUEUE: usize = 16;

/// What the data directory takes.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub database_bytes: u64,
    pub files: u64,
    pub file_bytes: u64,
}

/// A backup as it is written, piece by piece.
pub struct BackupStream(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl Stream for BackupStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Writes into a backup's channel, waiting while the reader is behind; fails once
/// the reader is gone.
struct ChannelWriter(tokio::sync::mpsc::Sender<std::io::Result<Bytes>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
