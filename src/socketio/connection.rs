//! One Engine.IO connection: the task that owns its [`Handler`], whatever carries its
//! packets (a WebSocket, or long-polling requests, upgraded to a WebSocket midway).
//!
//! The loop mirrors `/ws`'s: write everything queued (the connection's own packets
//! first, then the handler's), each write that does not finish at once raced against
//! shutdown and the write timeout; then wait for the next packet, the handler's next
//! step, a ping, the pong deadline, the connect deadline, or an upgrade. A client's
//! packets are handled one at a time, in order; the next is read only once what the
//! previous one produced is written.

use std::collections::VecDeque;
use std::future::{pending, poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::{interval_at, sleep_until, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use super::packet::{self, EnginePacket, Kind, Packet};
use super::polling::{Blocked, Incoming, Polling};
use super::{new_sid, Frame, Handler, HandlerClose, Service, SocketIo};
use crate::ws::upgrade::Socket;

/// Namespaces one connection may join at once.
const MAX_NAMESPACES: usize = 8;
/// How long the close may wait behind unread data before the connection is dropped
/// without it (as on `/ws`).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub enum Transport {
    WebSocket(Box<Socket>),
    Polling {
        polling: Arc<Polling>,
        inbox: mpsc::Receiver<Incoming>,
    },
}

/// Why the loop ends.
enum End {
    /// Say nothing more; close the transport (the client reconnects).
    Close,
    /// The transport failed or the client closed it: nothing to say.
    Gone,
}

/// A binary packet waiting for its attachments.
struct Assembling {
    packet: Packet,
    attachments: Vec<Bytes>,
}

struct Engine<H> {
    handler: H,
    /// The connection's own packets, sent before the handler's.
    out: VecDeque<Frame>,
    namespaces: Vec<String>,
    assembling: Option<Assembling>,
    /// Whether a namespace was ever connected (the connect deadline is over then).
    connected_once: bool,
}

/// Runs a connection until it ends. `sid` names it in the long-polling sessions;
/// `upgrades` brings the WebSocket that may take over a polling connection.
pub async fn run<S: Service>(
    sio: &SocketIo<S>,
    sid: &str,
    mut transport: Transport,
    mut upgrades: Option<mpsc::Receiver<Socket>>,
    handler: S::Handler,
) {
    let config = sio.config();
    let mut shutdown = sio.shutdown.clone();
    let mut signalled = pin!(shutdown.signalled());
    let mut engine = Engine {
        handler,
        out: VecDeque::new(),
        namespaces: Vec::new(),
        assembling: None,
        connected_once: false,
    };
    let mut ping = interval_at(Instant::now() + config.ping_interval, config.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut pong_deadline: Option<Instant> = None;
    let connect_deadline = Instant::now() + config.connect_timeout;
    // A WebSocket probing to take over a polling connection, and until when it may.
    let mut probing: Option<(Box<Socket>, Instant)> = None;

    let end = loop {
        // Write what is queued. Most writes finish at once; one that waits is raced
        // against shutdown and timed.
        if !engine.out.is_empty() || engine.handler_has_frames() {
            let mut write = pin!(write_queued(&mut transport, &mut engine));
            let written = match poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
                Poll::Ready(written) => written,
                Poll::Pending => tokio::select! {
                    biased;
                    _ = &mut signalled => break End::Close,
                    written = tokio::time::timeout(config.write_timeout, &mut write) => {
                        written.unwrap_or(Err(()))
                    }
                },
            };
            if written.is_err() {
                break End::Gone;
            }
        }
        let probe_until = probing.as_ref().map(|(_, until)| *until);
        let upgrades = upgrades.as_mut().filter(|_| probing.is_none());
        tokio::select! {
            incoming = read(&mut transport), if engine.handler.accepts() => {
                pong_deadline = None;
                let outcome = match incoming {
                    Some(Incoming::Text(text)) => engine.text(&text),
                    Some(Incoming::Binary(bytes)) => engine.binary(bytes),
                    None => Err(End::Gone),
                };
                if let Err(end) = outcome {
                    break end;
                }
            }
            step = engine.handler.step() => match step {
                Ok(()) => {}
                Err(HandlerClose::Transport) => break End::Close,
                Err(HandlerClose::Disconnect) => {
                    for nsp in std::mem::take(&mut engine.namespaces) {
                        engine.out.push_back(Frame::text(packet::disconnect(&nsp)));
                    }
                    let _ = tokio::time::timeout(
                        config.write_timeout,
                        write_queued(&mut transport, &mut engine),
                    )
                    .await;
                    break End::Close;
                }
            },
            _ = ping.tick() => {
                engine.out.push_back(Frame::text("2"));
                if pong_deadline.is_none() {
                    pong_deadline = Some(Instant::now() + config.ping_timeout);
                }
            }
            _ = sleep_while_some(pong_deadline) => {
                tracing::debug!(sid, "socket.io: no pong in time");
                break End::Close;
            }
            _ = sleep_while_some(Some(connect_deadline).filter(|_| !engine.connected_once)) => {
                tracing::debug!(sid, "socket.io: no namespace connected in time");
                break End::Close;
            }
            Some(socket) = recv_upgrade(upgrades) => {
                probing = Some((Box::new(socket), Instant::now() + config.upgrade_timeout));
            }
            frame = probe_next(&mut probing) => {
                match probe(&mut probing, frame, &mut transport, &mut engine).await {
                    Probe::Waiting => {}
                    Probe::Upgraded(socket) => {
                        sio.forget(sid);
                        transport = Transport::WebSocket(socket);
                    }
                    Probe::Failed => probing = None,
                }
            }
            _ = sleep_while_some(probe_until) => {
                probing = None;
            }
            _ = &mut signalled => break End::Close,
        }
    };
    drop(engine);
    match transport {
        // Either our close, or the echo of the peer's that tungstenite has queued
        // (without it the client sees 1006); on a broken socket it fails at once.
        Transport::WebSocket(mut socket) => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, SinkExt::close(&mut socket)).await;
        }
        Transport::Polling { polling, .. } => {
            if let End::Close = end {
                let _ = polling.push(Frame::text("1"));
            }
            sio.forget(sid);
            polling.close();
        }
    }
}

