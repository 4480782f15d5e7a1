//! Uploaded files: their bytes under `<data dir>/files/`, their records in sled.
//!
//! An upload is written to `files/tmp/<random>.part`, fsynced, renamed to
//! `files/<file id, 16 hex digits>` (and the directory fsynced), and only then is
//! its record written and flushed: a record always has its bytes. Bytes without a
//! record (a crash between the rename and the record, a file deleted) are removed
//! by [`Store::sweep_files`], at start and by the housekeeping job; it is the only
//! thing that removes a stored file's bytes, and it waits while a backup copies
//! them, so a backup's records always find their bytes.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::{decode, encode, key, Store, StoreError, StoreResult};
use crate::model::{FileId, Millis, RoomId, StoredFile, UserId};

/// A file that no message has carried this long after its upload is forgotten by
/// the sweep (an upload whose message was never sent).
const UNATTACHED_FILE_AGE_MILLIS: i64 = 24 * 3600 * 1000;

/// Where the files live, under the data directory.
const FILES_DIR: &str = "files";
/// Uploads in progress, under [`FILES_DIR`].
const TMP_DIR: &str = "tmp";

/// A stored file's record (ids as plain `u64`s, as on disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileRecord {
    room_id: u64,
    uploader: u64,
    name: String,
    size: u64,
    content_type: String,
    created_at: Millis,
}

impl From<&StoredFile> for FileRecord {
    fn from(f: &StoredFile) -> Self {
        Self {
            room_id: f.room_id.get(),
            uploader: f.uploader.get(),
            name: f.name.clone(),
            size: f.size,
            content_type: f.content_type.clone(),
            created_at: f.created_at,
        }
    }
}

impl From<FileRecord> for StoredFile {
    fn from(r: FileRecord) -> Self {
        Self {
            room_id: RoomId::new(r.room_id),
            uploader: UserId::new(r.uploader),
            name: r.name,
            size: r.size,
            content_type: r.content_type,
            created_at: r.created_at,
        }
    }
}

/// The part of the store that keeps files.
pub(super) struct Files {
    dir: PathBuf,
    /// file id → [`FileRecord`].
    fileid_file: sled::Tree,
    /// Held by whatever removes stored bytes, and by a backup while it copies them.
    removing: Mutex<()>,
}

impl Files {
    pub(super) fn open(db: &sled::Db, data_dir: &Path) -> StoreResult<Self> {
        let dir = data_dir.join(FILES_DIR);
        std::fs::create_dir_all(dir.join(TMP_DIR))?;
        Ok(Self {
            dir,
            fileid_file: db.open_tree("fileid_file")?,
            removing: Mutex::new(()),
        })
    }

    pub(super) fn path_of(&self, id: FileId) -> PathBuf {
        self.dir.join(format!("{:016x}", id.get()))
    }

    /// Forgets a file's record; its bytes go at the next sweep.
    pub(super) fn forget(&self, id: FileId) -> StoreResult<()> {
        self.fileid_file.remove(key(id.get()))?;
        Ok(())
    }

