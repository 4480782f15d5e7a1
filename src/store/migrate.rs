//! Upgrades of an older data directory, in place, on the first start of a server (or
//! an admin command) that reads `daehwa/3`: `daehwa/1` → `daehwa/2` → `daehwa/3`.
//!
//! `daehwa/1` → `daehwa/2`: a room's history becomes a log of changes. Each message
//! gets the `daehwa/2` record (text or tombstone, edits, mentions, reactions) and is
//! logged as posted by the change numbered as the message (`seq = msgId`), so a
//! client's `lastMsgId` is also its `lastSeq`; each room reserves as many changes as
//! it had reserved message ids. Every other tree keeps its records.
//!
//! Crash-safe, and a rerun after a crash is idempotent. sled cannot rename a tree, so
//! the messages are converted in two phases, and the schema marker switches last:
//! 1. *stage*: the new records go to a staging tree, the log and the seq
//!    reservations to their trees (each emptied first, so that a rerun starts
//!    afresh); flushed; then `meta.migration = staged`, flushed;
//! 2. *switch*: the message tree is emptied and filled from the staging tree;
//!    flushed; then `meta.schema = daehwa/2` (and the staging marker removed),
//!    flushed; the staging tree is dropped.
//!
//! A crash in phase 1 leaves the schema at `daehwa/1` with no staging marker: the
//! rerun stages again from the untouched `daehwa/1` messages. A crash in phase 2
//! leaves the marker: the rerun switches again from the complete staging tree. A
//! crash after the switch leaves at most a staging tree, dropped at the next start.
//!
//! `daehwa/2` → `daehwa/3`: a new message is no longer logged, its record (which
//! already carried the seq that posted it) is its entry in the room's log; the log
//! keeps edits, deletes and reactions. The records do not change: the schema marker
//! switches first, together with a note that the log's entries of new messages are
//! still to be removed; they are removed, and the note with them. Each start finishes
//! a removal a crash cut short before the store is opened (see [`tidy`]), so no
//! reader ever meets such an entry.

use std::path::Path;
use std::time::Instant;

use super::records::{ChangeKindRecord, ChangeRecord, MessageRecord, MessageRecordV1};
use super::{decode, encode, id_of, StoreResult, SCHEMA, SCHEMA_KEY};

/// The schemas this upgrades from.
pub(super) const FROM: [&[u8]; 2] = [V1, V2];
const V1: &[u8] = b"daehwa/1";
const V2: &[u8] = b"daehwa/2";
/// Where the converted messages wait between the two phases.
const STAGING: &str = "migration_roomid_msgid_message";
/// In `meta` while the staging tree is complete and the switch may be (re)done.
const STAGED_KEY: &[u8] = b"migration";
const STAGED: &[u8] = b"daehwa/2 staged";
/// In `meta` while the log may still hold entries of new messages.
const UNLOG_KEY: &[u8] = b"unlog_posted";
/// Records per group, and between two progress lines.
const BATCH: usize = 10_000;
const PROGRESS_EVERY: usize = 100_000;

/// Upgrades the database from `from` (one of [`FROM`]) to [`SCHEMA`].
pub(super) fn run(db: &sled::Db, meta: &sled::Tree, from: &[u8], path: &Path) -> StoreResult<()> {
    let started = Instant::now();
    tracing::info!(
        data_dir = %path.display(),
        "upgrading the database from {} to {}",
        String::from_utf8_lossy(from),
        String::from_utf8_lossy(SCHEMA)
    );
    if from == V1 {
        if meta.get(STAGED_KEY)?.as_deref() != Some(STAGED) {
            stage(db, meta)?;
        } else {
            tracing::info!("a previous upgrade staged every message; switching to them");
        }
        let messages = switch(db, meta)?;
        tracing::info!(messages, "database upgraded to daehwa/2");
    }
    meta.insert(UNLOG_KEY, &[1])?;
    meta.insert(SCHEMA_KEY, SCHEMA)?;
    db.flush()?;
    tidy(db, meta)?;
    tracing::info!(
        millis = started.elapsed().as_millis() as u64,
        "database upgraded to daehwa/3"
    );
    Ok(())
}

/// Finishes what an upgrade (this one, or one cut short) left to do: drops a
/// staging tree, removes the log's entries of new messages.
pub(super) fn tidy(db: &sled::Db, meta: &sled::Tree) -> StoreResult<()> {
    if db
        .tree_names()
        .iter()
        .any(|name| name.as_ref() == STAGING.as_bytes())
    {
        db.drop_tree(STAGING)?;
    }
    if meta.contains_key(UNLOG_KEY)? {
        let removed = unlog_posted(db, meta)?;
        tracing::info!(
            removed_log_entries = removed,
            "upgrade: the log keeps edits, deletes and reactions only"
        );
    }
    Ok(())
}

