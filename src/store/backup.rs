//! Backups: a consistent snapshot of every tree, as one file, and its restore into
//! an empty directory.
//!
//! The file is `MAGIC`, then bincode frames: `Tree(name)`, `Entry(key, value)` for
//! each record of that tree, and `End { entries, checksum }` (CRC-32 of every tree name,
//! key and value). A file without its `End`, or with a wrong checksum, is refused whole.
//!
//! Consistency while the server runs: flushes are paused for the duration, so the
//! message tree does not move; it is written first, and the trees it refers to
//! (rooms, users) after it, so every message's room and sender are in the file. Each
//! room's history in a backup is therefore a prefix of what the server had sent.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, StoreResult, CLEAN_KEY};

const MAGIC: &[u8] = b"DAEHWA-BACKUP 1\n";
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

#[derive(Serialize, Deserialize)]
enum Frame {
    Tree(Vec<u8>),
    Entry(Vec<u8>, Vec<u8>),
    End { entries: u64, checksum: u32 },
}

/// What a backup holds.
#[derive(Debug, Default, Clone, Copy)]
pub struct BackupStats {
    pub trees: usize,
    pub entries: u64,
}

fn bad(message: impl Into<String>) -> StoreError {
    StoreError::Backup(message.into())
}

impl Store {
    /// Writes a snapshot of the database to `out`. Blocking: run it off the async
    /// threads. Flushes wait until it is done.
    pub fn export(&self, out: impl Write) -> StoreResult<BackupStats> {
        let _no_flushes = self.inner.buffer.pause_flushes();
        let db = &self.inner.db;
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
        let mut checksum = crc32fast::Hasher::new();
        let mut stats = BackupStats::default();
        let mut write = |frame: &Frame| -> StoreResult<()> {
            bincode::serialize_into(&mut out, frame)?;
            Ok(())
        };
        for name in names {
            let tree = db.open_tree(&name)?;
            checksum.update(&name);
            write(&Frame::Tree(name))?;
            stats.trees += 1;
            for entry in tree.iter() {
                let (k, v) = entry?;
                checksum.update(&k);
                checksum.update(&v);
                write(&Frame::Entry(k.to_vec(), v.to_vec()))?;
                stats.entries += 1;
            }
        }
        write(&Frame::End {
            entries: stats.entries,
            checksum: checksum.finalize(),
        })?;
        out.flush().map_err(|e| bad(format!("cannot write: {e}")))?;
        Ok(stats)
    }

    /// Checks a backup from end to end without writing anything.
    pub fn verify_backup(input: impl Read) -> StoreResult<BackupStats> {
        read_backup(input, |_, _, _| Ok(()))
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
    let stats = read_backup(input, |tree_name, key, value| {
        if let Some(name) = tree_name {
            flush_batch(&mut current)?;
            current = Some((db.open_tree(name)?, sled::Batch::default(), 0));
        }
        if let (Some(key), Some((tree, batch, pending))) = (key, current.as_mut()) {
            batch.insert(key, value.unwrap_or_default());
            *pending += 1;
            if *pending >= RESTORE_BATCH {
                let full = std::mem::take(batch);
                *pending = 0;
                tree.apply_batch(full)?;
            }
        }
        Ok(())
    })?;
    flush_batch(&mut current)?;
    // A restored database starts as after a graceful shutdown: ids go on from the
    // last stored message.
    db.open_tree("meta")?.insert(CLEAN_KEY, &[1])?;
    db.flush()?;
    Ok(stats)
}

/// Reads a backup frame by frame: `visit(Some(tree), None, None)` at each tree, then
/// `visit(None, Some(key), Some(value))` for each record. Fails on a wrong magic, a
/// truncated file, or a checksum that does not match.
fn read_backup(
    input: impl Read,
    mut visit: impl FnMut(Option<&[u8]>, Option<&[u8]>, Option<Vec<u8>>) -> StoreResult<()>,
) -> StoreResult<BackupStats> {
    let mut input = BufReader::new(input);
    let mut magic = vec![0; MAGIC.len()];
    input
        .read_exact(&mut magic)
        .map_err(|_| bad("this file is not a daehwa backup (too short)"))?;
    if magic != MAGIC {
        return Err(bad("this file is not a daehwa backup"));
    }
    let mut checksum = crc32fast::Hasher::new();
    let mut stats = BackupStats::default();
    let mut in_tree = false;
    loop {
        let frame: Frame = bincode::deserialize_from(&mut input)
            .map_err(|e| bad(format!("the backup is truncated or damaged: {e}")))?;
        match frame {
            Frame::Tree(name) => {
                checksum.update(&name);
                stats.trees += 1;
                in_tree = true;
                visit(Some(&name), None, None)?;
            }
            Frame::Entry(key, value) if in_tree => {
                checksum.update(&key);
                checksum.update(&value);
                stats.entries += 1;
                visit(None, Some(&key), Some(value))?;
            }
            Frame::Entry(..) => return Err(bad("the backup has a record outside any tree")),
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
