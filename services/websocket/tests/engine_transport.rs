//! The Engine.IO WebSocket transport avalon-ws runs on (socketioxide over the patched engineioxide in
//! `vendor/engineioxide`, see vendor/README.md): a socket's reader, writer and heartbeat share one task and
//! the heartbeat's pong signal is a `Notify`, so these tests pin what that must not change — a client that
//! answers pings stays connected, one that stops is dropped after the ping timeout with the heartbeat
//! reason, and a burst larger than one channel block arrives whole and in order.
//!
//! A bare socketioxide server with short heartbeat settings stands in for avalon-ws here, because avalon-ws
//! keeps Engine.IO's 25 s / 20 s defaults; the transport code under test is the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use socketioxide::socket::DisconnectReason;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;

const PING_INTERVAL: Duration = Duration::from_millis(400);
const PING_TIMEOUT: Duration = Duration::from_millis(1500);
/// Far beyond any wait these tests expect; only a broken transport reaches it.
const DEADLINE: Duration = Duration::from_secs(20);
/// More than one block of the channel (32 slots), within its capacity (`max_buffer_size`, 128).
const BURST: usize = 100;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A socketioxide server on a free port: every connection gets `BURST` numbered events on "burst" when it
/// emits "burst"; every disconnect's reason is sent to the returned receiver.
async fn server() -> (SocketAddr, mpsc::UnboundedReceiver<DisconnectReason>) {
    let (layer, io) = SocketIo::builder()
        .ping_interval(PING_INTERVAL)
        .ping_timeout(PING_TIMEOUT)
        .build_layer();
    let (reasons_tx, reasons) = mpsc::unbounded_channel();
    io.ns("/", move |socket: SocketRef| {
        let reasons_tx = reasons_tx.clone();
        async move {
            socket.on_disconnect(move |reason: DisconnectReason| {
                let reasons_tx = reasons_tx.clone();
                async move {
                    let _ = reasons_tx.send(reason);
                }
            });
            socket.on("burst", |socket: SocketRef| async move {
                for n in 0..BURST {
                    // A full buffer would drop events: the test then sees a gap and fails.
                    socket
                        .emit("burst", &n)
                        .expect("room in the socket's buffer");
                }
            });
        }
    });
    let app = axum::Router::<()>::new().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, reasons)
}

/// Opens a WebSocket session and joins the default namespace; returns the client after the CONNECT reply.
async fn connect(addr: SocketAddr) -> Client {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let open = next_text(&mut ws).await.expect("an open packet");
    assert!(open.starts_with('0'), "open packet, got {open}");
    ws.send(Message::text("40")).await.unwrap();
    // The heartbeat starts with the session, so a ping may come before the CONNECT reply.
    loop {
        let packet = next_text(&mut ws).await.expect("a CONNECT reply");
        if packet == "2" {
            ws.send(Message::text("3")).await.unwrap();
            continue;
        }
        assert!(packet.starts_with("40"), "CONNECT reply, got {packet}");
        return ws;
    }
}

/// The next text frame, or `None` once the server has closed the connection.
async fn next_text(ws: &mut Client) -> Option<String> {
    loop {
        match timeout(DEADLINE, ws.next())
            .await
            .expect("a frame within the deadline")
        {
            Some(Ok(Message::Text(text))) => return Some(text.as_str().to_owned()),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_and_one_that_stops_is_dropped_after_the_timeout() {
    let (addr, mut reasons) = server().await;
    let mut ws = connect(addr).await;

    // Answer five pings: the session must live through them.
    let mut pings = 0;
    while pings < 5 {
        let packet = next_text(&mut ws)
            .await
            .expect("still connected while answering pings");
        if packet == "2" {
            pings += 1;
            ws.send(Message::text("3")).await.unwrap();
        }
    }
    assert!(
        reasons.try_recv().is_err(),
        "no disconnect while pongs arrive"
    );

    // Stop answering: the next ping goes unanswered and the server must give up after the ping timeout.
    let packet = next_text(&mut ws).await.expect("the next ping");
    assert_eq!(packet, "2");
    let unanswered = Instant::now();
    while next_text(&mut ws).await.is_some() {}
    let dropped_after = unanswered.elapsed();
    assert!(
        dropped_after >= PING_TIMEOUT.mul_f64(0.8),
        "dropped {dropped_after:?} after an unanswered ping, before the {PING_TIMEOUT:?} timeout"
    );
    let reason = timeout(DEADLINE, reasons.recv()).await.unwrap().unwrap();
    assert_eq!(reason, DisconnectReason::HeartbeatTimeout);
}

#[tokio::test]
async fn a_burst_larger_than_one_channel_block_arrives_whole_and_in_order() {
    let (addr, mut reasons) = server().await;
    let mut ws = connect(addr).await;
    ws.send(Message::text(r#"42["burst"]"#)).await.unwrap();
    let mut received = Vec::with_capacity(BURST);
    while received.len() < BURST {
        let packet = next_text(&mut ws)
            .await
            .expect("connected until the burst is in");
        if packet == "2" {
            ws.send(Message::text("3")).await.unwrap();
            continue;
        }
        let body = packet
            .strip_prefix(r#"42["burst","#)
            .expect("a burst event");
        let n: usize = body.trim_end_matches(']').parse().expect("a number");
        received.push(n);
    }
    assert_eq!(received, (0..BURST).collect::<Vec<_>>());

    // A client that closes is reported as a transport close, not as a heartbeat failure.
    ws.close(None).await.unwrap();
    let reason = timeout(DEADLINE, reasons.recv()).await.unwrap().unwrap();
    assert_eq!(reason, DisconnectReason::TransportClose);
}

#[tokio::test]
async fn a_client_that_vanishes_without_a_close_frame_is_dropped_at_once_as_a_transport_error() {
    let (addr, mut reasons) = server().await;
    let ws = connect(addr).await;
    // The TCP connection ends with no WebSocket close frame (a killed app, a lost network).
    drop(ws);
    let reason = timeout(DEADLINE, reasons.recv()).await.unwrap().unwrap();
    // Not `HeartbeatTimeout`: the session must not linger until the heartbeat gives up on it.
    assert_eq!(reason, DisconnectReason::TransportError);
}

#[tokio::test]
async fn a_client_that_sends_an_unreadable_packet_is_dropped_at_once() {
    let (addr, mut reasons) = server().await;
    let mut ws = connect(addr).await;
    ws.send(Message::text("9 is no Engine.IO packet type"))
        .await
        .unwrap();
    let reason = timeout(DEADLINE, reasons.recv()).await.unwrap().unwrap();
    assert_eq!(reason, DisconnectReason::PacketParsingError);
    // And the server closes the connection rather than keep writing to it.
    while next_text(&mut ws).await.is_some() {}
}
