//! The search index: a tantivy index in `<data dir>/search/`, kept by a thread of
//! its own off the flush's path (see ARCHITECTURE.md, "Search: decision").
//!
//! - **Fed by the flush.** Once a flush has stored its changes (sled flushed), the
//!   store hands them to [`SearchIndex::feed`], which queues them for the indexer
//!   and never waits. The queue is bounded by the changes it holds (each keeps its
//!   message in memory): when a batch would go over, it is dropped and its rooms
//!   noted, and the indexer catches up from the log of changes.
//! - **One document per message** that has text: its key (room ‖ msg id), its room,
//!   its time and its tokens ([`crate::search::index_tokens`], pre-split, joined by
//!   spaces). An edit replaces the document, a delete removes it.
//! - **Marks.** For each room, the seq of the last change indexed. They are the
//!   payload of each tantivy commit, so the marks on disk always describe exactly
//!   what the committed index holds. On start the indexer re-indexes every room's
//!   log after its mark (on upgrade, with no index yet, the whole log: every stored
//!   message), committing as it goes, so an interrupted start resumes.
//! - **Visible marks.** After each commit the reader is reloaded, then the marks are
//!   published ([`SearchIndex::marks`]). A search reads the marks first, then takes a
//!   searcher: whatever the searcher lacks is above the marks it read, in the tail of
//!   the log that the search scans itself.
//!
//! The index only proposes: a search checks each candidate against the message as
//! it is now. So the index may be behind or ahead of the stored messages (a crash
//! after its commit, before the store's flush reached the disk, cannot happen: the
//! index is only fed after the store's flush) without a wrong result.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tantivy::collector::sort_key::SortByStaticFastValue;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED,
};
use tantivy::{Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term};

use crate::model::{Body, Change, ChangeKind, Message, RoomId, Seq};
use crate::store::{Store, StoreError};

/// The directory of the index, under the data directory.
pub const DIR: &str = "search";
/// Flushes' batches waiting for the indexer, at most; beyond, a batch is dropped and
/// its rooms caught up from the log.
const FEED_CAPACITY: usize = 64;
/// Changes waiting for the indexer, at most, unless the queue is empty (a flush's
/// batch held a moment longer, once): about 5 MiB of messages. The indexer runs at
/// idle priority, so on a busy core it falls behind; without this bound 64 batches
/// of a flush every second (5 000 changes each in the many-rooms run) could wait.
const FEED_MAX_CHANGES: usize = 10_000;
/// How often the indexer commits what it indexed (and it becomes searchable).
const COMMIT_INTERVAL: Duration = Duration::from_secs(2);
/// Changes read from the log at a time when catching up.
const CATCH_UP_CHUNK: usize = 1000;
/// Changes indexed between two commits while catching up (so that an interrupted
/// start resumes near where it stopped).
const CATCH_UP_COMMIT: usize = 20_000;
/// How often catching up says how far it got.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// The indexer's memory for documents not yet in a segment (tantivy's minimum is
/// 15 MB per thread).
const WRITER_MEMORY: usize = 20_000_000;
/// The version of the payload's shape and of the documents; another version is
/// rebuilt from the log.
const FORMAT: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("search index directory: {0}")]
    Dir(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error("search index: {0}")]
    Store(#[from] StoreError),
    #[error("search index: {0}")]
    Io(#[from] std::io::Error),
    #[error("search index: the indexer thread is gone")]
    Gone,
}

/// What each commit carries: the marks it reached.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Payload {
    format: u32,
    /// room id → seq of the last change indexed.
    marks: HashMap<u64, u64>,
}

#[derive(Clone, Copy)]
struct Fields {
    room: Field,
    at: Field,
    msg: Field,
    tokens: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let room = builder.add_u64_field("room", INDEXED | FAST);
    // Not indexed: a range on a fast field is read from the column, and a term per
    // message (every time is new) made the term dictionary as long as the index.
    let at = builder.add_u64_field("at", FAST);
    let msg = builder.add_u64_field("msg", FAST);
    let tokens = builder.add_text_field(
        "tokens",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("whitespace")
                .set_index_option(IndexRecordOption::Basic),
        ),
    );
    (
        builder.build(),
        Fields {
            room,
            at,
            msg,
            tokens,
        },
    )
}

