//! Configuration: built-in defaults < TOML file (`--config`) < CLI flags.
//!
//! Every key is documented in `config.example.toml`. Unknown keys and bad values are
//! errors that name the key; `main` turns them into exit code 2 before anything is
//! opened.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// The smallest `storage.flush_interval` we accept: below it, flushes would be all
/// the disk does.
pub const MIN_FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// The largest `storage.cache_mib`: 1 TiB, far beyond any machine this runs on.
const MAX_CACHE_MIB: u64 = 1024 * 1024;

/// The whole configuration of a server.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer token of the operator's HTTP endpoints (`GET /api/admin/backup`);
    /// empty turns them off.
    pub token: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP and WebSocket listener binds to.
    pub bind: SocketAddr,
    /// How long a graceful shutdown waits for WebSocket sessions to close.
    #[serde(deserialize_with = "duration", serialize_with = "write_duration")]
    pub shutdown_grace: Duration,
    /// How long after a user's last connection closes they are announced offline,
    /// so that a reload does not flap.
    #[serde(deserialize_with = "duration", serialize_with = "write_duration")]
    pub presence_grace: Duration,
    /// Origins a browser may open the WebSocket from; empty allows only the
    /// server's own (the request's `Host`).
    pub allowed_origins: Vec<String>,
    /// Open connections (HTTP and WebSocket) at once; beyond, new ones are closed.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (and how long an idle
    /// keep-alive connection stays open).
    #[serde(deserialize_with = "duration", serialize_with = "write_duration")]
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body.
    #[serde(deserialize_with = "duration", serialize_with = "write_duration")]
    pub body_read_timeout: Duration,
    /// How long an upload may take in all; its body must also keep coming, at
    /// most `body_read_timeout` between two pieces.
    #[serde(deserialize_with = "duration", serialize_with = "write_duration")]
    pub upload_timeout: Duration,
    /// Reverse proxies (addresses or CIDR networks) whose `X-Forwarded-For` is
    /// believed; empty believes none.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shutdown_grace: Duration::from_secs(5),
            presence_grace: Duration::from_secs(5),
            allowed_origins: Vec::new(),
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            upload_timeout: Duration::from_secs(600),
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory of the sled database.
    pub path: PathBuf,
    /// How often the write-behind buffer is written to sled (`buffered` mode).
    #[serde(deserialize_with = "duration", serialize_with = "write_duration")]
    pub flush_interval: Duration,
    pub durability: Durability,
    /// sled's page cache, in MiB: recently read and written pages of the database
    /// (history included) kept in memory, counted at their size on disk (the
    /// heap they take is about two and a half times more).
    pub cache_mib: u64,
    /// Whether the server keeps the search index (`<path>/search/`) and answers
    /// `GET /api/search`.
    pub search_index: bool,
}

impl StorageConfig {
    /// `cache_mib` in bytes.
    pub fn cache_bytes(&self) -> u64 {
        self.cache_mib.saturating_mul(1024 * 1024)
    }
}

