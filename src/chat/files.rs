//! Files shared in rooms: who may upload and download them, their names and types
//! made safe, the size limit while the bytes stream in, and the cookie that lets
//! a browser's `<img>` fetch a file without a bearer header.

use std::path::PathBuf;

use blake2::digest::{KeyInit, Mac};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::moderation::check_not_muted;
use super::{rate_limited, Caller, Chat};
use crate::error::{Error, Result};
use crate::model::{now_millis, Attachment, FileId, RoomId, StoredFile, UserId};
use crate::store::HEAD_BYTES;

/// A file name is cut to at most this many bytes.
const NAME_MAX_BYTES: usize = 255;
/// The name of a file whose given name has nothing left once made safe.
const DEFAULT_NAME: &str = "file";
/// The type of a file uploaded without one.
const DEFAULT_TYPE: &str = "application/octet-stream";
/// How long a files cookie is good for.
pub const FILES_COOKIE_LIFETIME_SECS: i64 = 3600;

/// The image types shown inline, each with the bytes it must start with. Anything
/// else (SVG included: it can hold scripts) is served as a download.
const INLINE_IMAGES: &[(&str, &[u8])] = &[
    ("image/png", b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", b"\xff\xd8\xff"),
    ("image/gif", b"GIF8"),
    ("image/webp", b"RIFF"),
];

/// An upload in `files/tmp/` older than this is taken for abandoned by the sweep
/// while the server runs (at start, every one is).
const ABANDONED_UPLOAD_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Files one message may carry.
pub const MAX_ATTACHMENTS: usize = 10;

/// A file as clients see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileView {
    pub file_id: FileId,
    pub name: String,
    pub size: u64,
    pub content_type: String,
}

impl FileView {
    pub fn new(file_id: FileId, record: &StoredFile) -> Self {
        Self {
            file_id,
            name: record.name.clone(),
            size: record.size,
            content_type: record.content_type.clone(),
        }
    }
}

/// An upload that passed its checks, before its bytes are read.
#[derive(Debug)]
pub struct UploadTicket {
    room_id: RoomId,
    uploader: UserId,
    name: String,
    content_type: String,
    max_bytes: u64,
}

/// A file to send to a member.
#[derive(Debug)]
pub struct Download {
    pub file_id: FileId,
    pub record: StoredFile,
    pub path: PathBuf,
    /// Whether a browser may show it in the page (a known image type).
    pub inline: bool,
}

/// Whether files of this type are shown inline.
pub fn is_inline_image(content_type: &str) -> bool {
    INLINE_IMAGES.iter().any(|(t, _)| *t == content_type)
}

/// A name made harmless: the last path component only, no control or format
/// characters (no bidirectional overrides), no leading or trailing dots and spaces,
/// at most [`NAME_MAX_BYTES`] bytes. Never empty.
pub fn safe_file_name(given: &str) -> String {
    let last = given.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| {
            !matches!(
                c.general_category(),
                GeneralCategory::Control
                    | GeneralCategory::Format
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
                    | GeneralCategory::Unassigned
                    | GeneralCategory::PrivateUse
                    | GeneralCategory::Surrogate
            )
        })
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| c == '.' || c.is_whitespace());
    let mut end = trimmed.len().min(NAME_MAX_BYTES);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    let name = trimmed[..end].trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    if name.is_empty() {
        DEFAULT_NAME.to_owned()
    } else {
        name.to_owned()
    }
}

/// The `type/subtype` of a Content-Type header, lower case, parameters dropped;
/// `application/octet-stream` when there is none.
pub fn parse_content_type(header: Option<&str>) -> Result<String> {
    let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(DEFAULT_TYPE.to_owned());
    };
    let essence = header.split(';').next().unwrap_or("").trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match essence.split_once('/') {
        Some((kind, sub)) if token(kind) && token(sub) => Ok(essence.to_ascii_lowercase()),
        _ => Err(Error::bad_request(
            "invalid_content_type",
            "Content-Type must be a media type such as image/png",
        )),
    }
}

fn too_large(max_bytes: u64) -> Error {
    Error::TooLarge {
        code: "file_too_large",
        message: format!("a file is at most {max_bytes} bytes"),
    }
}

