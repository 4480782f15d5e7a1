//! The web client: the files of `web/`, compiled into the binary and served at `/`.
//!
//! Each file is hashed and gzipped once, when the routes are built; a request only
//! picks the representation (gzip when `Accept-Encoding` allows it) and answers 304
//! when `If-None-Match` names its strong `ETag`. Every reply carries the security
//! headers (a Content-Security-Policy that allows this origin only and no inline
//! script, no framing, no sniffing, no referrer) and `Cache-Control: no-cache`: the
//! browser and the service worker revalidate on every load, which costs a 304, so a
//! new version of the client is never stuck behind an old one.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use blake2::digest::consts::U16;
use blake2::{Blake2b, Digest};
use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use warp::filters::path::FullPath;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

/// The one label of every static file in logs and metrics (see [`route_label`]).
pub const ROUTE_LABEL: &str = "GET (web client)";

/// The policy of every page: scripts, styles, images, the manifest, the service worker
/// and the WebSocket from this origin only; nothing inline; no plugins; no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; manifest-src 'self'; \
    worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// Revalidate on every use: file names carry no version, so a cached copy may only
/// be used once the server has confirmed (304) that it is current.
const CACHE_CONTROL: &str = "no-cache";

/// A file of `web/`, as (URL path, bytes). `/` is `index.html`.
macro_rules! web_file {
    ($name:literal) => {
        (
            concat!("/", $name),
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $name)).as_slice(),
        )
    };
}

/// Every file the client is made of. A unit test checks this against `web/`.
const FILES: &[(&str, &[u8])] = &[
    web_file!("index.html"),
    web_file!("app.css"),
    web_file!("sw.js"),
    web_file!("manifest.webmanifest"),
    web_file!("icon.svg"),
    web_file!("icon-192.png"),
    web_file!("icon-512.png"),
    web_file!("js/main.js"),
    web_file!("js/app.js"),
    web_file!("js/api.js"),
    web_file!("js/socket.js"),
    web_file!("js/db.js"),
    web_file!("js/dom.js"),
    web_file!("js/state.js"),
    web_file!("js/outbox.js"),
    web_file!("js/format.js"),
    web_file!("js/notify.js"),
    web_file!("js/views/login.js"),
    web_file!("js/views/sidebar.js"),
    web_file!("js/views/room.js"),
    web_file!("js/views/members.js"),
    web_file!("js/views/dialogs.js"),
];

/// One file, ready to answer with.
struct Asset {
    content_type: &'static str,
    body: Bytes,
    etag: HeaderValue,
    /// The gzipped body and its own ETag (another representation, another tag);
    /// `None` when gzip would not make the file smaller.
    gzip: Option<(Bytes, HeaderValue)>,
}

/// Every file by its URL path, built once.
struct Assets {
    by_path: HashMap<&'static str, Asset>,
}

impl Assets {
    fn build() -> Self {
        let by_path = FILES
            .iter()
            .map(|&(path, bytes)| (path, Asset::new(path, bytes)))
            .collect();
        Self { by_path }
    }

    fn get(&self, path: &str) -> Option<&Asset> {
        let path = if path == "/" { "/index.html" } else { path };
        self.by_path.get(path)
    }
}

impl Asset {
    fn new(path: &str, bytes: &'static [u8]) -> Self {
        let hash = hex(&Blake2b::<U16>::digest(bytes));
        let etag = |suffix: &str| {
            HeaderValue::from_str(&format!("\"{hash}{suffix}\"")).expect("hex is a valid header")
        };
        let gzip = gzip(bytes)
            .filter(|gz| gz.len() < bytes.len())
            .map(|gz| (Bytes::from(gz), etag("-gz")));
        Self {
            content_type: content_type(path),
            body: Bytes::from_static(bytes),
            etag: etag(""),
            gzip,
        }
    }

