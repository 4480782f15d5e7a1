//! Files over HTTP: upload (streamed to disk, refused as soon as it is too large),
//! download (members only, as a download unless it is an image, with ETag and
//! Range), and the cookie that lets a browser's `<img>` fetch a file.

use std::io::{Seek, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use tokio::io::{AsyncRead, ReadBuf};
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Buf, Filter, Rejection, Reply};

use super::{caller, json_reply, no_content, parse_id, raw_header, with_chat};
use crate::chat::files::{Download, FILES_COOKIE_LIFETIME_SECS};
use crate::chat::{Caller, Chat};
use crate::error::Error;
use crate::model::{FileId, UserId};
use crate::reply::bearer;

/// The cookie that carries a files credential (see [`Chat::files_cookie`]).
const COOKIE_NAME: &str = "daehwa_files";
/// The only path the cookie is sent to.
const COOKIE_PATH: &str = "/api/files/";
/// Bytes read from disk per piece of a download.
const READ_CHUNK: usize = 64 * 1024;

/// How long an upload's body may take.
#[derive(Debug, Clone, Copy)]
pub struct UploadTimeouts {
    /// Between two pieces of the body.
    pub idle: Duration,
    /// For the whole body.
    pub total: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    filename: Option<String>,
}

/// POST /api/chatrooms/{roomId}/files?filename=NAME, the file as the body →
/// 201 {fileId, name, size, contentType}.
pub(super) fn upload(
    chat: Arc<Chat>,
    timeouts: UploadTimeouts,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "chatrooms" / String / "files")
        .and(warp::post())
        .and(warp::query::<UploadQuery>())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and(raw_header("content-type"))
        .and(raw_header("content-length"))
        .and(warp::body::stream())
        .and_then(
            move |room: String,
                  query: UploadQuery,
                  chat: Arc<Chat>,
                  caller: Caller,
                  content_type: Option<HeaderValue>,
                  length: Option<HeaderValue>,
                  body| async move {
                let room_id = parse_id(&room, "roomId")?;
                let content_type = match &content_type {
                    None => None,
                    Some(value) => Some(value.to_str().map_err(|_| {
                        Error::bad_request("invalid_content_type", "Content-Type is not text")
                    })?),
                };
                let length = match &length {
                    None => None,
                    Some(value) => Some(
                        value
                            .to_str()
                            .ok()
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .ok_or_else(|| {
                                Error::bad_request(
                                    "invalid_header",
                                    "Content-Length is not a number",
                                )
                            })?,
                    ),
                };
                let ticket = chat.start_upload(
                    caller,
                    room_id,
                    query.filename.as_deref().unwrap_or(""),
                    content_type,
                    length,
                )?;
                let file = chat.upload(ticket, timed(body, timeouts)).await?;
                Ok::<_, Rejection>(json_reply(StatusCode::CREATED, &file))
            },
        )
}

/// The body as it arrives, each piece within `timeouts.idle` of the previous one
/// and all of it within `timeouts.total`; 408 `body_timeout` otherwise.
fn timed<S, B>(body: S, timeouts: UploadTimeouts) -> impl Stream<Item = Result<Bytes, Error>>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    let deadline = tokio::time::Instant::now() + timeouts.total;
    let body = Box::pin(body);
    futures_util::stream::unfold(Some(body), move |state| async move {
        let mut body = state?;
        let wait = timeouts
            .idle
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        let timeout = || Error::Timeout {
            code: "body_timeout",
            message: "the upload stopped coming, or took too long".into(),
        };
        match tokio::time::timeout(wait, body.next()).await {
            Err(_) => Some((Err(timeout()), None)),
            Ok(None) => None,
            Ok(Some(Err(_))) => Some((
                Err(Error::bad_request(
                    "invalid_body",
                    "the request body could not be read",
                )),
                None,
            )),
            Ok(Some(Ok(mut chunk))) => {
                let bytes = chunk.copy_to_bytes(chunk.remaining());
                Some((Ok(bytes), Some(body)))
            }
        }
    })
}

