//! Accounts over HTTP: register, login, logout, me.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{body, caller, json_reply, no_content, parse_json, with_chat};
use crate::chat::{Caller, Chat};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

pub fn routes(
    chat: Arc<Chat>,
    limit: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    register(chat.clone(), limit)
        .or(login(chat.clone(), limit))
        .unify()
        .or(logout(chat.clone()))
        .unify()
        .or(me(chat))
        .unify()
}

/// POST /api/auth/register {username, password} → 201 {userId, username, token}
fn register(
    chat: Arc<Chat>,
    limit: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "auth" / "register")
        .and(warp::post())
        .and(with_chat(chat))
        .and(body(limit))
        .and_then(|chat: Arc<Chat>, body: Bytes| async move {
            let c: Credentials = parse_json(&body)?;
            let session = chat.register(c.username, c.password).await?;
            Ok::<_, Rejection>(json_reply(StatusCode::CREATED, &session))
        })
}

/// POST /api/auth/login {username, password} → 200 {userId, username, token}
fn login(
    chat: Arc<Chat>,
    limit: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "auth" / "login")
        .and(warp::post())
        .and(with_chat(chat))
        .and(warp::addr::remote())
        .and(body(limit))
        .and_then(
            |chat: Arc<Chat>, addr: Option<SocketAddr>, body: Bytes| async move {
                let c: Credentials = parse_json(&body)?;
                let session = chat
                    .login(&c.username, c.password, addr.map(|a| a.ip()))
                    .await?;
                Ok::<_, Rejection>(json_reply(StatusCode::OK, &session))
            },
        )
}

/// POST /api/auth/logout → 204; the token stops working and its sockets close.
fn logout(chat: Arc<Chat>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
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
fn me(chat: Arc<Chat>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "users" / "me")
        .and(warp::get())
        .and(with_chat(chat.clone()))
        .and(caller(chat))
        .and_then(|chat: Arc<Chat>, caller: Caller| async move {
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &chat.user(caller.user_id)?))
        })
}
