//! A minimal Socket.IO v4 client over Engine.IO's WebSocket transport, enough to load a server: handshake
//! with `auth`, emit with acknowledgements, receive events and acks with their arrival time, answer pings.
//! The same client drives avalon-ws and the python-socketio baseline, so neither side gets a faster client.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Loopback source addresses the connections are spread over: one address has ~28,000 ephemeral ports
/// (net.ipv4.ip_local_port_range), and a connection bound before it connects keeps its port to itself, so
/// 40,000 connections to one server port need more than one. All of 127.0.0.0/8 is loopback on Linux.
const SOURCE_ADDRESSES: u8 = 8;

/// The client's read buffer: tungstenite's default (128 KiB, zero-filled on the first read) would cost the
/// load generator 5 GiB at 40,000 connections; what the servers send an idle client fits in far less.
const CLIENT_READ_BUFFER: usize = 4096;

/// The loopback address connection `index` is bound to.
pub fn source_address(index: usize) -> Ipv4Addr {
    let spread = u8::try_from(index % usize::from(SOURCE_ADDRESSES)).unwrap_or(0);
    Ipv4Addr::new(127, 0, 0, 1 + spread)
}

/// Something the server sent, stamped when its frame arrived (before any parsing).
pub enum Inbound {
    Event {
        name: String,
        payload: Value,
        at: Instant,
        bytes: usize,
    },
    Ack {
        id: u64,
        payload: Value,
    },
}

pub type InboundSender = mpsc::UnboundedSender<(usize, Inbound)>;

pub struct Client {
    out: mpsc::UnboundedSender<Message>,
    next_ack: AtomicU64,
}

impl Client {
    /// Connects player `index` to the server on loopback `port` from [`source_address`]`(index)`; what it
    /// receives goes to `sink` tagged with `index` (or is dropped when `sink` is `None`).
    pub async fn connect(
        port: u16,
        token: &str,
        index: usize,
        sink: Option<InboundSender>,
    ) -> anyhow::Result<Client> {
        let socket = tokio::time::timeout(Duration::from_secs(20), open(port, index))
            .await
            .context("websocket connect timed out")??;
        let (mut write, mut read) = socket.split();
        let open = next_text(&mut read).await?;
        if !open.starts_with('0') {
            bail!("expected an Engine.IO open packet, got {open:?}");
        }
        write
            .send(Message::text(format!("40{}", json!({ "token": token }))))
            .await?;
        loop {
            let packet = next_text(&mut read).await?;
            match packet.as_str() {
                "2" => write.send(Message::text("3")).await?,
                text if text.starts_with("40") => break,
                text if text.starts_with("44") => bail!("handshake refused: {text}"),
                // Events sent right after the handshake (e.g. `session`) are not needed here.
                _ => {}
            }
        }
        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if write.send(message).await.is_err() {
                    return;
                }
            }
            let _ = write.send(Message::Close(None)).await;
        });
        // Weak, so dropping the Client drops the last sender: the writer then sends Close and the
        // connection (and its file descriptor) really goes, instead of living on in this task.
        let pong = out.downgrade();
        tokio::spawn(async move {
            while let Some(Ok(message)) = read.next().await {
                let at = Instant::now();
                let Ok(text) = message.to_text() else {
                    continue;
                };
                if text == "2" {
                    match pong.upgrade() {
                        Some(out) => {
                            let _ = out.send(Message::text("3"));
                        }
                        None => return,
                    }
                } else if let Some(sink) = &sink
                    && let Some(inbound) = parse(text, at)
                    && sink.send((index, inbound)).is_err()
                {
                    return;
                }
            }
        });
        Ok(Client {
            out,
            next_ack: AtomicU64::new(1),
        })
    }

    /// Emits `event` asking for an acknowledgement; returns the ack id to wait for.
    pub fn emit(&self, event: &str, payload: &Value) -> u64 {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .out
            .send(Message::text(format!("42{id}{}", json!([event, payload]))));
        id
    }
}

/// The TCP connection from this connection's source address, then the WebSocket handshake over it.
async fn open(
    port: u16,
    index: usize,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let source = source_address(index);
    let tcp = TcpSocket::new_v4()?;
    tcp.bind(SocketAddr::from((source, 0)))
        .with_context(|| format!("cannot bind a client socket to {source}"))?;
    let stream = tcp
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .with_context(|| format!("cannot connect from {source} to 127.0.0.1:{port}"))?;
    stream.set_nodelay(true)?;
    let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket");
    let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER);
    let (socket, _) =
        tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(config))
            .await
            .context("websocket handshake failed")?;
    Ok(socket)
}

async fn next_text<S>(read: &mut S) -> anyhow::Result<String>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), read.next())
            .await
            .context("no answer from the server")?
            .context("connection closed during the handshake")??;
        if let Message::Text(text) = message {
            return Ok(text.to_string());
        }
    }
}

fn parse(text: &str, at: Instant) -> Option<Inbound> {
    if let Some(rest) = text.strip_prefix("42") {
        let body = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        let mut array: Vec<Value> = serde_json::from_str(body).ok()?;
        if array.is_empty() {
            return None;
        }
        let payload = if array.len() > 1 {
            array.swap_remove(1)
        } else {
            Value::Null
        };
        let name = array.first()?.as_str()?.to_owned();
        return Some(Inbound::Event {
            name,
            payload,
            at,
            bytes: text.len(),
        });
    }
    if let Some(rest) = text.strip_prefix("43") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let id = digits.parse().ok()?;
        let mut array: Vec<Value> = serde_json::from_str(&rest[digits.len()..]).ok()?;
        let payload = if array.is_empty() {
            Value::Null
        } else {
            array.swap_remove(0)
        };
        return Some(Inbound::Ack { id, payload });
    }
    None
}
