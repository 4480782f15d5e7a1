//! daehwa's REST API, as much as the benches need to set up users and rooms.

use std::net::SocketAddr;

use serde::Deserialize;
use serde_json::json;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A password long enough for the server's rule.
const PASSWORD: &str = "bench-password";

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// A registered user.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub token: String,
    pub user_id: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    chat_seq: u64,
}

async fn checked(response: reqwest::Response) -> Result<reqwest::Response, BoxError> {
    let status = response.status();
    if status.is_success() {
        Ok(response)
    } else {
        let body = response.text().await.unwrap_or_default();
        Err(format!("HTTP {status}: {body}").into())
    }
}

impl Api {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            // Under the server's keep-alive timeout (server.header_read_timeout, 10 s),
            // so that the pool does not reuse a connection the server is closing.
            http: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            base: format!("http://{addr}"),
        }
    }

    pub async fn register(&self, username: &str) -> Result<Session, BoxError> {
        let response = self
            .http
            .post(format!("{}/api/auth/register", self.base))
            .json(&json!({ "username": username, "password": PASSWORD }))
            .send()
            .await?;
        Ok(checked(response).await?.json().await?)
    }

    pub async fn login(&self, username: &str) -> Result<Session, BoxError> {
        let response = self
            .http
            .post(format!("{}/api/auth/login", self.base))
            .json(&json!({ "username": username, "password": PASSWORD }))
            .send()
            .await?;
        Ok(checked(response).await?.json().await?)
    }

    /// Registers `count` users named `<prefix><i>`, all at once (the server bounds
    /// its own hashing): a registration burst.
    pub async fn register_burst(
        &self,
        prefix: &str,
        count: usize,
    ) -> Result<Vec<Session>, BoxError> {
        let all = (0..count).map(|i| {
            let name = format!("{prefix}{i}");
            async move { self.register(&name).await }
        });
        futures_util::future::join_all(all)
            .await
            .into_iter()
            .collect()
    }

    /// Logs in the users `<prefix><i>`, all at once: a login burst.
    pub async fn login_burst(&self, prefix: &str, count: usize) -> Result<Vec<Session>, BoxError> {
        let all = (0..count).map(|i| {
            let name = format!("{prefix}{i}");
            async move { self.login(&name).await }
        });
        futures_util::future::join_all(all)
            .await
            .into_iter()
            .collect()
    }

    /// Registers `count` users named `<prefix><i>`, a few at a time (each costs an
    /// argon2 hash on the server).
    pub async fn register_many(
        &self,
        prefix: &str,
        count: usize,
    ) -> Result<Vec<Session>, BoxError> {
        const IN_FLIGHT: usize = 4;
        let mut sessions = Vec::with_capacity(count);
        let mut start = 0;
        while start < count {
            let end = (start + IN_FLIGHT).min(count);
            let batch = (start..end).map(|i| {
                let name = format!("{prefix}{i}");
                async move { self.register(&name).await }
            });
            for session in futures_util::future::join_all(batch).await {
                sessions.push(session?);
            }
            start = end;
        }
        Ok(sessions)
    }

    /// Creates a public room; its creator is a member.
    pub async fn create_room(&self, token: &str, name: &str) -> Result<u64, BoxError> {
        let response = self
            .http
            .post(format!("{}/api/chatrooms/new", self.base))
            .bearer_auth(token)
            .json(&json!({ "chatType": "public", "chatName": name }))
            .send()
            .await?;
        let created: Created = checked(response).await?.json().await?;
        Ok(created.chat_seq)
    }

    /// Opens (or finds) the direct room of the caller and `target`.
    pub async fn create_direct(&self, token: &str, target: u64) -> Result<u64, BoxError> {
        let response = self
            .http
            .post(format!("{}/api/chatrooms/new", self.base))
            .bearer_auth(token)
            .json(&json!({ "isDirected": true, "targetUserId": target }))
            .send()
            .await?;
        let created: Created = checked(response).await?.json().await?;
        Ok(created.chat_seq)
    }

    /// Joins a room; the room's newest msgId as the reply gives it.
    pub async fn join_at(&self, token: &str, room: u64) -> Result<u64, BoxError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Joined {
            last_msg_id: u64,
        }
        let response = self
            .http
            .put(format!("{}/api/chatrooms/join/{room}", self.base))
            .bearer_auth(token)
            .json(&json!({ "chatSeq": room }))
            .send()
            .await?;
        let joined: Joined = checked(response).await?.json().await?;
        Ok(joined.last_msg_id)
    }

    pub async fn leave(&self, token: &str, room: u64) -> Result<(), BoxError> {
        let response = self
            .http
            .delete(format!("{}/api/chatrooms/leave/{room}", self.base))
            .bearer_auth(token)
            .send()
            .await?;
        checked(response).await?;
        Ok(())
    }

    pub async fn join(&self, token: &str, room: u64) -> Result<(), BoxError> {
        let response = self
            .http
            .put(format!("{}/api/chatrooms/join/{room}", self.base))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .await?;
        checked(response).await?;
        Ok(())
    }

    /// `GET /api/chatrooms/message/{room}/{before}/{count}`: the page's msgIds.
    pub async fn history(
        &self,
        token: &str,
        room: u64,
        before: i64,
        count: u32,
    ) -> Result<Vec<u64>, BoxError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Message {
            msg_id: u64,
        }
        let response = self
            .http
            .get(format!(
                "{}/api/chatrooms/message/{room}/{before}/{count}",
                self.base
            ))
            .bearer_auth(token)
            .send()
            .await?;
        let page: Vec<Message> = checked(response).await?.json().await?;
        Ok(page.into_iter().map(|m| m.msg_id).collect())
    }
}