/// Sleeps until the deadline, if there is one; else never resolves. A timer is made
/// only when polled, so a loop turn without a deadline costs none.
async fn sleep_while_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => pending().await,
    }
}

async fn recv_upgrade(upgrades: Option<&mut mpsc::Receiver<Socket>>) -> Option<Socket> {
    match upgrades {
        Some(upgrades) => upgrades.recv().await,
        None => pending().await,
    }
}

/// The next frame of a probing WebSocket.
async fn probe_next(
    probing: &mut Option<(Box<Socket>, Instant)>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match probing {
        Some((socket, _)) => socket.next().await,
        None => pending().await,
    }
}

enum Probe {
    Waiting,
    Upgraded(Box<Socket>),
    Failed,
}

/// The upgrade of a polling connection: the client pings the new WebSocket with
/// `2probe`, is answered `3probe` (and its pending poll a noop, so that it can
/// pause polling), then sends `5`: from then on, everything goes over the WebSocket,
/// what was still queued for polling first.
async fn probe(
    probing: &mut Option<(Box<Socket>, Instant)>,
    frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    transport: &mut Transport,
    engine: &mut Engine<impl Handler>,
) -> Probe {
    let Transport::Polling { polling, .. } = transport else {
        return Probe::Failed;
    };
    let Some((socket, until)) = probing else {
        return Probe::Failed;
    };
    match frame {
        Some(Ok(Message::Text(text))) if text.as_str() == "2probe" => {
            let answered =
                tokio::time::timeout_at(*until, socket.send(Message::text("3probe"))).await;
            if !matches!(answered, Ok(Ok(()))) {
                return Probe::Failed;
            }
            let _ = polling.push(Frame::text("6"));
            Probe::Waiting
        }
        Some(Ok(Message::Text(text))) if text.as_str() == "5" => {
            let left = polling.close();
            for frame in left.into_iter().rev() {
                // The noops were for the polling client only.
                if !matches!(&frame, Frame::Text(t) if t.as_str() == "6") {
                    engine.out.push_front(frame);
                }
            }
            match probing.take() {
                Some((socket, _)) => Probe::Upgraded(socket),
                None => Probe::Failed,
            }
        }
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Probe::Waiting,
        _ => Probe::Failed,
    }
}

/// The next packet from the client.
async fn read(transport: &mut Transport) -> Option<Incoming> {
    match transport {
        Transport::WebSocket(socket) => loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    return Some(Incoming::Text(text.as_str().to_owned()))
                }
                Some(Ok(Message::Binary(bytes))) => return Some(Incoming::Binary(bytes)),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
            }
        },
        Transport::Polling { inbox, .. } => inbox.recv().await,
    }
}