/// A message's place in search results, newest first: time, then room, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    pub at: u64,
    pub room: u64,
    pub msg: u64,
}

impl Cursor {
    pub fn of(message: &Message) -> Self {
        Self {
            at: u64::try_from(message.created_at).unwrap_or(0),
            room: message.room_id.get(),
            msg: message.msg_id.get(),
        }
    }
}

/// The text a message is found by, if it has one.
pub fn text_of(message: &Message) -> Option<&str> {
    match &message.body {
        Body::Text { content, .. } => Some(content),
        Body::Deleted { .. } => None,
    }
}

/// The document of message `msg` of `room`, as a query (for deleting it).
fn document_of(fields: Fields, room: u64, msg: u64) -> BooleanQuery {
    let id = Term::from_field_u64(fields.msg, msg);
    BooleanQuery::new(vec![
        (
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_u64(fields.room, room),
                IndexRecordOption::Basic,
            )) as Box<dyn Query>,
        ),
        (
            Occur::Must,
            Box::new(RangeQuery::new(
                Bound::Included(id.clone()),
                Bound::Included(id),
            )),
        ),
    ])
}

enum Command {
    Changes(Vec<Arc<Change>>),
    Stop,
}

/// The index, shared by the searches and the store's flush.
pub struct SearchIndex {
    reader: IndexReader,
    fields: Fields,
    /// The marks of what the reader sees (see the module's doc).
    marks: RwLock<Arc<HashMap<RoomId, Seq>>>,
    feed: SyncSender<Command>,
    /// Changes in the batches on `feed`: added when one is sent, taken off once it
    /// is indexed.
    queued: AtomicUsize,
    /// Rooms of batches dropped on a full queue, for the indexer to catch up.
    dropped: Mutex<HashSet<RoomId>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl SearchIndex {
    /// Opens (or creates) the index under `data_dir` and starts its thread, which
    /// first catches up with the log of `store`. A missing, unreadable or other
    /// version of the index is rebuilt from the log.
    pub fn start(store: Store, data_dir: &Path) -> Result<Arc<Self>, IndexError> {
        let dir = data_dir.join(DIR);
        let (index, marks) = match open(&dir) {
            Ok(opened) => opened,
            Err(_) if !dir.join("meta.json").exists() => {
                tracing::info!(dir = %dir.display(), "creating the search index");
                create(&dir)?
            }
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "rebuilding the search index from the log");
                create(&dir)?
            }
        };
        let (_, fields) = schema();
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let (feed, commands) = mpsc::sync_channel(FEED_CAPACITY);
        let this = Arc::new(Self {
            reader,
            fields,
            marks: RwLock::new(Arc::new(marks.clone())),
            feed,
            queued: AtomicUsize::new(0),
            dropped: Mutex::new(HashSet::new()),
            thread: Mutex::new(None),
        });
        let shared = Arc::clone(&this);
        let (opened, writer_opened) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("search-indexer".into())
            .spawn(move || {
                // Below the server's threads: on a busy core the messages go first
                // and the index catches up when there is time (tantivy's threads,
                // made by the writer below, inherit the policy). What it has not
                // taken in yet is caught up from the log.
                crate::priority::run_this_thread_in_background();
                let writer: IndexWriter = match index.writer_with_num_threads(1, WRITER_MEMORY) {
                    Ok(writer) => {
                        let _ = opened.send(Ok(()));
                        writer
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                Indexer {
                    shared,
                    store,
                    writer,
                    marks,
                    dirty: false,
                    indexed: 0,
                }
                .run(commands)
            })?;
        writer_opened.recv().map_err(|_| IndexError::Gone)??;
        *this.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        Ok(this)
    }

    /// Hands a flush's stored changes to the indexer, never waiting.
    pub fn feed(&self, changes: Vec<Arc<Change>>) {
        if changes.is_empty() {
            return;
        }
        let count = changes.len();
        let before = self.queued.fetch_add(count, Ordering::AcqRel);
        let refused = if queue_admits(before, count) {
            match self.feed.try_send(Command::Changes(changes)) {
                Ok(()) => return,
                Err(TrySendError::Full(Command::Changes(changes))) => Some(changes),
                // The indexer is gone (it logged why): nothing waits for these.
                Err(_) => None,
            }
        } else {
            Some(changes)
        };
        self.queued.fetch_sub(count, Ordering::AcqRel);
        if let Some(changes) = refused {
            tracing::debug!(
                changes = count,
                queued = before,
                "search indexer behind; the batch's rooms are caught up from the log"
            );
            let mut dropped = self.dropped.lock().unwrap_or_else(|p| p.into_inner());
            dropped.extend(changes.iter().map(|c| c.room_id()));
        }
    }

    /// Commits what is indexed and stops the thread (at shutdown, after the final
    /// flush).
    pub fn stop(&self) {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = self.feed.send(Command::Stop);
            if thread.join().is_err() {
                tracing::error!("the search indexer thread panicked");
            }
        }
    }

