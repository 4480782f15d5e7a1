//! The operator's commands on a data directory: `daehwa admin …`, `backup`,
//! `restore`. They open the database themselves, so they refuse to run while a
//! server holds it (sled locks the directory); `backup` then asks the server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::AUTHORIZATION;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::chat::Chat;
use crate::config::Config;
use crate::store::{BackupStats, Store, StoreError};

/// How long `daehwa backup` waits for each piece of a running server's backup.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(600);
/// How long it waits for the server to answer at all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of a refusal's body is shown.
const REFUSAL_BODY_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Refused(#[from] crate::error::Error),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Usage(String),
}

fn io(context: &str) -> impl Fn(std::io::Error) -> AdminError + '_ {
    move |e| AdminError::Io(format!("{context}: {e}"))
}

/// Opens the data directory of `config` for an admin command.
pub fn open(config: &Config) -> Result<Arc<Chat>, AdminError> {
    Ok(Chat::load(config)?.1)
}

/// Reads a password from the first line of standard input.
pub fn read_password(input: impl Read) -> Result<String, AdminError> {
    let mut line = String::new();
    BufReader::new(input)
        .read_line(&mut line)
        .map_err(io("cannot read the password from standard input"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(AdminError::Usage("give the password on standard input, e.g. `echo 'secret pass' | daehwa admin create-user alice`".into()));
    }
    Ok(password)
}

/// Lines of a table, columns padded to their widest cell.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(header.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

pub fn list_users(chat: &Chat) -> String {
    let rows = chat
        .list_users()
        .into_iter()
        .map(|u| {
            vec![
                u.user_id.to_string(),
                u.username.to_string(),
                u.rooms.to_string(),
                if u.disabled { "disabled" } else { "active" }.to_owned(),
            ]
        })
        .collect();
    table(&["ID", "USERNAME", "ROOMS", "STATE"], rows)
}

pub fn list_rooms(chat: &Chat) -> String {
    let rows = chat
        .list_rooms()
        .into_iter()
        .map(|r| {
            vec![
                r.room_id.to_string(),
                r.name,
                r.kind.to_owned(),
                r.members.to_string(),
                r.last_msg_id.to_string(),
                r.created_at,
                if r.closed { "closed" } else { "open" }.to_owned(),
            ]
        })
        .collect();
    table(
        &[
            "ID", "NAME", "TYPE", "MEMBERS", "MESSAGES", "CREATED", "STATE",
        ],
        rows,
    )
}

/// The space the data directory takes, as a table.
pub fn usage(chat: &Chat) -> Result<String, AdminError> {
    let usage = chat.usage()?;
    Ok(table(
        &["WHAT", "COUNT", "BYTES", "SIZE"],
        vec![
            vec![
                "database".into(),
                "-".into(),
                usage.database_bytes.to_string(),
                human_bytes(usage.database_bytes),
            ],
            vec![
                "files".into(),
                usage.files.to_string(),
                usage.file_bytes.to_string(),
                human_bytes(usage.file_bytes),
            ],
        ],
    ))
}

/// `12.3 MiB`, for people.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Writes a backup of the data directory of `config` to `out`: directly when no
/// server runs there, else through the running server's `GET /api/admin/backup`.
/// The file is written beside `out` and renamed once verified.
pub fn backup(
    config: &Config,
    out: &Path,
    server_addr: Option<SocketAddr>,
) -> Result<BackupStats, AdminError> {
    let partial = out.with_extension("partial");
    let stats = match Store::open_with_cache(&config.storage.path, config.storage.cache_bytes()) {
        Ok(store) => {
            let file =
                std::fs::File::create(&partial).map_err(io("cannot create the backup file"))?;
            let stats = store.export(file)?;
            store.close()?;
            stats
        }
        Err(StoreError::Locked) => {
            let addr = server_addr.unwrap_or_else(|| loopback(config.server.bind));
            fetch_backup(addr, &config.admin.token, &partial)?;
            let file = std::fs::File::open(&partial).map_err(io("cannot read the backup back"))?;
            Store::verify_backup(file)?
        }
        Err(e) => return Err(e.into()),
    };
    std::fs::rename(&partial, out).map_err(io("cannot move the backup into place"))?;
    Ok(stats)
}

/// The address to reach a server bound to `bind` from this machine.
fn loopback(bind: SocketAddr) -> SocketAddr {
    match bind {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], v4.port()))
        }
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, v6.port()))
        }
        other => other,
    }
}

/// `GET /api/admin/backup` from the running server (hyper-util's client), the body
/// streamed to `to`. Each wait (connecting, then every piece of the body) is bounded.
fn fetch_backup(addr: SocketAddr, token: &str, to: &Path) -> Result<(), AdminError> {
    if token.is_empty() {
        return Err(AdminError::Usage(
            "a server is running on this data directory; to back it up while it runs, set admin.token in the config (and restart it)".into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("cannot start the runtime"))?;
    runtime.block_on(async {
        let unreachable =
            || format!("the data directory is in use, and the server at {addr} cannot be reached");
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let request = Request::get(format!("http://{addr}/api/admin/backup"))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Empty::new())
            .map_err(|e| AdminError::Io(format!("cannot build the request: {e}")))?;
        let response = tokio::time::timeout(CONNECT_TIMEOUT, client.request(request))
            .await
            .map_err(|_| AdminError::Io(format!("{}: no reply", unreachable())))?
            .map_err(|e| AdminError::Io(format!("{}: {e}", unreachable())))?;
        let status = response.status();
        let mut body = response.into_body();
        if status != StatusCode::OK {
            let mut text = Vec::new();
            while let Ok(Some(Ok(frame))) =
                tokio::time::timeout(CONNECT_TIMEOUT, body.frame()).await
            {
                if let Ok(data) = frame.into_data() {
                    text.extend_from_slice(&data);
                }
                if text.len() >= REFUSAL_BODY_BYTES {
                    break;
                }
            }
            text.truncate(REFUSAL_BODY_BYTES);
            return Err(AdminError::Io(format!(
                "the server refused the backup ({status}): {}",
                String::from_utf8_lossy(&text).trim()
            )));
        }
        let mut file = std::fs::File::create(to).map_err(io("cannot create the backup file"))?;
        loop {
            let frame = tokio::time::timeout(BACKUP_TIMEOUT, body.frame())
                .await
                .map_err(|_| AdminError::Io("the server stopped sending the backup".into()))?;
            let Some(frame) = frame else { break };
            let frame =
                frame.map_err(|e| AdminError::Io(format!("cannot read the backup: {e}")))?;
            if let Ok(data) = frame.into_data() {
                file.write_all(&data)
                    .map_err(io("cannot write the backup"))?;
            }
        }
        file.sync_all().map_err(io("cannot write the backup"))?;
        Ok(())
    })
}

/// Restores a backup file into an empty (or new) data directory.
pub fn restore(file: &Path, data_dir: &Path) -> Result<BackupStats, AdminError> {
    let input =
        std::fs::File::open(file).map_err(io(&format!("cannot open {}", file.display())))?;
    Ok(Store::restore(input, data_dir)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_line_up() {
        let text = table(
            &["ID", "NAME"],
            vec![
                vec!["1".into(), "alice".into()],
                vec!["10".into(), "bo".into()],
            ],
        );
        assert_eq!(text, "ID  NAME\n1   alice\n10  bo");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(25 * 1024 * 1024), "25.0 MiB");
    }
}