/// POST /api/files/cookie → 204 and a cookie with which the browser may fetch
/// files (for an hour) without a bearer header.
pub(super) fn make_cookie(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "files" / "cookie")
        .and(warp::post())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and_then(|chat: Arc<Chat>, caller: Caller| async move {
            let value = chat.files_cookie(caller)?;
            let cookie = format!(
                "{COOKIE_NAME}={value}; Path={COOKIE_PATH}; Max-Age={FILES_COOKIE_LIFETIME_SECS}; HttpOnly; SameSite=Strict"
            );
            Ok::<_, Rejection>(with_cookie(no_content(), &cookie))
        })
}

/// DELETE /api/files/cookie → 204, the cookie cleared (at logout).
pub(super) fn clear_cookie() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "files" / "cookie")
        .and(warp::delete())
        .map(|| {
            let cookie =
                format!("{COOKIE_NAME}=; Path={COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict");
            with_cookie(no_content(), &cookie)
        })
}

fn with_cookie(mut reply: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        reply.headers_mut().insert(header::SET_COOKIE, value);
    }
    reply
}

/// The user a download is for: the bearer token, else the files cookie.
fn downloader(chat: Arc<Chat>) -> impl Filter<Extract = (UserId,), Error = Rejection> + Clone {
    raw_header("authorization")
        .and(raw_header("cookie"))
        .and(with_chat(chat))
        .and_then(
            |authorization: Option<HeaderValue>, cookies: Option<HeaderValue>, chat: Arc<Chat>| async move {
                if let Some(token) = bearer(authorization.as_ref()) {
                    return Ok::<_, Rejection>(chat.authenticate(token)?.user_id);
                }
                let cookie = cookies
                    .as_ref()
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| {
                        h.split(';').find_map(|pair| {
                            let (name, value) = pair.trim().split_once('=')?;
                            (name == COOKIE_NAME).then_some(value)
                        })
                    })
                    .ok_or(Error::Unauthorized)?;
                Ok(chat.check_files_cookie(cookie)?)
            },
        )
}

/// GET /api/files/{fileId} → the file, to members of its room.
pub(super) fn download(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "files" / String)
        .and(warp::get())
        .and(with_chat(chat.clone()))
        .and(downloader(chat))
        .and(warp::header::headers_cloned())
        .and_then(
            |file: String, chat: Arc<Chat>, user: UserId, headers: HeaderMap| async move {
                let file_id: FileId = parse_id(&file, "fileId")?;
                let download = chat.download(user, file_id)?;
                Ok::<_, Rejection>(file_reply(download, &headers).await?)
            },
        )
}

/// What part of a file a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Part {
    Whole,
    /// First and last byte, inclusive.
    Range(u64, u64),
    Unsatisfiable,
}

/// A `Range` header's single byte range, within a file of `size` bytes. Several
/// ranges, another unit or a malformed header are answered with the whole file,
/// as RFC 9110 allows.
fn requested_part(range: Option<&str>, size: u64) -> Part {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Part::Whole;
    };
    if spec.contains(',') {
        return Part::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Part::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| s.parse::<u64>().ok();
    if first.is_empty() {
        // bytes=-N: the last N bytes.
        return match number(last) {
            None => Part::Whole,
            Some(0) => Part::Unsatisfiable,
            Some(_) if size == 0 => Part::Unsatisfiable,
            Some(suffix) => Part::Range(size.saturating_sub(suffix), size - 1),
        };
    }
    let Some(first) = number(first) else {
        return Part::Whole;
    };
    let last = match last {
        "" => None,
        text => match number(text) {
            Some(last) => Some(last),
            None => return Part::Whole,
        },
    };
    if first >= size {
        return Part::Unsatisfiable;
    }
    match last {
        Some(last) if last < first => Part::Whole,
        Some(last) => Part::Range(first, last.min(size - 1)),
        None => Part::Range(first, size - 1),
    }
}

/// The strong validator of a file: files never change, so their id and size do.
fn etag_of(download: &Download) -> String {
    format!("\"f{}-{}\"", download.file_id, download.record.size)
}