    /// For each room, the seq of the last change the searchable index holds.
    pub fn marks(&self) -> Arc<HashMap<RoomId, Seq>> {
        Arc::clone(&self.marks.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The `fetch` newest documents of `rooms` having every one of `tokens`, at or
    /// below `before`'s time, newest first. Call [`Self::marks`] before.
    pub fn candidates(
        &self,
        rooms: &[RoomId],
        tokens: &[String],
        before: Option<Cursor>,
        fetch: usize,
    ) -> Result<Vec<Cursor>, IndexError> {
        if rooms.is_empty() || tokens.is_empty() || fetch == 0 {
            return Ok(Vec::new());
        }
        let f = self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = tokens
            .iter()
            .map(|token| {
                let term = Term::from_field_text(f.tokens, token);
                (
                    Occur::Must,
                    Box::new(TermQuery::new(term, IndexRecordOption::Basic)) as Box<dyn Query>,
                )
            })
            .collect();
        clauses.push((
            Occur::Must,
            Box::new(TermSetQuery::new(
                rooms.iter().map(|r| Term::from_field_u64(f.room, r.get())),
            )),
        ));
        if let Some(before) = before {
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Unbounded,
                    Bound::Included(Term::from_field_u64(f.at, before.at)),
                )),
            ));
        }
        let newest_first = (
            (SortByStaticFastValue::<u64>::for_field("at"), Order::Desc),
            (SortByStaticFastValue::<u64>::for_field("room"), Order::Desc),
            (SortByStaticFastValue::<u64>::for_field("msg"), Order::Desc),
        );
        let searcher = self.reader.searcher();
        let top = searcher.search(
            &BooleanQuery::new(clauses),
            &TopDocs::with_limit(fetch).order_by(newest_first),
        )?;
        Ok(top
            .into_iter()
            .filter_map(|((at, room, msg), _)| {
                Some(Cursor {
                    at: at?,
                    room: room?,
                    msg: msg?,
                })
            })
            .collect())
    }

    fn publish(&self, marks: &HashMap<RoomId, Seq>) {
        *self.marks.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(marks.clone());
    }
}

/// Opens the index in `dir` and reads its marks; an error if there is none or it
/// is of another version.
fn open(dir: &Path) -> Result<(Index, HashMap<RoomId, Seq>), IndexError> {
    let index = Index::open_in_dir(dir)?;
    let (expected, _) = schema();
    if index.schema() != expected {
        return Err(IndexError::Io(std::io::Error::other(
            "the index has another schema",
        )));
    }
    let payload: Payload = match index.load_metas()?.payload {
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| IndexError::Io(std::io::Error::other(e.to_string())))?,
        None => Payload {
            format: FORMAT,
            ..Payload::default()
        },
    };
    if payload.format != FORMAT {
        return Err(IndexError::Io(std::io::Error::other(
            "the index is of another version",
        )));
    }
    let marks = payload
        .marks
        .into_iter()
        .map(|(room, seq)| (RoomId::new(room), Seq::new(seq)))
        .collect();
    Ok((index, marks))
}

