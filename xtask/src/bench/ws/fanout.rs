//! The fan-out measurement: rooms of five players split over two instances; one player acts, and the time
//! until each of the five receives the resulting state is one latency sample. avalon-ws plays real games
//! (every sample is a game move stored in Redis and fanned out as per-player views); the baseline broadcasts
//! an equally large payload to the room through python-socketio's Redis manager.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Barrier, Semaphore, mpsc};

use super::client::{Client, Inbound};

pub const PLAYERS: usize = 5;
/// A delivery not seen within this is counted lost.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Rooms being seated at the same time.
const SEATING_AT_ONCE: usize = 32;

#[derive(Default, Serialize, Deserialize)]
pub struct Samples {
    pub latencies_ms: Vec<f64>,
    pub events: u64,
    pub lost: u64,
    pub refused: u64,
    pub payload_bytes: u64,
    pub payloads: u64,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Plan {
    pub ports: [u16; 2],
    /// This load generator's rooms are numbered from here (each worker process seats its own share).
    pub first_room: usize,
    pub rooms: usize,
    pub rate: u32,
    pub measure: Duration,
    /// Bytes of padding in each baseline broadcast (to match avalon-ws's view size).
    pub padding: usize,
}

pub type Tokens = Arc<dyn Fn(usize, usize) -> String + Send + Sync>;

impl Samples {
    /// Adds another load generator's samples to these.
    pub fn merge(&mut self, other: Samples) {
        self.latencies_ms.extend(other.latencies_ms);
        self.events += other.events;
        self.lost += other.lost;
        self.refused += other.refused;
        self.payload_bytes += other.payload_bytes;
        self.payloads += other.payloads;
    }
}

/// The seated rooms after a measurement, their connections still open. Dropping it closes them: keep it
/// until every load generator is done, or the thousands of disconnects (each one a store update and a
/// delivery on the servers) land on the last moves still being measured elsewhere — it put one move of
/// every run near 1 s.
pub struct Seated {
    _tables: Vec<Table>,
}

/// Runs one side: sets every room up (bounded), waits for `go`, then measures for `plan.measure` at
/// `plan.rate` events/s.
pub async fn run(
    plan: &Plan,
    avalon: bool,
    tokens: Tokens,
    go: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<(Samples, Seated)> {
    let samples = Arc::new(Mutex::new(Samples::default()));
    let permits = Arc::new(Semaphore::new(0));
    let barrier = Arc::new(Barrier::new(plan.rooms + 1));
    // Seating is paced so thousands of simultaneous handshakes do not time each other out.
    let seating = Arc::new(Semaphore::new(SEATING_AT_ONCE));
    let mut rooms = tokio::task::JoinSet::new();
    for room in plan.first_room..plan.first_room + plan.rooms {
        let (samples, permits, barrier, tokens, seating) = (
            Arc::clone(&samples),
            Arc::clone(&permits),
            Arc::clone(&barrier),
            Arc::clone(&tokens),
            Arc::clone(&seating),
        );
        let ports = plan.ports;
        let padding = plan.padding;
        rooms.spawn(async move {
            let seat = seating.acquire_owned().await;
            let table = Table::seat(room, ports, &tokens, avalon).await;
            drop(seat);
            barrier.wait().await;
            let mut table = table?;
            if avalon {
                table.play(&permits, &samples).await?;
            } else {
                table.broadcast(room, padding, &permits, &samples).await?;
            }
            anyhow::Ok(table)
        });
    }
    let setup = tokio::time::timeout(Duration::from_secs(300), barrier.wait()).await;
    if setup.is_err() {
        bail!("seating {} rooms took more than 300s", plan.rooms);
    }
    go.await?;
    let feeder = tokio::spawn(feed(Arc::clone(&permits), plan.rate, plan.measure));
    let _ = feeder.await;
    permits.close();
    let mut tables = Vec::with_capacity(plan.rooms);
    while let Some(result) = rooms.join_next().await {
        tables.push(result.context("a room task panicked")??);
    }
    let mut samples = samples
        .lock()
        .map_err(|_| anyhow::anyhow!("samples lock poisoned"))?;
    Ok((std::mem::take(&mut *samples), Seated { _tables: tables }))
}

/// Releases `rate` permits per second, evenly, for `duration`; never lets more than 100 ms worth pile up.
async fn feed(permits: Arc<Semaphore>, rate: u32, duration: Duration) {
    let tick = Duration::from_millis(10);
    let per_tick = (f64::from(rate) / 100.0).max(0.01);
    let cap = (f64::from(rate) / 10.0).max(1.0) as usize;
    let end = Instant::now() + duration;
    let mut owed = 0.0;
    let mut ticker = tokio::time::interval(tick);
    while Instant::now() < end {
        ticker.tick().await;
        owed += per_tick;
        let whole = owed.floor();
        owed -= whole;
        if permits.available_permits() < cap {
            permits.add_permits(whole as usize);
        }
    }
}

struct Table {
    clients: Vec<Client>,
    inbound: mpsc::UnboundedReceiver<(usize, Inbound)>,
    views: Vec<Option<Value>>,
    versions: Vec<u64>,
}

impl Table {
    async fn seat(
        room: usize,
        ports: [u16; 2],
        tokens: &Tokens,
        avalon: bool,
    ) -> anyhow::Result<Table> {
        let (sink, inbound) = mpsc::unbounded_channel();
        let mut clients = Vec::with_capacity(PLAYERS);
        for player in 0..PLAYERS {
            // Neighbours sit on different instances, so every room spans both.
            let port = ports[(room + player) % 2];
            clients.push(
                Client::connect(port, &tokens(room, player), player, Some(sink.clone())).await?,
            );
        }
        let mut table = Table {
            clients,
            inbound,
            views: vec![None; PLAYERS],
            versions: vec![0; PLAYERS],
        };
        if avalon {
            let created = table.call(0, "room:create", json!({})).await?;
            let code = created["room"]["code"]
                .as_str()
                .context("no room code")?
                .to_owned();
            for player in 1..PLAYERS {
                table
                    .call(player, "room:join", json!({ "code": code }))
                    .await?;
            }
            table.start_game().await?;
        } else {
            for player in 0..PLAYERS {
                table
                    .call(player, "join", json!({ "room": format!("room-{room}") }))
                    .await?;
            }
        }
        Ok(table)
    }

    fn absorb(&mut self, player: usize, inbound: &Inbound) {
        if let Inbound::Event { name, payload, .. } = inbound
            && name == "game:view"
        {
            let version = payload["version"].as_u64().unwrap_or(0);
            if version >= self.versions[player] {
                self.versions[player] = version;
                self.views[player] = Some(payload.clone());
            }
        }
    }

    /// Emits and waits for the acknowledgement, keeping views current meanwhile.
    async fn call(&mut self, player: usize, event: &str, payload: Value) -> anyhow::Result<Value> {
        let id = self.clients[player].emit(event, &payload);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (from, inbound) = tokio::time::timeout_at(deadline.into(), self.inbound.recv())
                .await
                .with_context(|| format!("no acknowledgement for {event}"))?
                .context("connection lost")?;
            self.absorb(from, &inbound);
            if let Inbound::Ack { id: acked, payload } = inbound
                && from == player
                && acked == id
            {
                return match payload.get("ok") {
                    Some(Value::Bool(false)) => bail!("{event} refused: {}", payload["error"]),
                    _ => Ok(payload.get("data").cloned().unwrap_or(Value::Null)),
                };
            }
        }
    }

    async fn start_game(&mut self) -> anyhow::Result<()> {
        for player in 0..PLAYERS {
            self.call(player, "room:ready", json!({ "ready": true }))
                .await?;
        }
        self.call(0, "game:start", json!({})).await?;
        Ok(())
    }

    async fn play(&mut self, permits: &Semaphore, samples: &Mutex<Samples>) -> anyhow::Result<()> {
        // A permit is spent only on a measured move; starting the next game or waiting for views hands it
        // back (by dropping it), so the achieved rate counts the moves actually fanned out.
        while let Ok(permit) = permits.acquire().await {
            let over = self.views[0]
                .as_ref()
                .is_some_and(|view| view["table"]["phase"] == "game_over");
            if over {
                self.start_game().await?;
                continue;
            }
            let Some((actor, event, payload)) = self.next_move() else {
                // Views still on their way: take them in, then try again.
                if let Ok(Some((from, inbound))) =
                    tokio::time::timeout(Duration::from_millis(50), self.inbound.recv()).await
                {
                    self.absorb(from, &inbound);
                }
                continue;
            };
            permit.forget();
            let before = self.versions.iter().copied().max().unwrap_or(0);
            let sent = Instant::now();
            let id = self.clients[actor].emit(event, &payload);
            self.collect(
                sent,
                |player, inbound| match inbound {
                    Inbound::Event { name, payload, .. } if name == "game:view" => {
                        payload["version"]
                            .as_u64()
                            .is_some_and(|version| version > before)
                            && player < PLAYERS
                    }
                    _ => false,
                },
                actor,
                id,
                samples,
            )
            .await?;
        }
        Ok(())
    }

    async fn broadcast(
        &mut self,
        room: usize,
        padding: usize,
        permits: &Semaphore,
        samples: &Mutex<Samples>,
    ) -> anyhow::Result<()> {
        let pad = "x".repeat(padding);
        let mut seq: u64 = 0;
        while let Ok(permit) = permits.acquire().await {
            permit.forget();
            seq += 1;
            let actor = usize::try_from(seq).unwrap_or(0) % PLAYERS;
            let payload = json!({ "room": format!("room-{room}"), "seq": seq, "pad": pad });
            let sent = Instant::now();
            let id = self.clients[actor].emit("bench:event", &payload);
            self.collect(
                sent,
                |_, inbound| match inbound {
                    Inbound::Event { name, payload, .. } if name == "bench:event" => {
                        payload["seq"].as_u64() == Some(seq)
                    }
                    _ => false,
                },
                actor,
                id,
                samples,
            )
            .await?;
        }
        Ok(())
    }

    /// Waits until every player received the event's result (per `delivered`) and the actor got its ack.
    async fn collect(
        &mut self,
        sent: Instant,
        delivered: impl Fn(usize, &Inbound) -> bool,
        actor: usize,
        ack_id: u64,
        samples: &Mutex<Samples>,
    ) -> anyhow::Result<()> {
        let mut got = [false; PLAYERS];
        let mut latencies = Vec::with_capacity(PLAYERS);
        let mut acked = false;
        let mut refused = false;
        let mut bytes = (0_u64, 0_u64);
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        while !(acked && got.iter().all(|seen| *seen)) {
            let Ok(next) = tokio::time::timeout_at(deadline.into(), self.inbound.recv()).await
            else {
                break;
            };
            let (from, inbound) = next.context("connection lost")?;
            if delivered(from, &inbound) && !got[from] {
                got[from] = true;
                if let Inbound::Event {
                    at, bytes: size, ..
                } = &inbound
                {
                    latencies.push(at.duration_since(sent).as_secs_f64() * 1000.0);
                    bytes.0 += *size as u64;
                    bytes.1 += 1;
                }
            }
            if let Inbound::Ack { id, payload } = &inbound
                && from == actor
                && *id == ack_id
            {
                acked = true;
                refused = payload.get("ok") == Some(&Value::Bool(false));
                if refused {
                    break;
                }
            }
            self.absorb(from, &inbound);
        }
        let mut samples = samples
            .lock()
            .map_err(|_| anyhow::anyhow!("samples lock poisoned"))?;
        if refused {
            samples.refused += 1;
            return Ok(());
        }
        samples.events += 1;
        samples.lost += got.iter().filter(|seen| !**seen).count() as u64;
        samples.latencies_ms.extend(latencies);
        samples.payload_bytes += bytes.0;
        samples.payloads += bytes.1;
        Ok(())
    }

    /// A legal move for whoever the game waits for: propose the next seats, approve, play Success, examine or
    /// name the first eligible player.
    fn next_move(&self) -> Option<(usize, &'static str, Value)> {
        for (seat, view) in self.views.iter().enumerate() {
            let Some(view) = view else { continue };
            let table = &view["table"];
            let pending = table["pending"].as_array()?;
            if !pending
                .iter()
                .any(|waiting| waiting.as_u64() == Some(seat as u64))
            {
                continue;
            }
            let players = table["players"].as_array()?.len();
            let quest = table["quest"].as_u64()? as usize;
            return Some(match table["phase"].as_str()? {
                "team_proposal" => {
                    let size = table["quest_track"][quest - 1]["team_size"].as_u64()? as usize;
                    let team: Vec<usize> =
                        (0..size).map(|offset| (seat + offset) % players).collect();
                    (seat, "game:propose", json!({ "team": team }))
                }
                "team_vote" => (seat, "game:vote", json!({ "approve": true })),
                "quest" => (seat, "game:quest", json!({ "success": true })),
                "lady_of_the_lake" => {
                    let held: Vec<u64> = table["lady"]["previous_holders"]
                        .as_array()?
                        .iter()
                        .filter_map(Value::as_u64)
                        .collect();
                    let target = (0..players)
                        .find(|other| *other != seat && !held.contains(&(*other as u64)))?;
                    (seat, "game:lady", json!({ "target": target }))
                }
                "assassination" => {
                    let known: Vec<u64> = view["knowledge"]
                        .as_array()?
                        .iter()
                        .filter_map(|entry| entry["seat"].as_u64())
                        .collect();
                    let target = (0..players)
                        .find(|other| *other != seat && !known.contains(&(*other as u64)))?;
                    (seat, "game:assassinate", json!({ "target": target }))
                }
                _ => continue,
            });
        }
        None
    }
}
