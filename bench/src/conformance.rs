//! `daehwa-bench sio-conformance`: daehwa's socket.io transport (the library's code,
//! not a copy) with the settings and handlers that the socket.io protocol's test
//! suite expects of a server: ping interval 300 ms, ping timeout 200 ms, `maxPayload`
//! 1 000 000, connect timeout 1 000 ms, any origin; on a connection to `/` or
//! `/custom` it emits `auth` with the handshake's auth payload; it answers `message`
//! with `message-back` and the same arguments, and acknowledges `message-with-ack`
//! with the same arguments; another namespace is refused with `Invalid namespace`.

use std::collections::VecDeque;
use std::future::pending;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use daehwa::shutdown::ShutdownControl;
use daehwa::socketio::{
    packet, EngineConfig, Frame, Handler, HandlerClose, Handshake, Refusal, Service, SocketIo,
};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// The test suite's server settings.
pub fn config() -> EngineConfig {
    EngineConfig {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        connect_timeout: Duration::from_millis(1000),
        ..EngineConfig::default()
    }
}

struct Conformance;

impl Service for Conformance {
    type Handler = Echo;

    fn open(&self, _: &Handshake<'_>) -> Result<Echo, Refusal> {
        Ok(Echo {
            frames: VecDeque::new(),
        })
    }
}

/// The test suite's handlers, for every namespace a client connects.
struct Echo {
    frames: VecDeque<Frame>,
}

impl Echo {
    fn send(&mut self, text: String, attachments: Vec<Bytes>) {
        self.frames.push_back(Frame::text(text));
        self.frames
            .extend(attachments.into_iter().map(Frame::Binary));
    }
}

impl Handler for Echo {
    fn connect(&mut self, nsp: &str, auth: Option<Value>) -> Result<(), Value> {
        if nsp != "/" && nsp != "/custom" {
            return Err(json!({ "message": "Invalid namespace" }));
        }
        let args = json!(["auth", auth.unwrap_or_else(|| json!({}))]).to_string();
        self.send(packet::event(nsp, 0, None, &args), Vec::new());
        Ok(())
    }

    fn event(
        &mut self,
        nsp: &str,
        mut args: Vec<Value>,
        attachments: Vec<Bytes>,
        ack: Option<u64>,
    ) {
        match (args.first().and_then(Value::as_str), ack) {
            (Some("message"), _) => {
                args[0] = json!("message-back");
                let text = packet::event(
                    nsp,
                    attachments.len(),
                    None,
                    &Value::Array(args).to_string(),
                );
                self.send(text, attachments);
            }
            (Some("message-with-ack"), Some(id)) => {
                let rest = Value::Array(args.split_off(1)).to_string();
                self.send(packet::ack(nsp, attachments.len(), id, &rest), attachments);
            }
            _ => {}
        }
    }

    fn disconnect(&mut self, _: &str) {}

    async fn step(&mut self) -> Result<(), HandlerClose> {
        pending().await
    }

    fn pop(&mut self) -> Option<Frame> {
        self.frames.pop_front()
    }
}

pub fn main(bind: SocketAddr) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sio-conformance: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match TcpListener::bind(bind).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("sio-conformance: cannot listen on {bind}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(addr) => eprintln!("sio-conformance listening addr={addr}"),
            Err(e) => {
                eprintln!("sio-conformance: {e}");
                return ExitCode::FAILURE;
            }
        }
        let control = ShutdownControl::new();
        let sio = SocketIo::new(Conformance, config(), control.handle());
        let routes = daehwa::socketio::route(sio);
        let Ok(mut terminate) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return ExitCode::FAILURE;
        };
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move {
                let _ = terminate.recv().await;
            })
            .run()
            .await;
        ExitCode::SUCCESS
    })
}