/// A new, empty index in `dir` (whatever was there is removed).
fn create(dir: &PathBuf) -> Result<(Index, HashMap<RoomId, Seq>), IndexError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let (schema, _) = schema();
    Ok((Index::create_in_dir(dir, schema)?, HashMap::new()))
}

/// The indexer thread's state.
struct Indexer {
    shared: Arc<SearchIndex>,
    store: Store,
    writer: IndexWriter,
    /// What is indexed (committed or not).
    marks: HashMap<RoomId, Seq>,
    /// Whether anything was indexed since the last commit.
    dirty: bool,
    /// Changes indexed since the last commit.
    indexed: usize,
}

impl Indexer {
    fn run(&mut self, commands: mpsc::Receiver<Command>) {
        if let Err(e) = self.catch_up_all() {
            tracing::error!(error = %e, "the search index could not catch up with the log");
        }
        let mut last_commit = Instant::now();
        loop {
            let wait = COMMIT_INTERVAL.saturating_sub(last_commit.elapsed());
            let stop = match commands.recv_timeout(wait) {
                Ok(Command::Changes(changes)) => {
                    if let Err(e) = self.apply(&changes) {
                        tracing::error!(error = %e, "search indexing failed; caught up later from the log");
                    }
                    let count = changes.len();
                    drop(changes);
                    self.shared.queued.fetch_sub(count, Ordering::AcqRel);
                    false
                }
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => true,
                Err(RecvTimeoutError::Timeout) => false,
            };
            let dropped: Vec<RoomId> = {
                let mut dropped = self
                    .shared
                    .dropped
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                dropped.drain().collect()
            };
            for room in dropped {
                if let Err(e) = self.catch_up(room) {
                    tracing::error!(error = %e, room = room.get(), "search index catch-up failed");
                }
            }
            if stop || last_commit.elapsed() >= COMMIT_INTERVAL {
                last_commit = Instant::now();
                if let Err(e) = self.commit() {
                    tracing::error!(error = %e, "search index commit failed; retried");
                }
            }
            if stop {
                break;
            }
        }
    }

    /// Indexes every room's log after its mark: on upgrade (no index yet), the
    /// whole log; after a crash, what the last commit did not hold.
    fn catch_up_all(&mut self) -> Result<(), IndexError> {
        let behind: Vec<(RoomId, Seq)> = self
            .store
            .load_reservations()?
            .into_iter()
            .map(|(room, _, _)| Ok((room, self.store.last_seq(room)?)))
            .collect::<Result<Vec<_>, StoreError>>()?
            .into_iter()
            .filter(|(room, last)| self.mark(*room) < *last)
            .collect();
        if behind.is_empty() {
            return self.commit();
        }
        let total: u64 = behind
            .iter()
            .map(|(room, last)| last.get().saturating_sub(self.mark(*room).get()))
            .sum();
        tracing::info!(
            rooms = behind.len(),
            changes = total,
            "search index: indexing the log after its marks"
        );
        let started = Instant::now();
        let mut last_report = started;
        let mut done = 0u64;
        for (room, _) in &behind {
            loop {
                let n = self.catch_up_chunk(*room)?;
                done += n as u64;
                if self.indexed >= CATCH_UP_COMMIT {
                    self.commit()?;
                }
                if last_report.elapsed() >= PROGRESS_INTERVAL {
                    last_report = Instant::now();
                    tracing::info!(done, total, "search index: catching up");
                }
                if n < CATCH_UP_CHUNK {
                    break;
                }
            }
        }
        self.commit()?;
        tracing::info!(
            changes = done,
            millis = started.elapsed().as_millis() as u64,
            "search index: caught up with the log"
        );
        Ok(())
    }

    fn mark(&self, room: RoomId) -> Seq {
        self.marks.get(&room).copied().unwrap_or(Seq::new(0))
    }