/// Writes the connection's packets, then the handler's.
async fn write_queued<H: Handler>(
    transport: &mut Transport,
    engine: &mut Engine<H>,
) -> Result<(), ()> {
    match transport {
        Transport::WebSocket(socket) => {
            while let Some(frame) = engine.next_frame() {
                let message = match frame {
                    Frame::Text(text) => Message::Text(text),
                    Frame::Binary(bytes) => Message::Binary(bytes),
                };
                socket.feed(message).await.map_err(|_| ())?;
            }
            socket.flush().await.map_err(|_| ())
        }
        Transport::Polling { polling, .. } => {
            while let Some(mut frame) = engine.next_frame() {
                loop {
                    let drained = polling.drained();
                    let mut drained = pin!(drained);
                    drained.as_mut().enable();
                    match polling.push(frame) {
                        Ok(()) => break,
                        Err((Blocked::Closed, _)) => return Err(()),
                        Err((Blocked::Full, back)) => {
                            // Wait for the client's next poll to make room.
                            frame = back;
                            drained.await;
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

impl<H: Handler> Engine<H> {
    fn handler_has_frames(&mut self) -> bool {
        match self.handler.pop() {
            Some(frame) => {
                self.out.push_back(frame);
                true
            }
            None => false,
        }
    }

    fn next_frame(&mut self) -> Option<Frame> {
        self.out.pop_front().or_else(|| self.handler.pop())
    }

    /// An Engine.IO text packet from the client.
    fn text(&mut self, text: &str) -> Result<(), End> {
        match packet::parse_engine(text) {
            Ok(EnginePacket::Ping(data)) => {
                self.out.push_back(Frame::text(format!("3{data}")));
                Ok(())
            }
            Ok(EnginePacket::Pong(_) | EnginePacket::Noop) => Ok(()),
            Ok(EnginePacket::Close) => Err(End::Gone),
            Ok(EnginePacket::Message(message)) => self.message(message),
            Ok(EnginePacket::Upgrade) | Err(_) => Err(End::Close),
        }
    }

    /// A binary message: an attachment of the packet being assembled.
    fn binary(&mut self, bytes: Bytes) -> Result<(), End> {
        let Some(assembling) = &mut self.assembling else {
            return Err(End::Close);
        };
        assembling.attachments.push(bytes);
        if assembling.attachments.len() == assembling.packet.attachments {
            if let Some(Assembling {
                packet,
                attachments,
            }) = self.assembling.take()
            {
                self.dispatch(packet, attachments);
            }
        }
        Ok(())
    }

    /// A socket.io packet from the client.
    fn message(&mut self, text: &str) -> Result<(), End> {
        if self.assembling.is_some() {
            // Attachments were announced and a text packet came instead.
            return Err(End::Close);
        }
        let Ok(packet) = packet::parse_packet(text) else {
            return Err(End::Close);
        };
        match packet.kind {
            Kind::Connect => {
                let nsp = packet.nsp;
                if self.namespaces.contains(&nsp) {
                    return Ok(());
                }
                if self.namespaces.len() >= MAX_NAMESPACES {
                    self.out.push_back(Frame::text(packet::connect_error(
                        &nsp,
                        &json!({ "message": "Too many namespaces" }),
                    )));
                    return Ok(());
                }
                match self.handler.connect(&nsp, packet.data) {
                    Ok(()) => {
                        self.out
                            .push_back(Frame::text(packet::connect(&nsp, &new_sid())));
                        self.namespaces.push(nsp);
                        self.connected_once = true;
                    }
                    Err(data) => self
                        .out
                        .push_back(Frame::text(packet::connect_error(&nsp, &data))),
                }
                Ok(())
            }
            Kind::Disconnect => {
                if let Some(at) = self.namespaces.iter().position(|n| *n == packet.nsp) {
                    self.namespaces.swap_remove(at);
                    self.handler.disconnect(&packet.nsp);
                }
                Ok(())
            }
            Kind::ConnectError => Err(End::Close),
            Kind::Event | Kind::Ack | Kind::BinaryEvent | Kind::BinaryAck => {
                if packet.attachments > 0 {
                    self.assembling = Some(Assembling {
                        attachments: Vec::with_capacity(packet.attachments),
                        packet,
                    });
                } else {
                    self.dispatch(packet, Vec::new());
                }
                Ok(())
            }
        }
    }

    /// A complete event (or acknowledgement) to the handler, if its namespace is
    /// connected; the server asks for no acknowledgements, so those are dropped.
    fn dispatch(&mut self, packet: Packet, attachments: Vec<Bytes>) {
        if !matches!(packet.kind, Kind::Event | Kind::BinaryEvent)
            || !self.namespaces.contains(&packet.nsp)
        {
            return;
        }
        let args = match packet.data {
            Some(Value::Array(args)) => args,
            _ => return,
        };
        self.handler
            .event(&packet.nsp, args, attachments, packet.id);
    }
}
