//! The room gauges (`ws_rooms`, `ws_active_games`, and so the registry's `rooms`/`live_games` the autoscaler
//! reads) follow players as they create, join, start, leave and disconnect, on each of two instances
//! sharing one Redis. They are kept as sockets move between rooms (src/local_rooms.rs) rather than counted
//! by a pass over every socket, so these checks pin that no path forgets to count or uncount.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use avalon_testkit::wait_until;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::{Redis, Ws, token};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// The gauges are refreshed at every registry heartbeat.
const HEARTBEAT: &str = "200ms";
const DEADLINE: Duration = Duration::from_secs(20);

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Just enough Socket.IO to play: connect with a token, emit and wait for the acknowledgement.
struct Player {
    ws: Stream,
    next_ack: u64,
}

impl Player {
    async fn connect(server: &Ws, user: &str) -> Player {
        let url = format!(
            "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket",
            server.port
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let open = next_text(&mut ws).await;
        assert!(open.starts_with('0'), "open packet, got {open}");
        ws.send(Message::text(format!(
            "40{}",
            json!({ "token": token(user) })
        )))
        .await
        .unwrap();
        let mut player = Player { ws, next_ack: 1 };
        player.read_until(|packet| packet.starts_with("40")).await;
        player
    }

    /// Emits `event` and returns the acknowledgement's `data`; panics on a refusal.
    async fn call(&mut self, event: &str, payload: Value) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        self.ws
            .send(Message::text(format!("42{id}{}", json!([event, payload]))))
            .await
            .unwrap();
        let prefix = format!("43{id}[");
        let ack = self.read_until(|packet| packet.starts_with(&prefix)).await;
        let reply: Vec<Value> = serde_json::from_str(&ack[prefix.len() - 1..]).unwrap();
        assert_eq!(reply[0]["ok"], true, "{event} refused: {ack}");
        reply[0]["data"].clone()
    }

    /// Reads (answering pings) until a packet matches; returns it.
    async fn read_until(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            let packet = next_text(&mut self.ws).await;
            if packet == "2" {
                self.ws.send(Message::text("3")).await.unwrap();
            } else if packet.starts_with("44") {
                panic!("refused: {packet}");
            } else if wanted(&packet) {
                return packet;
            }
        }
    }
}

async fn next_text(ws: &mut Stream) -> String {
    loop {
        match timeout(DEADLINE, ws.next())
            .await
            .expect("a frame within the deadline")
        {
            Some(Ok(Message::Text(text))) => return text.as_str().to_owned(),
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
}

fn gauge(server: &Ws, name: &str) -> i64 {
    let metrics = server.metrics();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

/// Waits (off the runtime's threads) until `server` shows `rooms` rooms and `games` running games.
async fn expect_gauges(server: &Ws, rooms: i64, games: i64, when: &str) {
    let seen = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(10), || {
            gauge(server, "ws_rooms") == rooms && gauge(server, "ws_active_games") == games
        })
    });
    assert!(
        seen,
        "{when}: expected ws_rooms {rooms} and ws_active_games {games}, got {} and {}",
        gauge(server, "ws_rooms"),
        gauge(server, "ws_active_games")
    );
}

fn start(name: &str, redis: &Redis) -> Ws {
    Ws::start(
        name,
        Some(redis),
        &[("REGISTRY_HEARTBEAT", HEARTBEAT), ("REGISTRY_TTL", "1s")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_gauges_follow_players_through_create_join_start_leave_and_disconnect() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (start("ws-a", &redis), start("ws-b", &redis));

    // Seats 0, 2, 4 on instance a; 1 and 3 on b.
    let mut players = Vec::new();
    for seat in 0..5 {
        let server = if seat % 2 == 0 { &a } else { &b };
        players.push(Player::connect(server, &format!("gauge-{seat}")).await);
    }
    expect_gauges(&a, 0, 0, "connected, in no room").await;

    let created = players[0].call("room:create", json!({})).await;
    let code = created["room"]["code"].as_str().unwrap().to_owned();
    expect_gauges(&a, 1, 0, "a room created on a").await;
    expect_gauges(&b, 0, 0, "nobody of that room on b yet").await;

    for player in &mut players[1..] {
        player.call("room:join", json!({ "code": code })).await;
    }
    expect_gauges(&b, 1, 0, "two players of the lobby on b").await;

    // A lobby left by its only player here is no longer counted there.
    let mut visitor = Player::connect(&b, "gauge-visitor").await;
    visitor.call("room:create", json!({})).await;
    expect_gauges(&b, 2, 0, "a second room on b").await;
    visitor.call("room:leave", json!({})).await;
    expect_gauges(&b, 1, 0, "its creator left the second room").await;
    drop(visitor);

    for player in &mut players {
        player.call("room:ready", json!({ "ready": true })).await;
    }
    players[0].call("game:start", json!({})).await;
    expect_gauges(&a, 1, 1, "the game started (a)").await;
    expect_gauges(&b, 1, 1, "the game started (b)").await;

    // Seat 3 goes without a goodbye; seat 1, now b's only player of the game, asks for the state again
    // (`sync` places it anew in the room it is in): the game stays counted. A visitor's new lobby shows the
    // gauges were read again since.
    let mut seated: Vec<(usize, Player)> = players.into_iter().enumerate().collect();
    seated.retain(|(seat, _)| *seat != 3);
    let only_on_b = &mut seated.iter_mut().find(|(seat, _)| *seat == 1).unwrap().1;
    // The state recording seat 3's disconnect has reached b (b notes each delivered state before sending
    // it), so no later delivery can mend what the sync below would get wrong.
    only_on_b
        .read_until(|packet| {
            let Some(body) = packet.strip_prefix("42") else {
                return false;
            };
            let Ok(Value::Array(event)) = serde_json::from_str::<Value>(body) else {
                return false;
            };
            event[0] == "room:state"
                && event[1]["members"].as_array().is_some_and(|members| {
                    members.iter().any(|member| {
                        member["user_id"] == "gauge-3" && member["connected"] == false
                    })
                })
        })
        .await;
    let synced = only_on_b.call("sync", json!({})).await;
    assert_eq!(synced["room"]["code"], code.as_str(), "{synced}");
    let mut visitor = Player::connect(&b, "gauge-visitor-2").await;
    visitor.call("room:create", json!({})).await;
    expect_gauges(&b, 2, 1, "b's only player of the game synced; a new lobby").await;
    drop(visitor);

    // Every player b had goes away: b no longer has the room, a still does.
    seated.retain(|(seat, _)| seat % 2 == 0);
    expect_gauges(&b, 0, 0, "b's players disconnected").await;
    expect_gauges(&a, 1, 1, "a's players still seated").await;

    drop(seated);
    expect_gauges(&a, 0, 0, "every player disconnected").await;
}
