//! The floor of `bench ws`: a bare WebSocket server on tokio-tungstenite holding the same idle clients as
//! avalon-ws and answering them the same way — the Engine.IO open packet, the Socket.IO CONNECT reply, a ping
//! every 25 s with the same 20 s pong deadline — and nothing else: no sessions, rooms, handlers or channels.
//! One task per connection owns its WebSocket. Its read buffer and message limit are avalon-ws's
//! ([`READ_BUFFER`], the default `MAX_MESSAGE_BYTES`), so the ratio ours ÷ floor measures what the Socket.IO
//! layer and the game server add to a connection, not a choice of buffer size.
//!
//! It runs as its own process (`xtask bench ws-floor --port N` from the release build, started by
//! `bench ws`), so its RSS is read exactly as the servers' is.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The WebSocket read buffer avalon-ws gives each connection (services/websocket/src/server.rs).
pub const READ_BUFFER: usize = 1024;
/// avalon-ws's default MAX_MESSAGE_BYTES.
const MAX_MESSAGE: usize = 65_536;
/// Engine.IO's defaults, which avalon-ws keeps.
const PING_INTERVAL: Duration = Duration::from_secs(25);
const PING_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Args, Debug)]
pub struct WsFloor {
    /// Port to listen on (127.0.0.1).
    #[arg(long)]
    port: u16,
}

impl WsFloor {
    pub fn run(self) -> anyhow::Result<()> {
        // The same runtime avalon-ws runs on: tokio's multi-threaded scheduler, one worker per core.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(serve(self.port))
    }
}

async fn serve(port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let ids = AtomicU64::new(1);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors for a moment: the client retries or counts a failure.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(stream, id));
    }
}

/// One idle client for its whole life: open, connect, then pings until it leaves or stops answering.
async fn connection(stream: TcpStream, id: u64) {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let sid = format!("floor{id:015}");
    let open = format!(
        r#"0{{"sid":"{sid}","upgrades":[],"pingInterval":{},"pingTimeout":{},"maxPayload":{MAX_MESSAGE}}}"#,
        PING_INTERVAL.as_millis(),
        PING_TIMEOUT.as_millis()
    );
    if ws.send(Message::text(open)).await.is_err() {
        return;
    }
    let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut pong_due: Option<Instant> = None;
    loop {
        tokio::select! {
            message = ws.next() => {
                let Some(Ok(message)) = message else { return };
                match message {
                    Message::Text(text) if text.as_str() == "3" => pong_due = None,
                    Message::Text(text) if text.as_str().starts_with("40") => {
                        let reply = format!(r#"40{{"sid":"{sid}"}}"#);
                        if ws.send(Message::text(reply)).await.is_err() {
                            return;
                        }
                    }
                    Message::Close(_) => return,
                    _ => {}
                }
            }
            _ = ping.tick() => {
                if pong_due.is_some_and(|due| Instant::now() > due) {
                    return;
                }
                pong_due = Some(Instant::now() + PING_TIMEOUT);
                if ws.send(Message::text("2")).await.is_err() {
                    return;
                }
            }
        }
    }
}