impl Chat {
    /// Checks an upload before any of its body is read: the caller is a member of
    /// the room and not muted there, the declared size fits, the type is a media
    /// type, and the caller's uploads are within the rate limit.
    pub fn start_upload(
        &self,
        caller: Caller,
        room_id: RoomId,
        name: &str,
        content_type: Option<&str>,
        declared_size: Option<u64>,
    ) -> Result<UploadTicket> {
        {
            let directory = self.directory();
            let room = directory.joined(room_id, caller.user_id)?;
            check_not_muted(room, caller.user_id)?;
        }
        let max_bytes = self.settings.limits.max_file_bytes;
        if declared_size.is_some_and(|size| size > max_bytes) {
            return Err(too_large(max_bytes));
        }
        let content_type = parse_content_type(content_type)?;
        self.limits
            .uploads
            .take(&caller.user_id)
            .map_err(|refusal| {
                rate_limited(
                    "rate_limited",
                    format!(
                        "at most {} uploads an hour",
                        self.settings.limits.uploads_per_hour
                    ),
                    refusal,
                )
            })?;
        Ok(UploadTicket {
            room_id,
            uploader: caller.user_id,
            name: safe_file_name(name),
            content_type,
            max_bytes,
        })
    }

    /// Stores an upload's bytes as they arrive, refusing it (413) as soon as it
    /// passes the limit: nothing is held in memory but the chunk at hand. An image
    /// type must start with its signature.
    pub async fn upload(
        &self,
        ticket: UploadTicket,
        body: impl Stream<Item = Result<Bytes>>,
    ) -> Result<FileView> {
        let mut upload = self.store.begin_upload().await?;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if upload.written() + chunk.len() as u64 > ticket.max_bytes {
                return Err(too_large(ticket.max_bytes));
            }
            upload.write(&chunk).await?;
        }
        if let Some((_, signature)) = INLINE_IMAGES
            .iter()
            .find(|(t, _)| *t == ticket.content_type)
        {
            let head = upload.head();
            let webp = ticket.content_type != "image/webp"
                || (head.len() >= 12 && &head[8..12] == b"WEBP");
            if !head.starts_with(signature) || !webp {
                return Err(Error::bad_request(
                    "content_type_mismatch",
                    format!("the file is not {}", ticket.content_type),
                ));
            }
        }
        const { assert!(HEAD_BYTES >= 12) };
        let record = StoredFile {
            room_id: ticket.room_id,
            uploader: ticket.uploader,
            name: ticket.name,
            size: 0,
            content_type: ticket.content_type,
            created_at: now_millis(),
        };
        let (file_id, record) = self.store.finish_upload(upload, record).await?;
        tracing::info!(
            file_id = %file_id,
            room_id = %record.room_id,
            bytes = record.size,
            "file stored"
        );
        Ok(FileView::new(file_id, &record))
    }

    /// A file for `user` to download: 404 if it does not exist or is in a room they
    /// may not see, 403 if they are not a member of its room.
    pub fn download(&self, user: UserId, file_id: FileId) -> Result<Download> {
        let not_found = || Error::NotFound {
            code: "file_not_found",
            message: "no such file".into(),
        };
        let record = self.store.file(file_id)?.ok_or_else(not_found)?;
        match self.directory().joined(record.room_id, user) {
            Ok(_) => {}
            Err(Error::RoomNotFound) => return Err(not_found()),
            Err(e) => return Err(e),
        }
        Ok(Download {
            file_id,
            inline: is_inline_image(&record.content_type),
            path: self.store.file_path(file_id),
            record,
        })
    }

    /// The attachments of a new message by `sender` in `room`: each a file that
    /// `sender` uploaded to `room`, each once, at most [`MAX_ATTACHMENTS`].
    pub(super) fn attachments_for(
        &self,
        room: RoomId,
        sender: UserId,
        ids: &[FileId],
    ) -> Result<Vec<Attachment>> {
        if ids.len() > MAX_ATTACHMENTS {
            return Err(Error::bad_request(
                "invalid_attachment",
                format!("a message carries at most {MAX_ATTACHMENTS} files"),
            ));
        }
        let mut attachments: Vec<Attachment> = Vec::with_capacity(ids.len());
        for &file_id in ids {
            if attachments.iter().any(|a| a.file_id == file_id) {
                return Err(Error::bad_request(
                    "invalid_attachment",
                    format!("file {file_id} is attached twice"),
                ));
            }
            let file = self
                .store
                .file(file_id)?
                .filter(|f| f.room_id == room && f.uploader == sender)
                .ok_or_else(|| {
                    Error::bad_request(
                        "invalid_attachment",
                        format!("file {file_id} is not a file you uploaded to this room"),
                    )
                })?;
            attachments.push(Attachment {
                file_id,
                name: file.name.into(),
                size: file.size,
                content_type: file.content_type.into(),
            });
        }
        Ok(attachments)
    }

    /// Removes the bytes of files that have no record any more, and abandoned
    /// uploads (all of them `at_start`). Blocking: the start-up and the
    /// housekeeping job call it.
    pub fn sweep_files(&self, at_start: bool) -> Result<usize> {
        Ok(self.store.sweep_files(at_start, ABANDONED_UPLOAD_AGE)?)
    }

    /// A files cookie for `caller`: `user.expiry.mac`, good for
    /// [`FILES_COOKIE_LIFETIME_SECS`].
    pub fn files_cookie(&self, caller: Caller) -> Result<String> {
        let expires = now_millis() / 1000 + FILES_COOKIE_LIFETIME_SECS;
        let mac = self.cookie_mac(caller.user_id, expires)?;
        Ok(format!("{}.{expires}.{}", caller.user_id, hex(&mac)))
    }

    /// The user a files cookie was made for, if it is ours, unexpired, and its user
    /// is still enabled.
    pub fn check_files_cookie(&self, cookie: &str) -> Result<UserId> {
        let mut parts = cookie.split('.');
        let (Some(user), Some(expires), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Unauthorized);
        };
        let user: UserId = user.parse().map_err(|_| Error::Unauthorized)?;
        let expires: i64 = expires.parse().map_err(|_| Error::Unauthorized)?;
        let mac = unhex(mac).ok_or(Error::Unauthorized)?;
        if expires < now_millis() / 1000 {
            return Err(Error::Unauthorized);
        }
        let mut expected = self.cookie_hasher()?;
        expected.update(&cookie_message(user, expires));
        expected
            .verify_slice(&mac)
            .map_err(|_| Error::Unauthorized)?;
        let accounts = self.accounts();
        match accounts.users.get(&user) {
            Some(account) if !account.disabled => Ok(user),
            _ => Err(Error::Unauthorized),
        }
    }

    fn cookie_hasher(&self) -> Result<blake2::Blake2bMac512> {
        let secret = self.store.secret(b"files_cookie_secret")?;
        <blake2::Blake2bMac512 as KeyInit>::new_from_slice(&secret).map_err(|_| Error::Internal)
    }

    fn cookie_mac(&self, user: UserId, expires: i64) -> Result<Vec<u8>> {
        let mut mac = self.cookie_hasher()?;
        mac.update(&cookie_message(user, expires));
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

fn cookie_message(user: UserId, expires: i64) -> Vec<u8> {
    let mut m = b"daehwa files cookie\0".to_vec();
    m.extend_from_slice(&user.to_be_bytes());
    m.extend_from_slice(&expires.to_be_bytes());
    m
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_paths_and_hidden_characters() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(safe_file_name("report\u{202E}fdp.exe"), "reportfdp.exe");
        assert_eq!(safe_file_name("a\nb\0c.txt"), "abc.txt");
        assert_eq!(safe_file_name(".."), "file");
        assert_eq!(safe_file_name(""), "file");
        assert_eq!(safe_file_name("dir/"), "file");
        assert_eq!(safe_file_name("  .hidden  "), "hidden");
        assert_eq!(safe_file_name("회의록 2026.pdf"), "회의록 2026.pdf");
        let long = safe_file_name(&"가".repeat(200));
        assert!(long.len() <= NAME_MAX_BYTES && long.starts_with('가'));
    }

    #[test]
    fn content_types_are_media_types() {
        assert_eq!(parse_content_type(None).expect("none"), DEFAULT_TYPE);
        assert_eq!(
            parse_content_type(Some("Image/PNG; charset=x")).expect("png"),
            "image/png"
        );
        assert!(parse_content_type(Some("text")).is_err());
        assert!(parse_content_type(Some("text/html\r\nX: y")).is_err());
        assert!(parse_content_type(Some("a b/c")).is_err());
        assert!(is_inline_image("image/png"));
        assert!(!is_inline_image("image/svg+xml"));
    }
}