/// Removes the log's entries of new messages (`daehwa/2` logged them), then the note
/// that they were to be removed. One removal at a time, never a sled batch (see
/// [`Writer`]).
fn unlog_posted(db: &sled::Db, meta: &sled::Tree) -> StoreResult<usize> {
    let log = db.open_tree("roomid_seq_change")?;
    let mut removed = 0;
    for entry in log.iter() {
        let (key, value) = entry?;
        if decode::<ChangeRecord>(&value)?.kind == ChangeKindRecord::Posted {
            log.remove(key)?;
            removed += 1;
            if removed % PROGRESS_EVERY == 0 {
                tracing::info!(
                    records = removed,
                    "upgrade: log entries of new messages removed"
                );
            }
        }
    }
    db.flush()?;
    meta.remove(UNLOG_KEY)?;
    db.flush()?;
    Ok(removed)
}

/// Writes a tree in groups of [`BATCH`], logging progress. One insert at a time,
/// never a sled batch: the server that migrates goes on serving, and a batch would
/// put every sled operation of the process behind sled's lock (see `Inner` in
/// `store/mod.rs`).
struct Writer<'t> {
    tree: &'t sled::Tree,
    batch: Vec<(Vec<u8>, Vec<u8>)>,
    pending: usize,
    written: usize,
    what: &'static str,
}

impl<'t> Writer<'t> {
    fn new(tree: &'t sled::Tree, what: &'static str) -> Self {
        Self {
            tree,
            batch: Vec::new(),
            pending: 0,
            written: 0,
            what,
        }
    }

    fn insert(&mut self, key: &[u8], value: Vec<u8>) -> StoreResult<()> {
        self.batch.push((key.to_vec(), value));
        self.pending += 1;
        if self.pending == BATCH {
            self.finish_batch()?;
        }
        Ok(())
    }

    fn finish_batch(&mut self) -> StoreResult<()> {
        for (key, value) in std::mem::take(&mut self.batch) {
            self.tree.insert(key, value)?;
        }
        let before = self.written;
        self.written += self.pending;
        self.pending = 0;
        if before / PROGRESS_EVERY != self.written / PROGRESS_EVERY {
            tracing::info!(records = self.written, "upgrade: {}", self.what);
        }
        Ok(())
    }

    fn finish(mut self) -> StoreResult<usize> {
        self.finish_batch()?;
        Ok(self.written)
    }
}

/// A tree, emptied (a crash while it empties leaves a rerun to empty it again).
fn emptied(db: &sled::Db, name: &str) -> StoreResult<sled::Tree> {
    db.drop_tree(name)?;
    Ok(db.open_tree(name)?)
}

/// Phase 1: the converted messages, the log, the seq reservations.
fn stage(db: &sled::Db, meta: &sled::Tree) -> StoreResult<()> {
    let old = db.open_tree("roomid_msgid_message")?;
    let staging = emptied(db, STAGING)?;
    let log = emptied(db, "roomid_seq_change")?;
    let reserved_seq = emptied(db, "roomid_reservedseq")?;
    let mut messages = Writer::new(&staging, "messages converted");
    let mut changes = Writer::new(&log, "changes logged");
    for entry in old.iter() {
        let (key, value) = entry?;
        let record: MessageRecordV1 = decode(&value)?;
        let posted = ChangeRecord {
            msg_id: record.msg_id,
            kind: ChangeKindRecord::Posted,
        };
        messages.insert(&key, encode(&record.upgrade())?)?;
        // The change that posted message n is change n: the same key, room ++ n.
        changes.insert(&key, encode(&posted)?)?;
    }
    let staged = messages.finish()?;
    changes.finish()?;
    let mut seqs = Writer::new(&reserved_seq, "reservations");
    for entry in db.open_tree("roomid_reservedmsgid")?.iter() {
        let (room, reserved) = entry?;
        seqs.insert(&room, id_of(&reserved)?.to_be_bytes().to_vec())?;
    }
    seqs.finish()?;
    db.flush()?;
    meta.insert(STAGED_KEY, STAGED)?;
    db.flush()?;
    tracing::info!(messages = staged, "upgrade: every message staged");
    Ok(())
}