    /// The reply to a GET or HEAD with these request headers.
    fn reply(&self, request: &HeaderMap) -> Response {
        let (body, etag, gzipped) = match &self.gzip {
            Some((body, etag)) if accepts_gzip(request) => (body.clone(), etag, true),
            _ => (self.body.clone(), &self.etag, false),
        };
        let not_modified = if_none_match(request, etag);
        let mut response = if not_modified {
            let mut response = Response::new(Bytes::new().into());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        } else {
            Response::new(body.into())
        };
        let headers = response.headers_mut();
        headers.insert(header::ETAG, etag.clone());
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        );
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if !not_modified {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            );
            if gzipped {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
        }
        security_headers(headers);
        response
    }
}

fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map_or("", |(_, ext)| ext) {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

/// Whether `Accept-Encoding` allows gzip: listed (or `*`) without `q=0`.
fn accepts_gzip(request: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in request.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if coding.eq_ignore_ascii_case("gzip") {
                gzip = Some(!q_zero);
            } else if coding == "*" {
                any = Some(!q_zero);
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak tags compare by their value,
/// as RFC 9110 says for this header.
fn if_none_match(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// The route label of a request path when it is one of the client's files: all of
/// them share one, so that logs and metrics keep few label values.
pub fn route_label(path: &str) -> Option<&'static str> {
    (path == "/" || FILES.iter().any(|(p, _)| *p == path)).then_some(ROUTE_LABEL)
}

/// GET (or HEAD) `/` and every file of the client. Other paths are not found here;
/// another method on a file's path is 405.
pub fn routes() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let assets = Arc::new(Assets::build());
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and_then(move |method: Method, path: FullPath, headers: HeaderMap| {
            let assets = Arc::clone(&assets);
            async move {
                let Some(asset) = assets.get(path.as_str()) else {
                    return Err(warp::reject::not_found());
                };
                if method != Method::GET && method != Method::HEAD {
                    return Ok(super::error_reply(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method_not_allowed",
                        "the web client's files take GET and HEAD",
                    ));
                }
                Ok(asset.reply(&headers))
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).expect("value"));
        }
        map
    }

    #[test]
    fn every_file_of_web_is_served() {
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read web/") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else {
                    let relative = path.strip_prefix(root).expect("under web/");
                    out.push(format!("/{}", relative.to_string_lossy()));
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut on_disk = Vec::new();
        walk(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut served: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
        served.sort();
        assert_eq!(on_disk, served, "web/ and FILES differ");
    }

    #[test]
    fn the_service_worker_caches_every_file() {
        let worker = FILES
            .iter()
            .find(|(path, _)| *path == "/sw.js")
            .map(|(_, bytes)| String::from_utf8_lossy(bytes))
            .expect("sw.js");
        for (path, _) in FILES.iter().filter(|(path, _)| *path != "/sw.js") {
            assert!(
                worker.contains(&format!("'{path}'")),
                "sw.js does not cache {path}"
            );
        }
    }

    #[test]
    fn gzip_is_chosen_by_accept_encoding() {
        let yes = [
            "gzip",
            "gzip, deflate, br",
            "br;q=1.0, gzip;q=0.8",
            "*",
            "GZIP",
        ];
        for value in yes {
            assert!(
                accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, value)])),
                "{value}"
            );
        }
        let no = ["", "br", "gzip;q=0", "identity", "*;q=0", "gzip;q=0, *"];
        for value in no {
            assert!(
                !accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, value)])),
                "{value}"
            );
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn if_none_match_compares_tags() {
        let etag = HeaderValue::from_static("\"abc\"");
        let matches =
            |value: &str| if_none_match(&headers(&[(header::IF_NONE_MATCH, value)]), &etag);
        assert!(matches("\"abc\""));
        assert!(matches("\"x\", \"abc\""));
        assert!(matches("W/\"abc\""));
        assert!(matches("*"));
        assert!(!matches("\"abcd\""));
        assert!(!matches("abc"));
        assert!(!if_none_match(&HeaderMap::new(), &etag));
    }

    #[test]
    fn labels_are_one_for_all_files() {
        assert_eq!(route_label("/"), Some(ROUTE_LABEL));
        assert_eq!(route_label("/js/app.js"), Some(ROUTE_LABEL));
        assert_eq!(route_label("/nope.js"), None);
        assert_eq!(route_label("/api/chatrooms"), None);
    }
}