/// When a message is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// On arrival; written by the timed flush. A crash loses at most the last interval.
    Buffered,
    /// Once the batch holding it is on disk (group commit). A crash loses nothing
    /// acknowledged.
    Sync,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("./daehwa-data"),
            flush_interval: Duration::from_secs(1),
            durability: Durability::Buffered,
            cache_mib: crate::store::DEFAULT_CACHE_BYTES / (1024 * 1024),
            search_index: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest message content, in bytes of UTF-8.
    pub max_message_bytes: usize,
    /// Largest `count` of one history page.
    pub history_page_max: u32,
    /// Largest HTTP request body, in bytes.
    pub max_body_bytes: u64,
    /// Largest WebSocket message (and frame) a client may send, in bytes.
    pub max_ws_message_bytes: usize,
    /// Events queued for one WebSocket connection before it counts as too slow and is
    /// closed (the client then reconnects and resumes).
    pub ws_send_queue: usize,
    /// Most messages a `resume` replays per room; further behind, the client is told
    /// to reload history (`resync`).
    pub replay_max: u32,
    /// Most messages a `resume` replays in all, over every room; rooms past it get
    /// `resync`. Bounds what one reconnect can make the server send.
    pub replay_total_max: u32,
    /// Sustained messages per second per user (HTTP and WebSocket together).
    pub messages_per_second: f64,
    /// Messages a user may send at once before `messages_per_second` applies.
    pub message_burst: u32,
    /// Open WebSocket connections per user.
    pub connections_per_user: usize,
    /// socket.io long-polling connections open at once, in all (each is held in
    /// memory between its requests, before anyone has authenticated).
    pub polling_sessions: usize,
    /// Login attempts per minute for one username from one client address.
    pub login_attempts_per_minute: u32,
    /// Login attempts per minute from one client address, whatever the names.
    pub address_login_attempts_per_minute: u32,
    /// Accounts one client address may register per hour.
    pub registrations_per_hour: u32,
    /// Room password tries per minute, per user and per room.
    pub room_password_attempts_per_minute: u32,
    /// Rooms one user may create per hour (direct rooms included).
    pub rooms_per_hour: u32,
    /// Keys (addresses, names, users, rooms) each rate limiter remembers at most;
    /// when full of keys still in use, new attempts are refused.
    pub rate_limit_keys: usize,
    /// Password hashes (argon2id, 19 MiB each) computed at once for logins.
    pub concurrent_login_hashes: usize,
    /// Password hashes computed at once for everything else: registrations,
    /// password changes, room passwords. A separate queue, so logins never wait
    /// behind them.
    pub concurrent_other_hashes: usize,
    /// History pages' worth of messages one page request reads at most while it
    /// skips the messages of senders the caller blocks.
    pub history_scan_pages: u32,
    /// The largest file an upload may store, in bytes.
    pub max_file_bytes: u64,
    /// Uploads per user and hour.
    pub uploads_per_hour: u32,
    /// Results per page of `GET /api/search`, at most.
    pub search_page_max: usize,
    /// Changes of each room's log that a search reads beyond what the index holds.
    pub search_tail_changes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024,
            history_page_max: 100,
            max_body_bytes: 64 * 1024,
            max_ws_message_bytes: 64 * 1024,
            ws_send_queue: 1024,
            replay_max: 1000,
            replay_total_max: 10_000,
            messages_per_second: 20.0,
            message_burst: 40,
            connections_per_user: 16,
            polling_sessions: 10_000,
            login_attempts_per_minute: 10,
            address_login_attempts_per_minute: 30,
            registrations_per_hour: 60,
            room_password_attempts_per_minute: 10,
            rooms_per_hour: 100,
            rate_limit_keys: 50_000,
            concurrent_login_hashes: 2,
            concurrent_other_hashes: 1,
            history_scan_pages: 10,
            max_file_bytes: 25 * 1024 * 1024,
            uploads_per_hour: 120,
            search_page_max: 50,
            search_tail_changes: 1000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether anyone may create an account with `POST /api/auth/register`.
    pub open_registration: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            open_registration: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter: a level (`info`) or directives (`daehwa=debug,warn`).
    /// `RUST_LOG`, when set, wins.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Pretty,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A configuration that cannot be used, with the key at fault in its message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Values given on the command line; each one overrides the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Loads the file (if any), applies the overrides and validates the result.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Self::parse(&text).map_err(|message| ConfigError::Parse {
                    path: path.to_owned(),
                    message,
                })?
            }
            None => Self::default(),
        };
        if let Some(bind) = overrides.bind {
            config.server.bind = bind;
        }
        if let Some(dir) = &overrides.data_dir {
            config.storage.path = dir.clone();
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text; the message names the key and line at fault.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        if self.storage.flush_interval < MIN_FLUSH_INTERVAL {
            return invalid("storage.flush_interval", "must be at least 50ms");
        }
        if self.storage.cache_mib == 0 || self.storage.cache_mib > MAX_CACHE_MIB {
            return invalid("storage.cache_mib", "must be between 1 and 1048576 (1 TiB)");
        }
        if self.storage.path.as_os_str().is_empty() {
            return invalid("storage.path", "must not be empty");
        }
        if self.limits.max_message_bytes == 0 {
            return invalid("limits.max_message_bytes", "must be at least 1");
        }
        if self.limits.history_page_max == 0 {
            return invalid("limits.history_page_max", "must be at least 1");
        }
        if self.limits.max_body_bytes < 1024 {
            return invalid("limits.max_body_bytes", "must be at least 1024");
        }
        // A chat frame carries the content plus its JSON envelope.
        if self.limits.max_ws_message_bytes < self.limits.max_message_bytes + 256 {
            return invalid(
                "limits.max_ws_message_bytes",
                "must leave room for limits.max_message_bytes plus 256 bytes of envelope",
            );
        }
        if self.limits.ws_send_queue == 0 {
            return invalid("limits.ws_send_queue", "must be at least 1");
        }
        if self.limits.replay_max == 0 {
            return invalid("limits.replay_max", "must be at least 1");
        }
        if self.limits.replay_total_max == 0 {
            return invalid("limits.replay_total_max", "must be at least 1");
        }
        if !(self.limits.messages_per_second > 0.0 && self.limits.messages_per_second.is_finite()) {
            return invalid("limits.messages_per_second", "must be a positive number");
        }
        if self.limits.message_burst == 0 {
            return invalid("limits.message_burst", "must be at least 1");
        }
        if self.limits.polling_sessions == 0 {
            return invalid("limits.polling_sessions", "must be at least 1");
        }
        if self.limits.connections_per_user == 0 {
            return invalid("limits.connections_per_user", "must be at least 1");
        }
        for (key, value) in [
            (
                "limits.login_attempts_per_minute",
                self.limits.login_attempts_per_minute,
            ),
            (
                "limits.address_login_attempts_per_minute",
                self.limits.address_login_attempts_per_minute,
            ),
            (
                "limits.registrations_per_hour",
                self.limits.registrations_per_hour,
            ),
            (
                "limits.room_password_attempts_per_minute",
                self.limits.room_password_attempts_per_minute,
            ),
            ("limits.rooms_per_hour", self.limits.rooms_per_hour),
        ] {
            if value == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        if self.limits.concurrent_login_hashes == 0 {
            return invalid("limits.concurrent_login_hashes", "must be at least 1");
        }
        if self.limits.concurrent_other_hashes == 0 {
            return invalid("limits.concurrent_other_hashes", "must be at least 1");
        }
        if self.limits.history_scan_pages == 0 {
            return invalid("limits.history_scan_pages", "must be at least 1");
        }
        if self.limits.rate_limit_keys < 100 {
            return invalid("limits.rate_limit_keys", "must be at least 100");
        }
        if self.server.max_connections == 0 {
            return invalid("server.max_connections", "must be at least 1");
        }
        if self.server.header_read_timeout.is_zero() {
            return invalid("server.header_read_timeout", "must be above 0");
        }
        if self.limits.max_file_bytes == 0 {
            return invalid("limits.max_file_bytes", "must be at least 1");
        }
        if self.limits.uploads_per_hour == 0 {
            return invalid("limits.uploads_per_hour", "must be at least 1");
        }
        if self.limits.search_page_max == 0 {
            return invalid("limits.search_page_max", "must be at least 1");
        }
        if self.server.upload_timeout.is_zero() {
            return invalid("server.upload_timeout", "must be above 0");
        }
        if self.server.body_read_timeout.is_zero() {
            return invalid("server.body_read_timeout", "must be above 0");
        }
        if let Err(e) = crate::proxy::TrustedProxies::parse(&self.server.trusted_proxies) {
            return invalid("server.trusted_proxies", &e);
        }
        if !self.admin.token.is_empty() && self.admin.token.len() < 16 {
            return invalid(
                "admin.token",
                "must be empty (off) or at least 16 characters",
            );
        }
        if let Err(e) = self.log.level.parse::<tracing_subscriber::EnvFilter>() {
            return invalid("log.level", &e.to_string());
        }
        Ok(())
    }
}

