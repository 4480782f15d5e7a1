//! Roles, moderation, invitations, settings, blocking and direct rooms: one test per
//! rule, against the real server.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{assert_error, Client, Server};

/// A room with an owner, two admins, two members, and two outsiders.
struct Cast {
    owner: Client,
    admin: Client,
    admin2: Client,
    member: Client,
    member2: Client,
    outsider: Client,
    outsider2: Client,
}

async fn cast(server: &Server) -> Cast {
    Cast {
        owner: server.register("owner").await,
        admin: server.register("admin").await,
        admin2: server.register("admin2").await,
        member: server.register("member").await,
        member2: server.register("member2").await,
        outsider: server.register("outsider").await,
        outsider2: server.register("outsider2").await,
    }
}

impl Cast {
    /// A new public room with everyone but the outsiders in their roles.
    async fn room(&self) -> u64 {
        let room = self.owner.create_room("public", "team", None).await;
        for c in [&self.admin, &self.admin2, &self.member, &self.member2] {
            assert_eq!(c.join(room, None).await.0, StatusCode::OK);
        }
        for a in [&self.admin, &self.admin2] {
            let reply = self
                .owner
                .put(
                    &format!("/api/chatrooms/{room}/admins/{}", a.user_id),
                    json!({}),
                )
                .await;
            assert_eq!(reply.0, StatusCode::NO_CONTENT, "{}", reply.1);
        }
        room
    }
}

async fn act(actor: &Client, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
    match method {
        "POST" => actor.post(path, body).await,
        "PUT" => actor.put(path, body).await,
        "DELETE" => actor.delete(path).await,
        "PATCH" => {
            crate::harness::send(
                actor
                    .http
                    .patch(actor.url(path))
                    .bearer_auth(&actor.token)
                    .json(&body),
            )
            .await
        }
        _ => unreachable!("{method}"),
    }
}