/// Phase 2: the message tree from the staging tree, then the schema marker.
fn switch(db: &sled::Db, meta: &sled::Tree) -> StoreResult<usize> {
    let staging = db.open_tree(STAGING)?;
    let messages = emptied(db, "roomid_msgid_message")?;
    let mut writer = Writer::new(&messages, "messages switched");
    for entry in staging.iter() {
        let (key, value) = entry?;
        // Checked before the switch: the staging tree must hold daehwa/2 records.
        decode::<MessageRecord>(&value)?;
        writer.insert(&key, value.to_vec())?;
    }
    let switched = writer.finish()?;
    db.flush()?;
    // The clean-shutdown marker stays as the previous run left it.
    meta.insert(SCHEMA_KEY, V2)?;
    meta.remove(STAGED_KEY)?;
    db.flush()?;
    db.drop_tree(STAGING)?;
    Ok(switched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MsgId, RoomId, Seq};
    use crate::store::records::MessageRecordV1;
    use crate::store::{pair_key, Store, StoreError};

    /// A `daehwa/1` database: two rooms' messages and their reservations.
    fn v1_database(path: &Path) -> sled::Db {
        let db = sled::Config::new().path(path).open().expect("open");
        let meta = db.open_tree("meta").expect("meta");
        meta.insert(SCHEMA_KEY, V1).expect("schema");
        let messages = db.open_tree("roomid_msgid_message").expect("tree");
        for (room, count) in [(1u64, 5u64), (2, 2)] {
            for msg_id in 1..=count {
                let record = MessageRecordV1 {
                    room_id: room,
                    msg_id,
                    sender_id: 7,
                    content: format!("r{room} m{msg_id}"),
                    created_at: 1_000 + msg_id as i64,
                    client_msg_id: (msg_id == 1).then(|| "c-1".to_owned()),
                };
                messages
                    .insert(pair_key(room, msg_id), encode(&record).expect("encode"))
                    .expect("insert");
            }
            db.open_tree("roomid_reservedmsgid")
                .expect("tree")
                .insert(room.to_be_bytes(), &1000u64.to_be_bytes())
                .expect("insert");
        }
        db
    }

    fn open_when_released(path: &Path) -> Store {
        for _ in 0..100 {
            match Store::open(path) {
                Err(StoreError::Locked) => std::thread::sleep(std::time::Duration::from_millis(20)),
                other => return other.expect("open migrated"),
            }
        }
        panic!("{} stayed locked", path.display());
    }

    fn check_upgraded(store: &Store) {
        let history = store
            .history(RoomId::new(1), MsgId::MAX, 10, true)
            .expect("history");
        assert_eq!(history.len(), 5);
        for (n, message) in history.iter().enumerate() {
            let n = n as u64 + 1;
            assert_eq!(message.msg_id, MsgId::new(n));
            assert_eq!(message.seq, Seq::new(n), "posted by change n");
            assert_eq!(
                message.content().map(|c| c.to_string()),
                Some(format!("r1 m{n}"))
            );
        }
        assert_eq!(history[0].client_msg_id.as_deref(), Some("c-1"));
        assert_eq!(
            store.last_message(RoomId::new(2)).expect("last").0,
            MsgId::new(2)
        );
        assert_eq!(store.last_seq(RoomId::new(2)).expect("seq"), Seq::new(2));
        let changes = store
            .changes_after(RoomId::new(1), Seq::new(3), 10, true)
            .expect("log");
        let seqs: Vec<u64> = changes.iter().map(|c| c.seq.get()).collect();
        assert_eq!(seqs, [4, 5]);
        let mut reservations = store.load_reservations().expect("reservations");
        reservations.sort();
        assert_eq!(
            reservations,
            [
                (RoomId::new(1), MsgId::new(1000), Seq::new(1000)),
                (RoomId::new(2), MsgId::new(1000), Seq::new(1000))
            ]
        );
    }

    #[test]
    fn a_v1_database_is_upgraded_in_place() {
        let tmp = tempfile::TempDir::new().expect("tmp");
        let path = tmp.path().join("data");
        drop(v1_database(&path));
        let store = open_when_released(&path);
        check_upgraded(&store);
        assert!(!store
            .inner
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == STAGING.as_bytes()));
    }

    #[test]
    fn a_crash_while_staging_is_staged_again() {
        let tmp = tempfile::TempDir::new().expect("tmp");
        let path = tmp.path().join("data");
        let db = v1_database(&path);
        // What a crash half way through staging leaves: some staged records, some
        // log entries, no staging marker; the messages still in daehwa/1.
        db.open_tree(STAGING)
            .expect("staging")
            .insert(pair_key(1, 1), b"half".to_vec())
            .expect("insert");
        db.open_tree("roomid_seq_change")
            .expect("log")
            .insert(pair_key(9, 9), b"junk".to_vec())
            .expect("insert");
        db.flush().expect("flush");
        drop(db);
        let store = open_when_released(&path);
        check_upgraded(&store);
        assert!(store
            .changes_after(RoomId::new(9), Seq::ZERO, 10, true)
            .expect("log")
            .is_empty());
    }

    #[test]
    fn a_crash_while_switching_is_switched_again() {
        let tmp = tempfile::TempDir::new().expect("tmp");
        let path = tmp.path().join("data");
        let db = v1_database(&path);
        let meta = db.open_tree("meta").expect("meta");
        stage(&db, &meta).expect("stage");
        // The switch emptied the message tree and copied one record back, then the
        // process died.
        let messages = emptied(&db, "roomid_msgid_message").expect("emptied");
        let first = db
            .open_tree(STAGING)
            .expect("staging")
            .get(pair_key(1, 1))
            .expect("get")
            .expect("staged");
        messages.insert(pair_key(1, 1), first).expect("insert");
        db.flush().expect("flush");
        drop((messages, meta, db));
        let store = open_when_released(&path);
        check_upgraded(&store);
        // A rerun on an upgraded database changes nothing.
        store.close().expect("close");
        drop(store);
        check_upgraded(&open_when_released(&path));
    }

    #[test]
    fn a_staging_tree_left_after_the_switch_is_dropped() {
        let tmp = tempfile::TempDir::new().expect("tmp");
        let path = tmp.path().join("data");
        let db = v1_database(&path);
        let meta = db.open_tree("meta").expect("meta");
        stage(&db, &meta).expect("stage");
        switch(&db, &meta).expect("switch");
        db.open_tree(STAGING)
            .expect("staging")
            .insert(b"left", b"over".to_vec())
            .expect("insert");
        db.flush().expect("flush");
        drop((meta, db));
        let store = open_when_released(&path);
        check_upgraded(&store);
        assert!(!store
            .inner
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == STAGING.as_bytes()));
    }

    /// A `daehwa/2` database: the `daehwa/1` one upgraded to 2, where every new
    /// message is logged, and an edit of message 2 in room 1 logged as change 6.
    fn v2_database(path: &Path) -> sled::Db {
        let db = v1_database(path);
        let meta = db.open_tree("meta").expect("meta");
        stage(&db, &meta).expect("stage");
        switch(&db, &meta).expect("switch");
        let edit = ChangeRecord {
            msg_id: 2,
            kind: ChangeKindRecord::Edited,
        };
        db.open_tree("roomid_seq_change")
            .expect("log")
            .insert(pair_key(1, 6), encode(&edit).expect("encode"))
            .expect("insert");
        assert_eq!(meta.get(SCHEMA_KEY).expect("get").as_deref(), Some(V2));
        db.flush().expect("flush");
        db
    }

    /// What a `daehwa/3` reader of the database of [`v2_database`] finds.
    fn check_unlogged(store: &Store) {
        let changes = store
            .changes_after(RoomId::new(1), Seq::ZERO, 10, true)
            .expect("changes");
        let seen: Vec<(u64, u64, bool)> = changes
            .iter()
            .map(|c| {
                (
                    c.seq.get(),
                    c.message.msg_id.get(),
                    c.kind == crate::model::ChangeKind::Posted,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, 1, true),
                (2, 2, true),
                (3, 3, true),
                (4, 4, true),
                (5, 5, true),
                (6, 2, false)
            ]
        );
        assert_eq!(store.last_seq(RoomId::new(1)).expect("seq"), Seq::new(6));
        assert_eq!(store.last_seq(RoomId::new(2)).expect("seq"), Seq::new(2));
        let log: Vec<_> = store
            .inner
            .roomid_seq_change
            .iter()
            .map(|e| e.expect("entry").0.to_vec())
            .collect();
        assert_eq!(log, [pair_key(1, 6).to_vec()], "only the edit stays logged");
        assert!(!store.inner.meta.contains_key(UNLOG_KEY).expect("meta"));
    }

    #[test]
    fn a_v2_database_keeps_its_edits_and_unlogs_its_new_messages() {
        let tmp = tempfile::TempDir::new().expect("tmp");
        let path = tmp.path().join("data");
        drop(v2_database(&path));
        let store = open_when_released(&path);
        check_unlogged(&store);
    }

    #[test]
    fn an_upgrade_cut_short_while_unlogging_is_finished_at_the_next_start() {
        let tmp = tempfile::TempDir::new().expect("tmp");
        let path = tmp.path().join("data");
        let db = v2_database(&path);
        // The marker switched, the removal had not begun.
        let meta = db.open_tree("meta").expect("meta");
        meta.insert(UNLOG_KEY, &[1]).expect("note");
        meta.insert(SCHEMA_KEY, SCHEMA).expect("schema");
        db.flush().expect("flush");
        drop((meta, db));
        let store = open_when_released(&path);
        check_unlogged(&store);
    }
}
