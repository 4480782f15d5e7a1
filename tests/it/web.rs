//! The web client's files: served at `/` from the binary, with strong ETags and 304s,
//! gzip chosen by Accept-Encoding, and the security headers on every reply.

use std::io::Read;

use reqwest::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, VARY};
use reqwest::StatusCode;

use crate::harness::Server;

async fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(server.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request")
}

fn header(response: &reqwest::Response, name: reqwest::header::HeaderName) -> &str {
    response
        .headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ascii header")
}

#[tokio::test]
async fn the_client_is_served_at_the_root_with_its_files() {
    let server = Server::start().await;
    let response = get(&server, "/", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, CONTENT_TYPE), "text/html; charset=utf-8");
    let page = response.text().await.expect("text");
    assert!(
        page.contains(r#"<script type="module" src="/js/main.js">"#),
        "{page}"
    );

    for (path, content_type) in [
        ("/js/main.js", "text/javascript; charset=utf-8"),
        ("/app.css", "text/css; charset=utf-8"),
        ("/manifest.webmanifest", "application/manifest+json"),
        ("/sw.js", "text/javascript; charset=utf-8"),
        ("/icon.svg", "image/svg+xml"),
        ("/icon-192.png", "image/png"),
    ] {
        let response = get(&server, path, &[]).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&response, CONTENT_TYPE), content_type, "{path}");
    }

    // Unknown paths stay JSON 404s; the API is untouched.
    let response = get(&server, "/nope.js", &[]).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&response, CONTENT_TYPE), "application/json");
    let response = reqwest::Client::new()
        .post(server.url("/index.html"))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_matching_etag_gets_304_and_a_changed_one_the_file() {
    let server = Server::start().await;
    let first = get(&server, "/js/app.js", &[]).await;
    let etag = header(&first, ETAG).to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
        "a strong ETag from a hash: {etag}"
    );
    assert_eq!(header(&first, CACHE_CONTROL), "no-cache");
    let body = first.bytes().await.expect("body");
    assert!(!body.is_empty());

    let again = get(&server, "/js/app.js", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&again, ETAG), etag);
    assert!(again.bytes().await.expect("body").is_empty());

    let listed = format!("\"other\", {etag}");
    let again = get(&server, "/js/app.js", &[("if-none-match", &listed)]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    let stale = get(&server, "/js/app.js", &[("if-none-match", "\"0123\"")]).await;
    assert_eq!(stale.status(), StatusCode::OK);
    assert_eq!(stale.bytes().await.expect("body"), body);

    // Another file has another tag.
    let other = get(&server, "/js/dom.js", &[]).await;
    assert_ne!(header(&other, ETAG), etag);
    // `/` is index.html.
    let root = get(&server, "/", &[]).await;
    let index = get(&server, "/index.html", &[]).await;
    assert_eq!(header(&root, ETAG), header(&index, ETAG));
}

#[tokio::test]
async fn gzip_follows_accept_encoding_with_its_own_etag() {
    let server = Server::start().await;
    let plain = get(&server, "/app.css", &[]).await;
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    assert_eq!(header(&plain, VARY), "Accept-Encoding");
    let plain_etag = header(&plain, ETAG).to_owned();
    let plain_body = plain.bytes().await.expect("body");

    let zipped = get(
        &server,
        "/app.css",
        &[("accept-encoding", "gzip, deflate, br")],
    )
    .await;
    assert_eq!(header(&zipped, CONTENT_ENCODING), "gzip");
    assert_eq!(header(&zipped, VARY), "Accept-Encoding");
    assert_eq!(header(&zipped, CONTENT_TYPE), "text/css; charset=utf-8");
    let zipped_etag = header(&zipped, ETAG).to_owned();
    assert_ne!(
        zipped_etag, plain_etag,
        "each representation has its own tag"
    );
    let zipped_body = zipped.bytes().await.expect("body");
    assert!(zipped_body.len() < plain_body.len());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&zipped_body[..])
        .read_to_end(&mut unzipped)
        .expect("valid gzip");
    assert_eq!(unzipped, plain_body);

    // The same bytes every time: compressed once, not per request.
    let again = get(&server, "/app.css", &[("accept-encoding", "gzip")]).await;
    assert_eq!(header(&again, ETAG), zipped_etag);
    assert_eq!(again.bytes().await.expect("body"), zipped_body);

    let refused = get(&server, "/app.css", &[("accept-encoding", "gzip;q=0, br")]).await;
    assert!(refused.headers().get(CONTENT_ENCODING).is_none());

    let revalidated = get(
        &server,
        "/app.css",
        &[("accept-encoding", "gzip"), ("if-none-match", &zipped_etag)],
    )
    .await;
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&revalidated, VARY), "Accept-Encoding");
}

#[tokio::test]
async fn every_file_carries_the_security_headers() {
    let server = Server::start().await;
    for path in ["/", "/js/main.js", "/icon.svg"] {
        let response = get(&server, path, &[]).await;
        let csp = header(&response, "content-security-policy".parse().expect("name"));
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp} lacks {directive}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(!csp.contains("unsafe-eval"), "{csp}");
        assert!(!csp.contains('*'), "no wildcard origin: {csp}");
        assert_eq!(
            header(&response, "x-frame-options".parse().expect("name")),
            "DENY"
        );
        assert_eq!(
            header(&response, "x-content-type-options".parse().expect("name")),
            "nosniff"
        );
        assert_eq!(
            header(&response, "referrer-policy".parse().expect("name")),
            "no-referrer"
        );
    }
}

#[tokio::test]
async fn the_page_has_no_inline_script() {
    let server = Server::start().await;
    let page = get(&server, "/", &[]).await.text().await.expect("text");
    for (i, _) in page.match_indices("<script") {
        let tag = &page[i..page[i..].find('>').map_or(page.len(), |end| i + end)];
        assert!(tag.contains("src=\"/"), "inline script: {tag}");
    }
    let handler = page.split(" on").skip(1).find(|rest| {
        let name_len = rest.chars().take_while(char::is_ascii_lowercase).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    });
    assert!(handler.is_none(), "an inline event handler: on{handler:?}");
}