#[tokio::test]
async fn each_role_may_take_exactly_its_actions() {
    let server = Server::start().await;
    let c = cast(&server).await;
    let ok = StatusCode::NO_CONTENT;
    let forbidden = StatusCode::FORBIDDEN;
    // (action, method, path suffix, body)
    let targeted = [
        ("kick", "POST", "kick", json!({})),
        ("ban", "POST", "ban", json!({"minutes": 5})),
        ("mute", "POST", "mute", json!({"minutes": 5})),
        ("name admin", "PUT", "admins", json!({})),
        ("hand over", "PUT", "owner", json!({})),
    ];
    // (actor, target, expected status per action above)
    let cases: [(&Client, &Client, [StatusCode; 5]); 9] = [
        (&c.owner, &c.member, [ok, ok, ok, ok, ok]),
        (&c.owner, &c.admin2, [ok, ok, ok, ok, ok]),
        (&c.owner, &c.owner, [StatusCode::CONFLICT; 5]),
        (&c.admin, &c.member, [ok, ok, ok, forbidden, forbidden]),
        (&c.admin, &c.admin2, [forbidden; 5]),
        (&c.admin, &c.owner, [forbidden; 5]),
        (&c.member, &c.member2, [forbidden; 5]),
        (&c.member, &c.owner, [forbidden; 5]),
        (&c.outsider, &c.member, [forbidden; 5]),
    ];
    for (actor, target, expected) in &cases {
        for ((name, method, suffix, body), status) in targeted.iter().zip(expected) {
            let room = c.room().await;
            let path = format!("/api/chatrooms/{room}/{suffix}/{}", target.user_id);
            let reply = act(actor, method, &path, body.clone()).await;
            assert_eq!(
                reply.0, *status,
                "user {} doing {name} to user {}: {}",
                actor.user_id, target.user_id, reply.1
            );
        }
    }
    // Invitations: owner and admins; settings: the owner alone.
    for (actor, invite, settings) in [
        (&c.owner, ok, StatusCode::OK),
        (&c.admin, ok, forbidden),
        (&c.member, forbidden, forbidden),
        (&c.outsider, forbidden, forbidden),
    ] {
        let room = c.room().await;
        let reply = actor
            .post(
                &format!("/api/chatrooms/{room}/invite/{}", c.outsider2.user_id),
                json!({}),
            )
            .await;
        assert_eq!(reply.0, invite, "invite by {}: {}", actor.user_id, reply.1);
        let reply = act(
            actor,
            "PATCH",
            &format!("/api/chatrooms/{room}"),
            json!({"chatName": "renamed"}),
        )
        .await;
        assert_eq!(
            reply.0, settings,
            "settings by {}: {}",
            actor.user_id, reply.1
        );
    }
    // Unknown users and rooms.
    let room = c.room().await;
    assert_error(
        &c.owner
            .post(&format!("/api/chatrooms/{room}/kick/9999"), json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    );
    assert_error(
        &c.owner
            .post(
                &format!("/api/chatrooms/9999/kick/{}", c.member.user_id),
                json!({}),
            )
            .await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
    assert_error(
        &c.owner
            .post(
                &format!("/api/chatrooms/{room}/kick/{}", c.outsider.user_id),
                json!({}),
            )
            .await,
        StatusCode::CONFLICT,
        "not_a_member",
    );
}

#[tokio::test]
async fn a_kicked_member_leaves_now_and_may_rejoin() {
    let server = Server::start().await;
    let c = cast(&server).await;
    let room = c.room().await;
    let (mut member_ws, _) = c.member.connect().await;
    let (mut owner_ws, _) = c.owner.connect().await;
    let (mut outsider_ws, _) = c.outsider.connect().await;
    c.admin
        .post(
            &format!("/api/chatrooms/{room}/kick/{}", c.member.user_id),
            json!({}),
        )
        .await;
    for ws in [&mut member_ws, &mut owner_ws] {
        let leave = ws.expect("user leave").await;
        assert_eq!(leave["userId"], c.member.user_id);
        assert_eq!(leave["reason"], "kick");
        assert_eq!(leave["byUserId"], c.admin.user_id);
    }
    outsider_ws.expect_silence().await;
    assert_error(
        &c.member
            .get(&format!("/api/chatrooms/message/{room}/-1/10"))
            .await,
        StatusCode::FORBIDDEN,
        "not_a_member",
    );
    assert_eq!(
        c.member.join(room, None).await.0,
        StatusCode::OK,
        "a kick is not a ban"
    );
}

#[tokio::test]
async fn a_ban_runs_out_and_lets_the_user_back() {
    let server = Server::start().await;
    let c = cast(&server).await;
    let room = c.room().await;
    let (mut member_ws, _) = c.member.connect().await;
    let (mut owner_ws, _) = c.owner.connect().await;

    // 0.02 minutes: 1.2 seconds.
    let reply = c
        .admin
        .post(
            &format!("/api/chatrooms/{room}/ban/{}", c.member.user_id),
            json!({"minutes": 0.02}),
        )
        .await;
    assert_eq!(reply.0, StatusCode::NO_CONTENT, "{}", reply.1);
    for ws in [&mut member_ws, &mut owner_ws] {
        let ban = ws.expect("user ban").await;
        assert_eq!(ban["userId"], c.member.user_id);
        assert_eq!(ban["byUserId"], c.admin.user_id);
        assert!(ban["until"].as_str().is_some());
        let leave = ws.expect("user leave").await;
        assert_eq!(leave["reason"], "ban");
    }
    let refused = c.member.join(room, None).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "banned");
    assert!(refused.1["message"]
        .as_str()
        .is_some_and(|m| m.contains("until")));
    // Invitations do not get around a ban.
    assert_error(
        &c.owner
            .post(
                &format!("/api/chatrooms/{room}/invite/{}", c.member.user_id),
                json!({}),
            )
            .await,
        StatusCode::CONFLICT,
        "banned",
    );

    // The end of the ban is checked when it is used, not when the job runs...
    tokio::time::sleep(Duration::from_millis(1400)).await;
    assert_eq!(c.member.join(room, None).await.0, StatusCode::OK);
    // ...and the job tells the room that it ran out.
    let unban = owner_ws.expect_skipping("user unban", &["join room"]).await;
    assert_eq!(unban["userId"], c.member.user_id);
    assert_eq!(unban["byUserId"], Value::Null);
}

#[tokio::test]
async fn a_ban_for_ever_lasts_until_lifted() {
    let server = Server::start().await;
    let c = cast(&server).await;
    let room = c.room().await;
    // Users who are not members can be banned too.
    let ban_path = format!("/api/chatrooms/{room}/ban/{}", c.outsider.user_id);
    assert_eq!(
        c.owner.post(&ban_path, json!({})).await.0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &c.outsider.join(room, None).await,
        StatusCode::FORBIDDEN,
        "banned",
    );
    assert_error(
        &c.owner.post(&ban_path, json!({"minutes": -1})).await,
        StatusCode::BAD_REQUEST,
        "invalid_minutes",
    );
    let (mut outsider_ws, _) = c.outsider.connect().await;
    assert_eq!(c.admin.delete(&ban_path).await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        outsider_ws.expect("user unban").await["byUserId"],
        c.admin.user_id
    );
    assert_error(
        &c.admin.delete(&ban_path).await,
        StatusCode::CONFLICT,
        "not_banned",
    );
    assert_eq!(c.outsider.join(room, None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_mute_stops_sending_until_it_runs_out() {
    let server = Server::start().await;
    let c = cast(&server).await;
    let room = c.room().await;
    let (mut member_ws, _) = c.member.connect().await;
    let mute_path = format!("/api/chatrooms/{room}/mute/{}", c.member.user_id);
    assert_error(
        &c.admin.post(&mute_path, json!({})).await,
        StatusCode::BAD_REQUEST,
        "invalid_minutes",
    );
    assert_eq!(
        c.admin.post(&mute_path, json!({"minutes": 0.02})).await.0,
        StatusCode::NO_CONTENT
    );
    let mute = member_ws.expect("user mute").await;
    assert_eq!(mute["userId"], c.member.user_id);
    let until = mute["until"].as_str().expect("until").to_owned();

    member_ws.chat(room, "can you hear me").await;
    let error = member_ws.expect("error").await;
    assert_eq!(error["error"], "muted");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains(&until)),
        "{error}"
    );
    assert_error(
        &c.member
            .post(
                &format!("/api/chatrooms/{room}/messages"),
                json!({"content": "hello?"}),
            )
            .await,
        StatusCode::FORBIDDEN,
        "muted",
    );
    tokio::time::sleep(Duration::from_millis(1400)).await;
    member_ws.chat(room, "back").await;
    // The message goes through, and the job announces the end of the mute: in
    // whichever order the job's tick puts them.
    let (mut chat, mut unmute) = (None, None);
    while chat.is_none() || unmute.is_none() {
        match member_ws.next_event().await {
            (name, data) if name == "chat" => chat = Some(data),
            (name, data) if name == "user unmute" => unmute = Some(data),
            (name, data) => panic!("unexpected {name}: {data}"),
        }
    }
    assert_eq!(chat.expect("chat")["content"], "back");
    assert_eq!(unmute.expect("unmute")["byUserId"], Value::Null);

    // Lifted by hand.
    assert_eq!(
        c.owner.post(&mute_path, json!({"minutes": 60})).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.owner.delete(&mute_path).await.0, StatusCode::NO_CONTENT);
    assert_error(
        &c.owner.delete(&mute_path).await,
        StatusCode::CONFLICT,
        "not_muted",
    );
    assert_eq!(c.member.say(room, "free").await, 2);
}

#[tokio::test]
async fn private_rooms_are_invisible_until_an_invitation() {
    let server = Server::start().await;
    let c = cast(&server).await;
    let room = c.owner.create_room("private", "secret plans", None).await;
    c.owner
        .put(
            &format!("/api/chatrooms/{room}/admins/{}", c.admin.user_id),
            json!({}),
        )
        .await;
    let listed = |rooms: &Value| {
        rooms
            .as_array()
            .expect("array")
            .iter()
            .any(|r| r["chatSeq"] == room)
    };
    assert!(!listed(&c.outsider.get("/api/chatrooms").await.1));
    assert_error(
        &c.outsider.join(room, None).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
    assert_error(
        &c.outsider
            .get(&format!("/api/chatrooms/{room}/members"))
            .await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );

    // The owner invites the admin (who then must join), the admin invites an outsider.
    assert_eq!(c.admin.join(room, None).await.0, StatusCode::NOT_FOUND);
    c.owner
        .post(
            &format!("/api/chatrooms/{room}/invite/{}", c.admin.user_id),
            json!({}),
        )
        .await;
    assert_eq!(c.admin.join(room, None).await.0, StatusCode::OK);
    c.owner
        .put(
            &format!("/api/chatrooms/{room}/admins/{}", c.admin.user_id),
            json!({}),
        )
        .await;
    let (mut outsider_ws, _) = c.outsider.connect().await;
    let (mut outsider2_ws, _) = c.outsider2.connect().await;
    let reply = c
        .admin
        .post(
            &format!("/api/chatrooms/{room}/invite/{}", c.outsider.user_id),
            json!({}),
        )
        .await;
    assert_eq!(reply.0, StatusCode::NO_CONTENT, "{}", reply.1);
    let invite = outsider_ws.expect("invite").await;
    assert_eq!(invite["chatSeq"], room);
    assert_eq!(invite["room"]["chatName"], "secret plans");
    assert_eq!(invite["byUserId"], c.admin.user_id);
    outsider2_ws.expect_silence().await;
    assert!(
        listed(&c.outsider.get("/api/chatrooms").await.1),
        "an invited user sees the room"
    );
    assert!(!listed(&c.outsider2.get("/api/chatrooms").await.1));
    assert_eq!(c.outsider.join(room, None).await.0, StatusCode::OK);
    assert_error(
        &c.admin
            .post(
                &format!("/api/chatrooms/{room}/invite/{}", c.outsider.user_id),
                json!({}),
            )
            .await,
        StatusCode::CONFLICT,
        "already_member",
    );
}

#[tokio::test]
async fn the_owner_changes_name_type_and_password() {
    let server = Server::start().await;
    let c = cast(&server).await;
    let room = c.room().await;
    let path = format!("/api/chatrooms/{room}");
    let (mut outsider_ws, _) = c.outsider.connect().await;

    let reply = act(&c.owner, "PATCH", &path, json!({"chatName": "renamed"})).await;
    assert_eq!(reply.0, StatusCode::OK, "{}", reply.1);
    assert_eq!(reply.1["chatName"], "renamed");
    let update = outsider_ws.expect("room update").await;
    assert_eq!(update["room"]["chatName"], "renamed");
    assert_eq!(update["byUserId"], c.owner.user_id);

    // Protected: the password is needed from now on.
    assert_error(
        &act(&c.owner, "PATCH", &path, json!({"chatType": "protected"})).await,
        StatusCode::BAD_REQUEST,
        "password_required",
    );
    let reply = act(
        &c.owner,
        "PATCH",
        &path,
        json!({"chatType": "protected", "password": "open sesame"}),
    )
    .await;
    assert_eq!(reply.1["chatType"], "protected");
    assert_error(
        &c.outsider.join(room, Some("nope")).await,
        StatusCode::FORBIDDEN,
        "wrong_password",
    );
    act(&c.owner, "PATCH", &path, json!({"password": "new secret!"})).await;
    assert_error(
        &c.outsider.join(room, Some("open sesame")).await,
        StatusCode::FORBIDDEN,
        "wrong_password",
    );
    // Removing the password opens the room.
    let reply = act(&c.owner, "PATCH", &path, json!({"password": null})).await;
    assert_eq!(reply.1["chatType"], "public");
    assert_eq!(c.outsider.join(room, None).await.0, StatusCode::OK);
    c.outsider
        .delete(&format!("/api/chatrooms/leave/{room}"))
        .await;
    // Private: gone from outsiders' lists.
    act(&c.owner, "PATCH", &path, json!({"chatType": "private"})).await;
    assert_error(
        &c.outsider2.join(room, None).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );

    assert_error(
        &act(&c.owner, "PATCH", &path, json!({"password": "a password"})).await,
        StatusCode::BAD_REQUEST,
        "unexpected_password",
    );
    assert_error(
        &act(&c.owner, "PATCH", &path, json!({})).await,
        StatusCode::BAD_REQUEST,
        "nothing_to_change",
    );
    assert_error(
        &act(&c.owner, "PATCH", &path, json!({"chatType": "weird"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
}

#[tokio::test]
async fn admin_roles_and_ownership_move_with_events() {
    let server = Server::start().await;
    let c = cast(&server).await;
    let room = c.room().await;
    let (mut member2_ws, _) = c.member2.connect().await;
    let admins = format!("/api/chatrooms/{room}/admins/{}", c.member.user_id);

    assert_eq!(
        c.owner.put(&admins, json!({})).await.0,
        StatusCode::NO_CONTENT
    );
    let role = member2_ws.expect("role change").await;
    assert_eq!(
        (role["userId"].clone(), role["role"].clone()),
        (json!(c.member.user_id), json!("admin"))
    );
    assert_eq!(role["byUserId"], c.owner.user_id);
    assert_eq!(c.owner.delete(&admins).await.0, StatusCode::NO_CONTENT);
    assert_eq!(member2_ws.expect("role change").await["role"], "member");

    let owner_path = format!("/api/chatrooms/{room}/owner/{}", c.member.user_id);
    assert_eq!(
        c.owner.put(&owner_path, json!({})).await.0,
        StatusCode::NO_CONTENT
    );
    let first = member2_ws.expect("role change").await;
    let second = member2_ws.expect("role change").await;
    assert_eq!(
        (first["userId"].clone(), first["role"].clone()),
        (json!(c.member.user_id), json!("owner"))
    );
    assert_eq!(
        (second["userId"].clone(), second["role"].clone()),
        (json!(c.owner.user_id), json!("admin"))
    );
    // The old owner is an admin now: no more settings.
    assert_eq!(
        act(
            &c.owner,
            "PATCH",
            &format!("/api/chatrooms/{room}"),
            json!({"chatName": "x"})
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        act(
            &c.member,
            "PATCH",
            &format!("/api/chatrooms/{room}"),
            json!({"chatName": "x"})
        )
        .await
        .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_leaving_owner_hands_over_to_the_oldest_admin() {
    let server = Server::start().await;
    let c = cast(&server).await;
    let room = c.room().await;
    // member joined before admin2 was named, but admins come first.
    c.owner
        .delete(&format!("/api/chatrooms/leave/{room}"))
        .await;
    let (_, members) = c
        .member
        .get(&format!("/api/chatrooms/{room}/members"))
        .await;
    let owner = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["role"] == "owner")
        .cloned();
    assert_eq!(owner.expect("an owner")["userId"], c.admin.user_id);
}

#[tokio::test]
async fn members_list_shows_mutes_and_bans_to_staff_only() {
    let server = Server::start().await;
    let c = cast(&server).await;
    let room = c.room().await;
    c.admin
        .post(
            &format!("/api/chatrooms/{room}/mute/{}", c.member.user_id),
            json!({"minutes": 10}),
        )
        .await;
    c.admin
        .post(
            &format!("/api/chatrooms/{room}/ban/{}", c.outsider.user_id),
            json!({}),
        )
        .await;

    let (status, staff_view) = c.admin.get(&format!("/api/chatrooms/{room}/members")).await;
    assert_eq!(status, StatusCode::OK);
    let members = staff_view["members"].as_array().expect("members");
    assert_eq!(members.len(), 5);
    let muted = members
        .iter()
        .find(|m| m["userId"] == c.member.user_id)
        .expect("member");
    assert!(muted["mutedUntil"].as_str().is_some());
    assert_eq!(staff_view["bans"][0]["userId"], c.outsider.user_id);
    assert_eq!(staff_view["bans"][0]["until"], Value::Null);

    let (_, member_view) = c
        .member2
        .get(&format!("/api/chatrooms/{room}/members"))
        .await;
    assert!(member_view.get("bans").is_none());
    assert!(member_view["members"][0].get("mutedUntil").is_none());
    assert_eq!(member_view["members"][0]["role"], "owner");
    assert_error(
        &c.outsider2
            .get(&format!("/api/chatrooms/{room}/members"))
            .await,
        StatusCode::FORBIDDEN,
        "not_a_member",
    );
}

#[tokio::test]
async fn a_blocked_users_messages_do_not_reach_the_blocker() {
    let server = Server::start().await;
    let c = cast(&server).await;
    let room = c.room().await;
    let (blocker, blocked, bystander) = (&c.member, &c.member2, &c.admin);
    assert_eq!(
        blocker
            .put(&format!("/api/users/blocks/{}", blocked.user_id), json!({}))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        blocker.get("/api/users/blocks").await.1,
        json!([{"userId": blocked.user_id, "username": "member2"}])
    );
    assert_error(
        &blocker
            .put(&format!("/api/users/blocks/{}", blocker.user_id), json!({}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_target",
    );

    let (mut blocker_ws, _) = blocker.connect().await;
    let (mut bystander_ws, _) = bystander.connect().await;
    blocked.say(room, "from the blocked one").await;
    assert_eq!(
        bystander_ws.expect("chat").await["content"],
        "from the blocked one"
    );
    blocker_ws.expect_silence().await;
    bystander.say(room, "from a bystander").await;
    assert_eq!(
        blocker_ws.expect("chat").await["content"],
        "from a bystander"
    );

    let contents = |page: Vec<Value>| {
        page.iter()
            .map(|m| m["content"].as_str().expect("c").to_owned())
            .collect::<Vec<_>>()
    };
    // Pages stay full: the blocked messages are skipped, older ones fill in.
    for n in 0..5 {
        blocked.say(room, &format!("blocked {n}")).await;
    }
    assert_eq!(
        contents(blocker.history(room, -1, 1).await),
        ["from a bystander"]
    );
    assert_eq!(contents(bystander.history(room, -1, 100).await).len(), 7);
    assert_eq!(
        contents(blocker.history(room, -1, 100).await),
        ["from a bystander"]
    );

    assert_eq!(
        blocker
            .delete(&format!("/api/users/blocks/{}", blocked.user_id))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(contents(blocker.history(room, -1, 100).await).len(), 7);
}

#[tokio::test]
async fn a_blocked_user_cannot_open_or_write_a_direct_room_with_the_blocker() {
    let server = Server::start().await;
    let c = cast(&server).await;
    let (alice, bob) = (&c.member, &c.member2);
    let direct = alice
        .post(
            "/api/chatrooms/new",
            json!({"isDirected": true, "targetUserId": bob.user_id}),
        )
        .await;
    let room = direct.1["chatSeq"].as_u64().expect("room");
    alice
        .put(&format!("/api/users/blocks/{}", bob.user_id), json!({}))
        .await;
    assert_error(
        &bob.post(
            &format!("/api/chatrooms/{room}/messages"),
            json!({"content": "hi"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "blocked",
    );
    assert_error(
        &bob.post(
            "/api/chatrooms/new",
            json!({"isDirected": true, "targetUserId": alice.user_id}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "blocked",
    );
    // The blocker may still write.
    assert_eq!(alice.say(room, "one way").await, 1);
}

#[tokio::test]
async fn direct_rooms_have_no_moderation_and_leaving_hides_them() {
    let server = Server::start().await;
    let c = cast(&server).await;
    let (alice, bob) = (&c.member, &c.member2);
    let room = alice
        .post(
            "/api/chatrooms/new",
            json!({"isDirected": true, "targetUserId": bob.user_id}),
        )
        .await
        .1["chatSeq"]
        .as_u64()
        .expect("room");
    for action in ["kick", "ban", "mute", "invite"] {
        let target = if action == "invite" {
            c.outsider.user_id
        } else {
            bob.user_id
        };
        assert_error(
            &alice
                .post(
                    &format!("/api/chatrooms/{room}/{action}/{target}"),
                    json!({"minutes": 1}),
                )
                .await,
            StatusCode::CONFLICT,
            "direct_room",
        );
    }
    let listed = |rooms: &Value| {
        rooms
            .as_array()
            .expect("array")
            .iter()
            .any(|r| r["chatSeq"] == room)
    };
    let (mut bob_ws, _) = bob.connect().await;
    assert_eq!(
        alice
            .delete(&format!("/api/chatrooms/leave/{room}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    bob_ws.expect_silence().await;
    assert!(
        !listed(&alice.get("/api/chatrooms/mine").await.1),
        "hidden for the one who left"
    );
    assert!(
        listed(&bob.get("/api/chatrooms/mine").await.1),
        "still there for the other"
    );
    // A new message shows it again, with its history.
    bob.say(room, "are you there?").await;
    assert!(listed(&alice.get("/api/chatrooms/mine").await.1));
    assert_eq!(alice.history(room, -1, 10).await.len(), 1);
}