    /// Indexes `room`'s log after its mark.
    fn catch_up(&mut self, room: RoomId) -> Result<(), IndexError> {
        while self.catch_up_chunk(room)? == CATCH_UP_CHUNK {}
        Ok(())
    }

    /// Indexes up to [`CATCH_UP_CHUNK`] of `room`'s stored changes after its mark;
    /// how many there were.
    fn catch_up_chunk(&mut self, room: RoomId) -> Result<usize, IndexError> {
        let changes = self
            .store
            .changes_after(room, self.mark(room), CATCH_UP_CHUNK, false)?;
        for change in &changes {
            // The message as it is now (a reaction leaves its text as it was).
            if !matches!(change.kind, ChangeKind::Reacted { .. }) {
                self.index_change(change)?;
            }
            self.marks.insert(room, change.seq);
        }
        self.indexed += changes.len();
        self.dirty |= !changes.is_empty();
        Ok(changes.len())
    }

    /// Applies a flush's changes, in order within each room; a room whose changes
    /// do not follow its mark is first caught up from the log.
    fn apply(&mut self, changes: &[Arc<Change>]) -> Result<(), IndexError> {
        for change in changes {
            let room = change.room_id();
            if change.seq.get() > self.mark(room).get() + 1 {
                self.catch_up(room)?;
            }
            if change.seq <= self.mark(room) {
                continue;
            }
            if !matches!(change.kind, ChangeKind::Reacted { .. }) {
                self.index_change(change)?;
            }
            self.marks.insert(room, change.seq);
            self.indexed += 1;
            self.dirty = true;
        }
        Ok(())
    }

    /// Makes the index hold `message` as `change` left it: its document replaced,
    /// or removed when it has no text. A message just posted has no document yet
    /// (the marks are committed with the documents), so none is deleted: a delete is
    /// a query run on every segment at the next commit, and most changes are new
    /// messages. (Deleting by a query rather than by a key term keeps a term per
    /// message out of the index.)
    fn index_change(&mut self, change: &Change) -> Result<(), IndexError> {
        let f = self.shared.fields;
        let message = &change.message;
        let (room, msg) = (message.room_id.get(), message.msg_id.get());
        if change.kind != ChangeKind::Posted {
            self.writer
                .delete_query(Box::new(document_of(f, room, msg)))?;
        }
        if let Some(text) = text_of(message) {
            let tokens: Vec<String> = crate::search::index_tokens(text).into_iter().collect();
            let mut document = TantivyDocument::default();
            document.add_u64(f.room, room);
            document.add_u64(f.at, Cursor::of(message).at);
            document.add_u64(f.msg, msg);
            document.add_text(f.tokens, tokens.join(" "));
            self.writer.add_document(document)?;
        }
        Ok(())
    }

    /// Commits with the marks as payload, reloads the reader, publishes the marks.
    fn commit(&mut self) -> Result<(), IndexError> {
        if !self.dirty {
            return Ok(());
        }
        let payload = Payload {
            format: FORMAT,
            marks: self
                .marks
                .iter()
                .map(|(room, seq)| (room.get(), seq.get()))
                .collect(),
        };
        let payload =
            serde_json::to_string(&payload).map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.shared.reader.reload()?;
        self.shared.publish(&self.marks);
        self.dirty = false;
        self.indexed = 0;
        Ok(())
    }
}

/// Whether a batch of `count` changes joins a queue holding `queued`: always when
/// the queue is empty, else within [`FEED_MAX_CHANGES`].
fn queue_admits(queued: usize, count: usize) -> bool {
    queued == 0 || queued.saturating_add(count) <= FEED_MAX_CHANGES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_queue_is_bounded_by_changes_but_takes_one_large_batch_when_empty() {
        assert!(queue_admits(0, 3 * FEED_MAX_CHANGES));
        assert!(queue_admits(1, FEED_MAX_CHANGES - 1));
        assert!(!queue_admits(1, FEED_MAX_CHANGES));
        assert!(!queue_admits(FEED_MAX_CHANGES, 1));
        assert!(!queue_admits(usize::MAX, 1));
    }
}
