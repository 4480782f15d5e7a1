//! Backups: a consistent snapshot of every tree, as one file, and its restore into
//! an empty directory.
//!
//! The file is `MAGIC`, then bincode frames: `Tree(name)`, `Entry(key, value)` for
//! each record of that tree, then for each stored file `File { id, size }` and its
//! bytes in `Chunk`s, and `End { entries, checksum }` (CRC-32 of every tree name,
//! key and value, file id and byte). A file without its `End`, or with a wrong
//! checksum, is refused whole. Backups of version 1 (no files) are still read.
//!
//! Consistency while the server runs: flushes are paused while the trees are
//! written, so the message tree does not move; it is written first, and the trees
//! it refers to (rooms, users, files) after it, so every message's room, sender and
//! attachments are in the file. Each room's history in a backup is therefore a
//! prefix of what the server had sent. Then the files of the records written are
//! copied, with removals of stored bytes held off (files never change, and only
//! the sweep removes them), so every record in the backup has its bytes.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{files, id_of, Store, StoreError, StoreResult, CLEAN_KEY};
use crate::model::FileId;

const MAGIC: &[u8] = b"DAEHWA-BACKUP 2\n";
/// The magic of backups made before files were part of them.
const MAGIC_V1: &[u8] = b"DAEHWA-BACKUP 1\n";
/// The tree whose keys name the files a backup copies.
const FILES_TREE: &[u8] = b"fileid_file";
/// Bytes of a file per `Chunk` frame.
const FILE_CHUNK: usize = 256 * 1024;
/// The trees whose records others point to come after the message trees; read
/// markers, which point to messages, come before them.
const ORDER_FIRST: [&str; 6] = [
    "roomid_userid_readmsgid",
    "roomid_msgid_message",
    "roomid_seq_change",
    "userid_clientmsgid_ref",
    "roomid_reservedmsgid",
    "roomid_reservedseq",
];
/// Records written per sled batch on restore.
const RESTORE_BATCH: usize = 10_000;

/// One frame of a backup. New variants go at the end: bincode numbers them.
#[derive(Serialize, Deserialize)]
enum Frame {
    Tree(Vec<u8>),
    Entry(Vec<u8>, Vec<u8>),
    End { entries: u64, checksum: u32 },
    File { id: u64, size: u64 },
    Chunk(Vec<u8>),
}