/// `Content-Disposition`: `inline` for images, `attachment` for the rest, with
/// the name as plain ASCII and in full (RFC 6266, RFC 8187).
fn disposition(download: &Download) -> String {
    let kind = if download.inline {
        "inline"
    } else {
        "attachment"
    };
    let name = &download.record.name;
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

async fn file_reply(download: Download, headers: &HeaderMap) -> Result<Response, Error> {
    let etag = etag_of(&download);
    let size = download.record.size;
    let header_text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let mut reply = if header_text(header::IF_NONE_MATCH)
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        warp::reply::with_status(warp::reply(), StatusCode::NOT_MODIFIED).into_response()
    } else {
        // A Range under an If-Range that names another version is ignored.
        let range = match header_text(header::IF_RANGE) {
            Some(tag) if tag.trim() != etag => None,
            _ => header_text(header::RANGE),
        };
        match requested_part(range, size) {
            Part::Unsatisfiable => {
                let mut reply =
                    warp::reply::with_status(warp::reply(), StatusCode::RANGE_NOT_SATISFIABLE)
                        .into_response();
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    reply.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                reply
            }
            Part::Whole => body_reply(&download, 0, size, StatusCode::OK).await?,
            Part::Range(first, last) => {
                let mut reply = body_reply(
                    &download,
                    first,
                    last - first + 1,
                    StatusCode::PARTIAL_CONTENT,
                )
                .await?;
                if let Ok(value) = HeaderValue::from_str(&format!("bytes {first}-{last}/{size}")) {
                    reply.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                reply
            }
        }
    };
    let headers = reply.headers_mut();
    let mut set = |name, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(header::ETAG, &etag);
    set(header::ACCEPT_RANGES, "bytes");
    // Every use asks again (a 304 when unchanged), so that leaving the room ends
    // access from this browser's cache too.
    set(header::CACHE_CONTROL, "private, no-cache");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::CONTENT_SECURITY_POLICY, "sandbox");
    set(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(header::CONTENT_DISPOSITION, &disposition(&download));
    set(header::CONTENT_TYPE, &download.record.content_type);
    Ok(reply)
}

/// `length` bytes of the file from `start`, streamed from disk.
async fn body_reply(
    download: &Download,
    start: u64,
    length: u64,
    status: StatusCode,
) -> Result<Response, Error> {
    let path = download.path.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        file.seek(SeekFrom::Start(start))?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|_| Error::Internal)?;
    let file = opened.map_err(|e| {
        tracing::error!(file_id = %download.file_id, error = %e, "cannot open a stored file");
        Error::Internal
    })?;
    let chunks = FileChunks {
        file: tokio::fs::File::from_std(file),
        remaining: length,
        buffer: vec![0; READ_CHUNK.min(length as usize).max(1)],
    };
    let mut reply = warp::reply::stream(chunks).into_response();
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(reply)
}

/// A file's bytes as a stream of pieces, `remaining` of them in all.
struct FileChunks {
    file: tokio::fs::File,
    remaining: u64,
    buffer: Vec<u8>,
}

impl Stream for FileChunks {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = this.buffer.len().min(this.remaining as usize);
        let mut read = ReadBuf::new(&mut this.buffer[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let filled = read.filled();
                if filled.is_empty() {
                    return Poll::Ready(Some(Err(std::io::ErrorKind::UnexpectedEof.into())));
                }
                this.remaining -= filled.len() as u64;
                Poll::Ready(Some(Ok(Bytes::copy_from_slice(filled))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(requested_part(None, 10), Part::Whole);
        assert_eq!(requested_part(Some("bytes=0-4"), 10), Part::Range(0, 4));
        assert_eq!(requested_part(Some("bytes=5-"), 10), Part::Range(5, 9));
        assert_eq!(requested_part(Some("bytes=-3"), 10), Part::Range(7, 9));
        assert_eq!(requested_part(Some("bytes=-30"), 10), Part::Range(0, 9));
        assert_eq!(requested_part(Some("bytes=8-100"), 10), Part::Range(8, 9));
        assert_eq!(requested_part(Some("bytes=10-"), 10), Part::Unsatisfiable);
        assert_eq!(requested_part(Some("bytes=-0"), 10), Part::Unsatisfiable);
        assert_eq!(requested_part(Some("bytes=0-1,3-4"), 10), Part::Whole);
        assert_eq!(requested_part(Some("bytes=5-2"), 10), Part::Whole);
        assert_eq!(requested_part(Some("items=0-1"), 10), Part::Whole);
        assert_eq!(requested_part(Some("bytes=x-1"), 10), Part::Whole);
        assert_eq!(requested_part(Some("bytes=0-"), 0), Part::Unsatisfiable);
    }
}
