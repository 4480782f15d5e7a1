//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the REST API,
//! `docs/openapi.json`, compiled into the binary.

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// The document, as kept in the repository.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// GET /api/openapi.json → 200 the document.
pub fn document() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "openapi.json")
        .and(warp::get())
        .map(|| {
            let mut reply = warp::reply::with_status(DOCUMENT, StatusCode::OK).into_response();
            reply.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            reply
        })
}