/// What a backup holds, as its reader meets it.
enum Item<'a> {
    Tree(&'a [u8]),
    Entry(&'a [u8], Vec<u8>),
    File { id: u64, size: u64 },
    Chunk(&'a [u8]),
}

/// What a backup holds.
#[derive(Debug, Default, Clone, Copy)]
pub struct BackupStats {
    pub trees: usize,
    pub entries: u64,
    pub files: u64,
    pub file_bytes: u64,
}

fn bad(message: impl Into<String>) -> StoreError {
    StoreError::Backup(message.into())
}

/// A backup being written: the frames so far, counted and checksummed. The trees
/// first ([`BackupWriter::trees`], flushes paused), then the files of the records
/// written ([`BackupWriter::files`]), then the end.
pub struct BackupWriter {
    checksum: crc32fast::Hasher,
    stats: BackupStats,
    /// The files whose records were written.
    file_ids: Vec<FileId>,
}

fn write_frame(out: &mut impl Write, frame: &Frame) -> StoreResult<()> {
    bincode::serialize_into(out, frame)?;
    Ok(())
}

impl BackupWriter {
    pub fn new() -> Self {
        Self {
            checksum: crc32fast::Hasher::new(),
            stats: BackupStats::default(),
            file_ids: Vec::new(),
        }
    }

    /// The magic and every tree, with flushes paused meanwhile.
    pub fn trees(&mut self, store: &Store, out: impl Write) -> StoreResult<()> {
        let _no_flushes = store.inner.buffer.pause_flushes();
        let db = &store.inner.db;
        let mut names: Vec<Vec<u8>> = db.tree_names().into_iter().map(|n| n.to_vec()).collect();
        names.sort_by_key(|name| {
            let position = ORDER_FIRST
                .iter()
                .position(|first| first.as_bytes() == name.as_slice());
            (position.unwrap_or(ORDER_FIRST.len()), name.clone())
        });
        let mut out = BufWriter::new(out);
        out.write_all(MAGIC)
            .map_err(|e| bad(format!("cannot write: {e}")))?;
        for name in names {
            let tree = db.open_tree(&name)?;
            let files = name == FILES_TREE;
            self.checksum.update(&name);
            write_frame(&mut out, &Frame::Tree(name))?;
            self.stats.trees += 1;
            for entry in tree.iter() {
                let (k, v) = entry?;
                if files {
                    self.file_ids.push(FileId::new(id_of(&k)?));
                }
                self.checksum.update(&k);
                self.checksum.update(&v);
                write_frame(&mut out, &Frame::Entry(k.to_vec(), v.to_vec()))?;
                self.stats.entries += 1;
            }
        }
        out.flush().map_err(|e| bad(format!("cannot write: {e}")))?;
        Ok(())
    }

    /// The bytes of every file whose record [`BackupWriter::trees`] wrote, with
    /// removals held off meanwhile.
    pub fn files(&mut self, store: &Store, out: impl Write) -> StoreResult<()> {
        let mut out = BufWriter::new(out);
        let ids = std::mem::take(&mut self.file_ids);
        store.with_files_held(|| {
            let mut buffer = vec![0; FILE_CHUNK];
            for id in ids {
                let path = store.file_path(id);
                let mut file = match std::fs::File::open(&path) {
                    Ok(file) => file,
                    Err(e) => {
                        tracing::warn!(file_id = %id, error = %e, "a stored file's bytes are missing; the backup goes on without them");
                        continue;
                    }
                };
                let size = file.metadata()?.len();
                self.checksum.update(&id.to_be_bytes());
                write_frame(&mut out, &Frame::File { id: id.get(), size })?;
                let mut left = size;
                while left > 0 {
                    let want = buffer.len().min(left as usize);
                    file.read_exact(&mut buffer[..want])?;
                    self.checksum.update(&buffer[..want]);
                    write_frame(&mut out, &Frame::Chunk(buffer[..want].to_vec()))?;
                    left -= want as u64;
                }
                self.stats.files += 1;
                self.stats.file_bytes += size;
            }
            Ok(())
        })?;
        out.flush().map_err(|e| bad(format!("cannot write: {e}")))?;
        Ok(())
    }

    /// The end frame; what the backup holds.
    pub fn finish(self, mut out: impl Write) -> StoreResult<BackupStats> {
        write_frame(
            &mut out,
            &Frame::End {
                entries: self.stats.entries,
                checksum: self.checksum.finalize(),
            },
        )?;
        out.flush().map_err(|e| bad(format!("cannot write: {e}")))?;
        Ok(self.stats)
    }
}

impl Default for BackupWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// Writes a snapshot of the database and its files to `out`. Blocking: run it
    /// off the async threads. Flushes wait while the trees are written.
    pub fn export(&self, mut out: impl Write) -> StoreResult<BackupStats> {
        let mut writer = BackupWriter::new();
        writer.trees(self, &mut out)?;
        writer.files(self, &mut out)?;
        writer.finish(out)
    }

    /// Checks a backup from end to end without writing anything.
    pub fn verify_backup(input: impl Read) -> StoreResult<BackupStats> {
        read_backup(input, |_| Ok(()))
    }

    /// Restores a backup into `dir`, which must be empty or not exist. On failure,
    /// what was created is removed.
    pub fn restore(input: impl Read, dir: &Path) -> StoreResult<BackupStats> {
        if dir.exists() {
            let mut entries = std::fs::read_dir(dir)
                .map_err(|e| bad(format!("cannot read {}: {e}", dir.display())))?;
            if entries.next().is_some() {
                return Err(bad(format!(
                    "{} is not empty; restore only into an empty directory",
                    dir.display()
                )));
            }
        }
        let outcome = restore_into(input, dir);
        if outcome.is_err() {
            // Only what we created: the directory was empty or missing.
            let _ = std::fs::remove_dir_all(dir);
            let _ = std::fs::create_dir_all(dir);
        }
        outcome
    }
}

fn restore_into(input: impl Read, dir: &Path) -> StoreResult<BackupStats> {
    let db = sled::Config::new().path(dir).open()?;
    let mut current: Option<(sled::Tree, sled::Batch, usize)> = None;
    let flush_batch = |current: &mut Option<(sled::Tree, sled::Batch, usize)>| -> StoreResult<()> {
        if let Some((tree, batch, _)) = current.take() {
            tree.apply_batch(batch)?;
        }
        Ok(())
    };
    // The file being restored: its partial copy, and the bytes it still expects.
    let mut file: Option<(u64, std::fs::File, u64)> = None;
    let finish_file = |file: &mut Option<(u64, std::fs::File, u64)>| -> StoreResult<()> {
        if let Some((id, partial, left)) = file.take() {
            if left != 0 {
                return Err(bad(format!("file {id} is short in the backup")));
            }
            files::finish_restored_file(dir, id, partial)?;
        }
        Ok(())
    };
    let stats = read_backup(input, |item| {
        match item {
            Item::Tree(name) => {
                flush_batch(&mut current)?;
                current = Some((db.open_tree(name)?, sled::Batch::default(), 0));
            }
            Item::Entry(key, value) => {
                if let Some((tree, batch, pending)) = current.as_mut() {
                    batch.insert(key, value);
                    *pending += 1;
                    if *pending >= RESTORE_BATCH {
                        let full = std::mem::take(batch);
                        *pending = 0;
                        tree.apply_batch(full)?;
                    }
                }
            }
            Item::File { id, size } => {
                finish_file(&mut file)?;
                file = Some((id, files::start_restored_file(dir, id)?, size));
            }
            Item::Chunk(bytes) => match file.as_mut() {
                Some((id, partial, left)) => {
                    if bytes.len() as u64 > *left {
                        return Err(bad(format!(
                            "file {id} is longer in the backup than it says"
                        )));
                    }
                    partial.write_all(bytes)?;
                    *left -= bytes.len() as u64;
                }
                None => return Err(bad("the backup has file bytes outside any file")),
            },
        }
        Ok(())
    })?;
    finish_file(&mut file)?;
    flush_batch(&mut current)?;
    // A restored database starts as after a graceful shutdown: ids go on from the
    // last stored message.
    db.open_tree("meta")?.insert(CLEAN_KEY, &[1])?;
    db.flush()?;
    Ok(stats)
}

/// Reads a backup frame by frame, giving each item to `visit`. Fails on a wrong
/// magic, a truncated file, or a checksum that does not match.
fn read_backup(
    input: impl Read,
    mut visit: impl FnMut(Item<'_>) -> StoreResult<()>,
) -> StoreResult<BackupStats> {
    let mut input = BufReader::new(input);
    let mut magic = vec![0; MAGIC.len()];
    input
        .read_exact(&mut magic)
        .map_err(|_| bad("this file is not a daehwa backup (too short)"))?;
    if magic != MAGIC && magic != MAGIC_V1 {
        return Err(bad("this file is not a daehwa backup"));
    }
    let mut checksum = crc32fast::Hasher::new();
    let mut stats = BackupStats::default();
    let mut in_tree = false;
    let mut in_file = false;
    loop {
        let frame: Frame = bincode::deserialize_from(&mut input)
            .map_err(|e| bad(format!("the backup is truncated or damaged: {e}")))?;
        match frame {
            Frame::Tree(name) => {
                checksum.update(&name);
                stats.trees += 1;
                in_tree = true;
                visit(Item::Tree(&name))?;
            }
            Frame::Entry(key, value) if in_tree && !in_file => {
                checksum.update(&key);
                checksum.update(&value);
                stats.entries += 1;
                visit(Item::Entry(&key, value))?;
            }
            Frame::Entry(..) => return Err(bad("the backup has a record outside any tree")),
            Frame::File { id, size } => {
                checksum.update(&id.to_be_bytes());
                stats.files += 1;
                stats.file_bytes += size;
                in_file = true;
                visit(Item::File { id, size })?;
            }
            Frame::Chunk(bytes) if in_file => {
                checksum.update(&bytes);
                visit(Item::Chunk(&bytes))?;
            }
            Frame::Chunk(_) => return Err(bad("the backup has file bytes outside any file")),
            Frame::End {
                entries,
                checksum: expected,
            } => {
                if entries != stats.entries || expected != checksum.finalize() {
                    return Err(bad("the backup's checksum does not match: it is damaged"));
                }
                return Ok(stats);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MsgId, RoomId, UserId};

    /// Opens a database that this process just closed. sled's flusher thread may
    /// still hold the directory's lock for a moment after the last handle is
    /// dropped, so `Locked` is retried (a separate `daehwa restore` process has long
    /// exited by the time the server opens the directory).
    fn open_when_released(path: &Path) -> Store {
        for _ in 0..100 {
            match Store::open(path) {
                Err(StoreError::Locked) => std::thread::sleep(std::time::Duration::from_millis(20)),
                other => return other.expect("open restored"),
            }
        }
        panic!("{} stayed locked", path.display());
    }

    #[test]
    fn a_backup_restores_every_record_and_refuses_damage() {
        let tmp = tempfile::TempDir::new().expect("tmp");
        let store = Store::open(&tmp.path().join("a")).expect("open");
        store
            .inner
            .roomid_msgid_message
            .insert(b"k1", b"v1")
            .expect("insert");
        store
            .inner
            .userid_user
            .insert(b"k2", b"v2")
            .expect("insert");
        // Read markers are a tree of their own, saved lazily: a backup has them too.
        store
            .write_read_markers(&[
                (RoomId::new(1), UserId::new(2), Some(MsgId::new(7))),
                (RoomId::new(1), UserId::new(3), Some(MsgId::new(9))),
                (RoomId::new(1), UserId::new(3), None),
                (RoomId::new(4), UserId::new(2), Some(MsgId::new(1))),
            ])
            .expect("markers");
        let mut file = Vec::new();
        let stats = store.export(&mut file).expect("export");
        assert!(stats.entries >= 3, "{stats:?}");
        assert_eq!(
            Store::verify_backup(file.as_slice())
                .expect("verify")
                .entries,
            stats.entries
        );

        let target = tmp.path().join("b");
        Store::restore(file.as_slice(), &target).expect("restore");
        let restored = open_when_released(&target);
        assert!(restored.clean_start());
        assert_eq!(
            restored.load_read_markers().expect("markers"),
            vec![
                (RoomId::new(1), UserId::new(2), MsgId::new(7)),
                (RoomId::new(4), UserId::new(2), MsgId::new(1))
            ]
        );
        assert_eq!(
            restored
                .inner
                .userid_user
                .get(b"k2")
                .expect("get")
                .as_deref(),
            Some(&b"v2"[..])
        );

        // Truncated, or one byte changed: refused, and nothing is left behind.
        let damaged_dir = tmp.path().join("c");
        assert!(Store::restore(&file[..file.len() - 3], &damaged_dir).is_err());
        let mut flipped = file.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0xff;
        assert!(Store::verify_backup(flipped.as_slice()).is_err());
        assert!(std::fs::read_dir(&damaged_dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(true));
        // Not into a directory that holds something.
        assert!(Store::restore(file.as_slice(), &target).is_err());
    }
}