    /// Keeps stored bytes from being removed until the guard is dropped.
    pub(super) fn hold_removals(&self) -> MutexGuard<'_, ()> {
        // Nothing is left half done under this lock: poisoning is ignored.
        self.removing.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An upload being written. Dropped before [`Store::finish_upload`] (the client went
/// away, the file was too large), it removes its temporary file.
pub struct Upload {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    written: u64,
    /// The first bytes, for the check of an image's signature.
    head: Vec<u8>,
}

/// Bytes of a file's beginning kept by [`Upload`].
pub const HEAD_BYTES: usize = 16;

impl Upload {
    pub async fn write(&mut self, chunk: &[u8]) -> StoreResult<()> {
        if self.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| StoreError::NotOurs("the upload is finished".into()))?;
        file.write_all(chunk).await?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The first [`HEAD_BYTES`] bytes (fewer if the file is shorter).
    pub fn head(&self) -> &[u8] {
        &self.head
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.file.is_some() {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove an abandoned upload");
            }
        }
    }
}

/// What the stored files take.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FilesUsage {
    pub files: u64,
    pub bytes: u64,
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Store {
    /// Starts an upload: a new temporary file.
    pub async fn begin_upload(&self) -> StoreResult<Upload> {
        let name = format!("{:016x}.part", rand::random::<u64>());
        let path = self.inner.files.dir.join(TMP_DIR).join(name);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok(Upload {
            path,
            file: Some(file),
            written: 0,
            head: Vec::with_capacity(HEAD_BYTES),
        })
    }

    /// Stores a finished upload: its bytes fsynced and moved into place, then its
    /// record written and flushed. The new file's id and what is stored (with its
    /// size).
    pub async fn finish_upload(
        &self,
        mut upload: Upload,
        mut file_info: StoredFile,
    ) -> StoreResult<(FileId, StoredFile)> {
        let Some(mut file) = upload.file.take() else {
            return Err(StoreError::NotOurs("the upload is finished".into()));
        };
        let temporary = upload.path.clone();
        let outcome = async {
            file.flush().await?;
            file.sync_all().await?;
            drop(file);
            file_info.size = upload.written;
            let store = self.clone();
            tokio::task::spawn_blocking(move || {
                store
                    .store_upload(&temporary, &file_info)
                    .map(|id| (id, file_info))
            })
            .await?
        }
        .await;
        if outcome.is_err() {
            let _ = tokio::fs::remove_file(&upload.path).await;
        }
        outcome
    }

    fn store_upload(&self, temporary: &Path, file: &StoredFile) -> StoreResult<FileId> {
        let files = &self.inner.files;
        // sled's ids survive crashes (it skips ahead after one); 0 is not an id.
        let id = FileId::new(self.inner.db.generate_id()? + 1);
        std::fs::rename(temporary, files.path_of(id))?;
        fsync_dir(&files.dir)?;
        files
            .fileid_file
            .insert(key(id.get()), encode(&FileRecord::from(file))?)?;
        self.inner.db.flush()?;
        Ok(id)
    }

    /// A secret of this data directory named `name`: 32 random bytes made on first
    /// use and kept in `meta`, so that what it signs survives restarts.
    pub fn secret(&self, name: &[u8]) -> StoreResult<[u8; 32]> {
        let meta = &self.inner.meta;
        if meta.get(name)?.is_none() {
            let fresh: [u8; 32] = rand::random();
            // Two first uses at once: one wins, both read it below.
            let _ = meta.compare_and_swap(name, None as Option<&[u8]>, Some(&fresh[..]))?;
        }
        let stored = meta
            .get(name)?
            .ok_or_else(|| StoreError::NotOurs("a secret vanished".into()))?;
        stored
            .as_ref()
            .try_into()
            .map_err(|_| StoreError::NotOurs(format!("a secret of {} bytes", stored.len())))
    }

    /// A stored file, if it exists.
    pub fn file(&self, id: FileId) -> StoreResult<Option<StoredFile>> {
        match self.inner.files.fileid_file.get(key(id.get()))? {
            Some(v) => Ok(Some(decode::<FileRecord>(&v)?.into())),
            None => Ok(None),
        }
    }

    /// Where a file's bytes are.
    pub fn file_path(&self, id: FileId) -> PathBuf {
        self.inner.files.path_of(id)
    }

    /// Forgets a file: its record now, its bytes at the next sweep.
    pub fn remove_file_record(&self, id: FileId) -> StoreResult<()> {
        self.inner.files.fileid_file.remove(key(id.get()))?;
        Ok(())
    }

    /// How many files are stored and their bytes, from the records.
    pub fn files_usage(&self) -> StoreResult<FilesUsage> {
        let mut usage = FilesUsage::default();
        for entry in self.inner.files.fileid_file.iter() {
            let (_, v) = entry?;
            let record: FileRecord = decode(&v)?;
            usage.files += 1;
            usage.bytes += record.size;
        }
        Ok(usage)
    }

    /// Forgets files that no message carries a day after their upload; removes the
    /// bytes of files without a record, and uploads abandoned in
    /// `files/tmp/` (all of them when `all_uploads`, at start; else those older
    /// than `upload_age`, as an upload in progress is younger). Blocking. Returns
    /// how many files it removed.
    pub fn sweep_files(
        &self,
        all_uploads: bool,
        upload_age: std::time::Duration,
    ) -> StoreResult<usize> {
        let files = &self.inner.files;
        let _removing = files.hold_removals();
        let mut removed = 0;
        let unattached_before = crate::model::now_millis() - UNATTACHED_FILE_AGE_MILLIS;
        for entry in files.fileid_file.iter() {
            let (k, v) = entry?;
            let record: FileRecord = decode(&v)?;
            if record.created_at < unattached_before
                && self
                    .inner
                    .fileid_roomid_msgid_attachment
                    .scan_prefix(&k)
                    .next()
                    .is_none()
            {
                files.fileid_file.remove(k)?;
            }
        }
        for entry in std::fs::read_dir(&files.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .filter(|n| n.len() == 16)
                .and_then(|n| u64::from_str_radix(n, 16).ok())
                .map(FileId::new)
            else {
                continue;
            };
            if files.fileid_file.get(key(id.get()))?.is_none() {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        for entry in std::fs::read_dir(files.dir.join(TMP_DIR))? {
            let entry = entry?;
            let old = entry
                .metadata()?
                .modified()
                .ok()
                .and_then(|at| at.elapsed().ok())
                .is_some_and(|age| age >= upload_age);
            if all_uploads || old {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Runs `run` (a backup copying files) with removals of stored bytes held off.
    pub(super) fn with_files_held<T>(
        &self,
        run: impl FnOnce() -> StoreResult<T>,
    ) -> StoreResult<T> {
        let _removing = self.inner.files.hold_removals();
        run()
    }
}

/// Starts the copy of file `id` in a data directory being restored. Blocking.
pub(super) fn start_restored_file(data_dir: &Path, id: u64) -> StoreResult<std::fs::File> {
    let dir = data_dir.join(FILES_DIR);
    std::fs::create_dir_all(dir.join(TMP_DIR))?;
    Ok(std::fs::File::create(
        dir.join(TMP_DIR).join(format!("{id:016x}.part")),
    )?)
}

/// Moves a restored file's complete copy into place. Blocking.
pub(super) fn finish_restored_file(
    data_dir: &Path,
    id: u64,
    partial: std::fs::File,
) -> StoreResult<()> {
    partial.sync_all()?;
    drop(partial);
    let dir = data_dir.join(FILES_DIR);
    std::fs::rename(
        dir.join(TMP_DIR).join(format!("{id:016x}.part")),
        dir.join(format!("{id:016x}")),
    )?;
    fsync_dir(&dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> StoredFile {
        StoredFile {
            room_id: RoomId::new(1),
            uploader: UserId::new(2),
            name: "a.txt".into(),
            size: 0,
            content_type: "text/plain".into(),
            created_at: 0,
        }
    }

    #[tokio::test]
    async fn an_upload_is_stored_once_finished_and_forgotten_if_dropped() {
        let tmp = tempfile::TempDir::new().expect("tmp");
        let store = Store::open(tmp.path()).expect("open");
        let mut upload = store.begin_upload().await.expect("begin");
        upload.write(b"hello ").await.expect("write");
        upload.write(b"world").await.expect("write");
        assert_eq!(upload.head(), b"hello world");
        let (id, _) = store.finish_upload(upload, record()).await.expect("finish");
        let stored = store.file(id).expect("get").expect("record");
        assert_eq!(stored.size, 11);
        assert_eq!(
            std::fs::read(store.file_path(id)).expect("read"),
            b"hello world"
        );
        assert_eq!(
            store.files_usage().expect("usage"),
            FilesUsage {
                files: 1,
                bytes: 11
            }
        );

        // Dropped: nothing is left in tmp.
        let mut abandoned = store.begin_upload().await.expect("begin");
        abandoned.write(b"partial").await.expect("write");
        drop(abandoned);
        let tmp_dir = tmp.path().join(FILES_DIR).join(TMP_DIR);
        assert_eq!(std::fs::read_dir(&tmp_dir).expect("tmp").count(), 0);

        // A record removed: its bytes go at the next sweep, and only then.
        store.remove_file_record(id).expect("remove");
        assert!(store.file_path(id).exists());
        let swept = store
            .sweep_files(true, std::time::Duration::from_secs(3600))
            .expect("sweep");
        assert_eq!(swept, 1);
        assert!(!store.file_path(id).exists());
    }
}
