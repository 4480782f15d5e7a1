//! Accounts over HTTP: register, login, logout, me, the user directory.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{
    body, caller, client_ip, json_reply, no_content, parse_json, parse_limit, with_chat, BodyLimits,
};
use crate::chat::{Caller, Chat};
use crate::proxy::TrustedProxies;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

/// POST /api/auth/register {username, password} → 201 {userId, username, token}
pub(super) fn register(
    chat: Arc<Chat>,
    limit: BodyLimits,
    proxies: Arc<TrustedProxies>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "auth" / "register")
        .and(warp::post())
        .and(with_chat(chat))
        .and(client_ip(proxies))
        .and(body(limit))
        .and_then(
            |chat: Arc<Chat>, addr: Option<IpAddr>, body: Bytes| async move {
                let c: Credentials = parse_json(&body)?;
                let session = chat.register(c.username, c.password, addr).await?;
                Ok::<_, Rejection>(json_reply(StatusCode::CREATED, &session))
            },
        )
}

/// POST /api/auth/login {username, password} → 200 {userId, username, token}
pub(super) fn login(
    chat: Arc<Chat>,
    limit: BodyLimits,
    proxies: Arc<TrustedProxies>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "auth" / "login")
        .and(warp::post())
        .and(with_chat(chat))
        .and(client_ip(proxies))
        .and(body(limit))
        .and_then(
            |chat: Arc<Chat>, addr: Option<IpAddr>, body: Bytes| async move {
                let c: Credentials = parse_json(&body)?;
                let session = chat.login(&c.username, c.password, addr).await?;
                Ok::<_, Rejection>(json_reply(StatusCode::OK, &session))
            },
        )
}

/// POST /api/auth/logout → 204; the token stops working and its sockets close.
pub(super) fn logout(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "auth" / "logout")
        .and(warp::post())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and_then(|chat: Arc<Chat>, caller: Caller| async move {
            chat.logout(caller)?;
            Ok::<_, Rejection>(no_content())
        })
}

/// GET /api/users/me → {userId, username}
pub(super) fn me(chat: Arc<Chat>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "users" / "me")
        .and(warp::get())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and_then(|chat: Arc<Chat>, caller: Caller| async move {
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &chat.user(caller.user_id)?))
        })
}

#[derive(Deserialize)]
struct DirectoryQuery {
    q: Option<String>,
    limit: Option<String>,
}

/// GET /api/users?q=TEXT&limit=N → [{userId, username}]: users whose name contains
/// `q` (any case), by name, at most `limit` (default 20, at most 100).
pub(super) fn directory(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "users")
        .and(warp::get())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and(warp::query::<DirectoryQuery>())
        .and_then(
            |chat: Arc<Chat>, _caller: Caller, query: DirectoryQuery| async move {
                let limit = parse_limit(query.limit.as_deref())?;
                let users = chat.find_users(query.q.as_deref().unwrap_or(""), limit)?;
                Ok::<_, Rejection>(json_reply(StatusCode::OK, &users))
            },
        )
}
