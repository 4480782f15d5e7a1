//! The ceiling: the least a broadcast server speaking daehwa's frames can do. No
//! storage, no auth, no HTTP API: `GET /ws?rooms=1,2` joins rooms, a `chat` frame is
//! parsed, numbered per room, serialized once and queued to every member, and each
//! connection writes its queue in batches, as daehwa's sessions do.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// The same socket buffers as daehwa's gateway.
const READ_BUFFER_BYTES: usize = 4096;
const WRITE_BUFFER_BYTES: usize = 8192;
/// Events queued per connection; a member that falls further behind is dropped.
const SEND_QUEUE: usize = 65536;
/// Events written before a flush when many are queued.
const MAX_BATCH: usize = 64;

struct Member {
    conn: u64,
    tx: mpsc::Sender<Utf8Bytes>,
}

#[derive(Default)]
struct Room {
    last_msg_id: u64,
    members: Vec<Member>,
}

#[derive(Default)]
struct Hub {
    /// A std mutex: held for a few pointer moves and `try_send`s, never across an
    /// `.await`.
    rooms: Mutex<HashMap<u64, Room>>,
    next_conn: AtomicU64,
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    event: &'a str,
    data: ChatData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatData {
    chat_seq: u64,
    content: String,
    client_msg_id: Option<String>,
}

#[derive(Serialize)]
struct Event<'a, T> {
    event: &'a str,
    data: T,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageView<'a> {
    msg_id: u64,
    chat_seq: u64,
    sender_id: u64,
    sender_name: &'a str,
    content: &'a str,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_msg_id: Option<&'a str>,
}

/// RFC 3339 in UTC with milliseconds, as daehwa writes `createdAt`.
fn timestamp_now() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let (days, ms_of_day) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let s = ms_of_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms_of_day % 1000
    )
}

impl Hub {
    fn join(&self, room: u64, conn: u64, tx: mpsc::Sender<Utf8Bytes>) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms
            .entry(room)
            .or_default()
            .members
            .push(Member { conn, tx });
    }

    fn leave(&self, rooms_of_conn: &[u64], conn: u64) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        for room in rooms_of_conn {
            if let Some(room) = rooms.get_mut(room) {
                room.members.retain(|m| m.conn != conn);
            }
        }
    }

    /// Numbers the message, serializes it once and queues it to every member.
    fn chat(&self, conn: u64, joined: &[u64], data: &ChatData) -> Option<Utf8Bytes> {
        if !joined.contains(&data.chat_seq) {
            return Some(Utf8Bytes::from_static(
                r#"{"event":"error","data":{"error":"not_member","message":"not a member"}}"#,
            ));
        }
        let sender_name = format!("user{conn}");
        let created_at = timestamp_now();
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let room = rooms.entry(data.chat_seq).or_default();
        room.last_msg_id += 1;
        let event = Event {
            event: "chat",
            data: MessageView {
                msg_id: room.last_msg_id,
                chat_seq: data.chat_seq,
                sender_id: conn,
                sender_name: &sender_name,
                content: &data.content,
                created_at,
                client_msg_id: data.client_msg_id.as_deref(),
            },
        };
        let json = match serde_json::to_string(&event) {
            Ok(json) => Utf8Bytes::from(json),
            Err(_) => return None,
        };
        // A member whose queue is full is dropped; its session then ends.
        room.members.retain(|m| m.tx.try_send(json.clone()).is_ok());
        None
    }
}

fn rooms_of_query(query: Option<&str>) -> Vec<u64> {
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.strip_prefix("rooms="))
        .flat_map(|list| list.split(','))
        .filter_map(|id| id.parse().ok())
        .collect()
}

async fn session(hub: Arc<Hub>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut query = None;
    // The closure's type is tungstenite's `Callback`, whose error type is fixed.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        query = request.uri().query().map(str::to_owned);
        Ok(response)
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES);
    let Ok(mut ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    let rooms = rooms_of_query(query.as_deref());
    let conn = hub.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
    let (tx, mut rx) = mpsc::channel(SEND_QUEUE);
    for room in &rooms {
        hub.join(*room, conn, tx.clone());
    }
    drop(tx);
    let greeting = serde_json::to_string(&Event {
        event: "rooms",
        data: &rooms,
    })
    .unwrap_or_default();
    if ws.send(Message::text(greeting)).await.is_ok() {
        loop {
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        let reply = match serde_json::from_str::<Frame>(text.as_str()) {
                            Ok(frame) if frame.event == "chat" => hub.chat(conn, &rooms, &frame.data),
                            _ => Some(Utf8Bytes::from_static(
                                r#"{"event":"error","data":{"error":"invalid_frame","message":"bad frame"}}"#,
                            )),
                        };
                        if let Some(reply) = reply {
                            if ws.send(Message::Text(reply)).await.is_err() {
                                break;
                            }
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                event = rx.recv() => {
                    let Some(event) = event else { break };
                    if ws.feed(Message::Text(event)).await.is_err() {
                        break;
                    }
                    let mut failed = false;
                    for _ in 1..MAX_BATCH {
                        match rx.try_recv() {
                            Ok(event) => {
                                if ws.feed(Message::Text(event)).await.is_err() {
                                    failed = true;
                                    break;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    if failed || ws.flush().await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    hub.leave(&rooms, conn);
}

/// Runs the ceiling until SIGTERM or SIGINT.
pub fn main(bind: SocketAddr) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ceiling: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match TcpListener::bind(bind).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("ceiling: cannot listen on {bind}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(addr) => eprintln!("ceiling listening addr={addr}"),
            Err(e) => {
                eprintln!("ceiling: {e}");
                return ExitCode::FAILURE;
            }
        }
        let hub = Arc::new(Hub::default());
        let Ok(mut terminate) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return ExitCode::FAILURE;
        };
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(session(hub.clone(), stream));
                    }
                }
                _ = terminate.recv() => return ExitCode::SUCCESS,
                _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rooms() {
        assert_eq!(rooms_of_query(Some("rooms=1,2,x&a=b")), vec![1, 2]);
        assert!(rooms_of_query(None).is_empty());
    }

    #[test]
    fn formats_time() {
        let t = timestamp_now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z'));
    }
}