/// Reads a duration written as a number with a unit: `250ms`, `1s`, `5m`, `1h`.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(de::Error::custom)
}

/// Writes a duration the way [`duration`] reads it.
fn write_duration<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    let millis = value.as_millis();
    let text = match millis {
        m if m % 3_600_000 == 0 && m > 0 => format!("{}h", m / 3_600_000),
        m if m % 60_000 == 0 && m > 0 => format!("{}m", m / 60_000),
        m if m % 1_000 == 0 => format!("{}s", m / 1_000),
        m => format!("{m}ms"),
    };
    serializer.serialize_str(&text)
}

/// Parses `<integer><unit>` with unit `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| DurationError(text.to_owned()))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| DurationError(text.to_owned()))?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(DurationError(text.to_owned())),
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| DurationError(text.to_owned()))
}

#[derive(Debug)]
pub struct DurationError(String);

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid duration {:?}: write a whole number and a unit, e.g. \"500ms\", \"1s\", \"5m\"",
            self.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::load(None, &Overrides::default()).expect("defaults validate");
    }

    #[test]
    fn the_example_file_is_the_defaults() {
        let text = include_str!("../config.example.toml");
        let parsed = Config::parse(text).expect("example parses");
        let defaults = Config::default();
        assert_eq!(format!("{parsed:?}"), format!("{defaults:?}"));
    }

    /// Every key of the configuration is in the example, and nothing else is.
    #[test]
    fn the_example_lists_every_key() {
        fn keys(value: &toml::Value, prefix: &str, out: &mut Vec<String>) {
            if let toml::Value::Table(table) = value {
                for (k, v) in table {
                    let key = format!("{prefix}{k}");
                    keys(v, &format!("{key}."), out);
                    out.push(key);
                }
            }
        }
        let example: toml::Value =
            toml::from_str(include_str!("../config.example.toml")).expect("example");
        let defaults = toml::Value::try_from(Config::default()).expect("defaults serialize");
        let (mut in_example, mut in_config) = (Vec::new(), Vec::new());
        keys(&example, "", &mut in_example);
        keys(&defaults, "", &mut in_config);
        in_example.sort();
        in_config.sort();
        assert_eq!(in_example, in_config);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[server]\nbindd = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(err.contains("bindd"), "{err}");
        let err = Config::parse("[nope]\n").unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse_duration("250ms").expect("valid"),
            Duration::from_millis(250)
        );
        assert_eq!(parse_duration("2s").expect("valid"), Duration::from_secs(2));
        assert_eq!(
            parse_duration("5m").expect("valid"),
            Duration::from_secs(300)
        );
        for bad in [
            "",
            "s",
            "1",
            "1 sec",
            "-1s",
            "1.5s",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn validation_names_the_key() {
        let mut config = Config::default();
        config.storage.flush_interval = Duration::from_millis(10);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("storage.flush_interval"), "{err}");
    }
}
