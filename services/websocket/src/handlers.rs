//! Client → server events. Each one is acknowledged with `{ok: true, data}` or
//! `{ok: false, error: {code, message}}`; the resulting state reaches every player through the fan-out.
//! Every event — an unknown one included — passes the same steps ([`admit`]): session, resume wait, rate
//! limit, then the one payload decoder ([`payload::decode`]) into the event's own payload type.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use avalon_game::{Action, RoomOptions, Seat};
use rand::Rng;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use socketioxide::ParserError;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};

use crate::app::{App, session_of};
use crate::error::WsError;
use crate::fanout::{close_room, push_state};
use crate::payload::{self, EventArgs, NoFields};
use crate::room::{Effects, GameStart, Room};
use crate::session::{Session, now_ms};
use crate::store::{Committed, StoreError};

/// How long an event waits for the connect handler to restore a returning player's room.
const RESUME_WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Registers the client events on a freshly connected socket: one handler that dispatches on the event's
/// name, not one per event. Every handler registered is a boxed closure kept for the socket's whole life,
/// so fourteen of them cost each idle connection about 0.9 KiB (docs/protocol.md §9); the names and what
/// each event does are unchanged.
pub fn register(socket: &SocketRef, app: &Arc<App>) {
    let app = Arc::clone(app);
    socket.on_fallback(
        move |socket: SocketRef,
              Event(name): Event,
              TryData(args): TryData<EventArgs>,
              ack: AckSender| {
            let app = Arc::clone(&app);
            async move {
                let started = Instant::now();
                let (event, result) = dispatch(&app, socket, &name, args).await;
                answer(&app, event, started, result, ack);
            }
        },
    );
}

/// Runs the client event `name`; returns the name it is counted under in the metrics with its result.
async fn dispatch(
    app: &Arc<App>,
    socket: SocketRef,
    name: &str,
    args: Result<EventArgs, ParserError>,
) -> (&'static str, Result<Value, WsError>) {
    macro_rules! events {
        ($($event:literal => $handler:expr),* $(,)?) => {
            match name {
                $($event => ($event, run(app, socket, $event, args, $handler).await),)*
                _ => ("unknown", unknown(app, socket, name, args).await),
            }
        };
    }
    events! {
        "room:create" => create_room,
        "room:join" => join_room,
        "room:leave" => leave_room,
        "room:ready" => set_ready,
        "room:options" => set_options,
        "game:start" => start_game,
        "game:propose" => propose,
        "game:vote" => vote,
        "game:quest" => play_quest_card,
        "game:assassinate" => assassinate,
        "game:lady" => lady_examine,
        "chat:send" => chat,
        "sync" => sync,
    }
}

/// One handler call: the app, the socket and its session.
pub struct Call {
    pub app: Arc<App>,
    pub socket: SocketRef,
    pub session: Arc<Session>,
}

impl Call {
    fn current_room(&self) -> Result<String, WsError> {
        self.session
            .room()
            .ok_or_else(|| WsError::new("NOT_IN_ROOM", "join or create a room first"))
    }

    /// Applies a change to the socket's room; the new state is pushed to this socket at once (the others
    /// get it from the bus).
    async fn change<F>(&self, code: &str, change: F) -> Result<Committed, WsError>
    where
        F: FnMut(&mut Room) -> Result<Effects, WsError> + Send,
    {
        let window = self.app.ws().reconnect_window;
        let now = now_ms();
        let mut change = change;
        let result = self
            .app
            .store
            .update(code, self.app.room_ttl(), now, |room| {
                room.expire_absent(now, window);
                change(room)
            })
            .await;
        match result {
            Ok(committed) => {
                if let Some(room) = &committed.room {
                    push_state(&self.socket, &self.session, room);
                }
                Ok(committed)
            }
            Err(StoreError::NotFound(_)) if self.session.room().as_deref() == Some(code) => {
                close_room(&self.app, &self.socket, code, "the room expired");
                Err(WsError::new(
                    "ROOM_NOT_FOUND",
                    format!("room {code} no longer exists"),
                ))
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn act(&self, action: Action) -> Result<Value, WsError> {
        let code = self.current_room()?;
        let user_id = self.session.user.id.clone();
        let committed = self
            .change(&code, |room| room.act(&user_id, action.clone(), now_ms()))
            .await?;
        if let Some(record) = &committed.effects.finished {
            self.app.metrics.games_finished.inc();
            tracing::info!(game_id = %record.game_id, room = %record.room_code, "game finished");
        }
        Ok(json!({
            "version": committed.room.as_ref().map(|room| room.version),
            "events": committed.effects.events,
        }))
    }
}

/// One known event: admission, then its payload decoded into the type `P` the handler declares.
async fn run<P, F, Fut>(
    app: &Arc<App>,
    socket: SocketRef,
    event: &'static str,
    args: Result<EventArgs, ParserError>,
    handler: F,
) -> Result<Value, WsError>
where
    P: DeserializeOwned,
    F: FnOnce(Call, P) -> Fut,
    Fut: Future<Output = Result<Value, WsError>>,
{
    let (call, args) = admit(app, socket, event, args).await?;
    handler(call, payload::decode::<P>(args)?).await
}

/// Any event without a handler: refused with `UNKNOWN_EVENT`, after the same admission as known events so
/// unknown ones cannot flood either.
async fn unknown(
    app: &Arc<App>,
    socket: SocketRef,
    name: &str,
    args: Result<EventArgs, ParserError>,
) -> Result<Value, WsError> {
    admit(app, socket, "unknown", args).await?;
    let shown: String = name.chars().take(64).collect();
    Err(WsError::new(
        "UNKNOWN_EVENT",
        format!("there is no client event `{shown}` (docs/protocol.md §2 lists them)"),
    ))
}

/// What every event goes through before its payload is decoded: the socket's session, the wait for a
/// returning player's seat, activity, the user's event budget and a readable argument list.
async fn admit(
    app: &Arc<App>,
    socket: SocketRef,
    event: &str,
    args: Result<EventArgs, ParserError>,
) -> Result<(Call, EventArgs), WsError> {
    let session = session_of(&socket).ok_or_else(|| WsError::internal("socket has no session"))?;
    session.resumed(RESUME_WAIT_LIMIT).await;
    session.touch();
    let limit = app.live.get().rate_limit_user;
    if event != "sync" && !session.allow_action(limit) {
        return Err(WsError::new(
            "RATE_LIMITED",
            format!("at most {limit} events per minute per user; slow down"),
        ));
    }
    let args = args.map_err(|err| WsError::bad_request(format!("unreadable payload: {err}")))?;
    let call = Call {
        app: Arc::clone(app),
        socket,
        session,
    };
    Ok((call, args))
}

/// Acknowledges the event (if the client asked) and records it in the metrics.
fn answer(
    app: &App,
    event: &'static str,
    started: Instant,
    result: Result<Value, WsError>,
    ack: AckSender,
) {
    let code = result.as_ref().map_or_else(|err| err.code, |_| "OK");
    app.metrics.observe_event(event, code, started.elapsed());
    let reply = match result {
        Ok(data) => json!({ "ok": true, "data": data }),
        Err(error) => json!({ "ok": false, "error": error }),
    };
    let _ = ack.send(&reply);
}

#[derive(Deserialize)]
struct CreateRoom {
    #[serde(default)]
    options: RoomOptions,
}

/// Room codes: 6 characters without look-alikes (no 0/O, 1/I/L), easy to read out at a table.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_LENGTH: usize = 6;

fn new_room_code() -> String {
    let mut rng = rand::rng();
    (0..CODE_LENGTH)
        .map(|_| char::from(CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())]))
        .collect()
}

async fn refuse_if_in_room(call: &Call) -> Result<(), WsError> {
    match call.session.room() {
        Some(code) => Err(WsError::new(
            "ALREADY_IN_ROOM",
            format!("you are in room {code}; leave it first"),
        )),
        None => Ok(()),
    }
}

async fn create_room(call: Call, request: CreateRoom) -> Result<Value, WsError> {
    refuse_if_in_room(&call).await?;
    for _ in 0..8 {
        let code = new_room_code();
        let room = Room::new(
            code.clone(),
            &call.session.user,
            &call.session.connection,
            request.options,
            now_ms(),
        );
        // Joined before the room exists, so the first published state cannot miss this socket.
        call.app
            .rooms
            .place(&call.socket, &call.session, Some(&code));
        match call.app.store.create(&room, call.app.room_ttl()).await {
            Ok(true) => {
                call.app
                    .store
                    .set_user_room(&call.session.user.id, Some(&code), call.app.room_ttl())
                    .await?;
                push_state(&call.socket, &call.session, &room);
                return Ok(json!({ "room": room.view() }));
            }
            Ok(false) => {}
            Err(err) => {
                call.app.rooms.place(&call.socket, &call.session, None);
                return Err(err.into());
            }
        }
        call.app.rooms.place(&call.socket, &call.session, None);
    }
    Err(WsError::new(
        "BUSY",
        "could not find a free room code; try again",
    ))
}

#[derive(Deserialize)]
struct JoinRoom {
    code: String,
}

async fn join_room(call: Call, request: JoinRoom) -> Result<Value, WsError> {
    let code = request.code.trim().to_ascii_uppercase();
    if code.len() != CODE_LENGTH || !code.bytes().all(|byte| CODE_ALPHABET.contains(&byte)) {
        return Err(WsError::bad_request(format!(
            "code must be {CODE_LENGTH} characters from {}",
            String::from_utf8_lossy(CODE_ALPHABET)
        )));
    }
    if call.session.room().as_deref() != Some(code.as_str()) {
        refuse_if_in_room(&call).await?;
    }
    let committed = enter(&call, &code, Entry::Join).await?;
    let resumed = committed.effects.resumed;
    let room = committed.room.map(|room| room.view());
    Ok(json!({ "room": room, "resumed": resumed }))
}

/// How a socket enters a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// `room:join`: back in its seat, or as a new member.
    Join,
    /// A returning player put back by the connect handler: only into the seat it still holds. A lobby
    /// seat freed after WS_RECONNECT_WINDOW stays freed (NOT_IN_ROOM); `room:join` can take a new one.
    Resume,
}

/// Puts the socket in room `code` as `entry` says.
pub async fn enter(call: &Call, code: &str, entry: Entry) -> Result<Committed, WsError> {
    let was = call.session.room();
    call.app
        .rooms
        .place(&call.socket, &call.session, Some(code));
    let user = call.session.user.clone();
    let connection = call.session.connection.clone();
    let result = call
        .change(code, |room| {
            let resumed = match entry {
                Entry::Join => room.join(&user, &connection, now_ms())?,
                Entry::Resume => {
                    room.rejoin(&user, &connection, now_ms())?;
                    true
                }
            };
            Ok(Effects {
                resumed,
                ..Effects::default()
            })
        })
        .await;
    match result {
        Ok(committed) => {
            call.app
                .store
                .set_user_room(&user.id, Some(code), call.app.room_ttl())
                .await?;
            Ok(committed)
        }
        Err(err) => {
            if was.as_deref() != Some(code) {
                call.app
                    .rooms
                    .place(&call.socket, &call.session, was.as_deref());
            }
            Err(err)
        }
    }
}

async fn leave_room(call: Call, _: NoFields) -> Result<Value, WsError> {
    let code = call.current_room()?;
    let user_id = call.session.user.id.clone();
    match call.change(&code, |room| room.leave(&user_id)).await {
        Ok(_) => {}
        // Gone already: leaving is done.
        Err(err) if err.code == "ROOM_NOT_FOUND" => {}
        Err(err) => return Err(err),
    }
    call.app.rooms.place(&call.socket, &call.session, None);
    call.app
        .store
        .set_user_room(&user_id, None, call.app.room_ttl())
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct Ready {
    ready: bool,
}

async fn set_ready(call: Call, request: Ready) -> Result<Value, WsError> {
    let code = call.current_room()?;
    let user_id = call.session.user.id.clone();
    let committed = call
        .change(&code, |room| {
            room.set_ready(&user_id, request.ready)
                .map(|()| Effects::default())
        })
        .await?;
    Ok(json!({ "version": committed.room.map(|room| room.version) }))
}

#[derive(Deserialize)]
struct Options {
    options: RoomOptions,
}

async fn set_options(call: Call, request: Options) -> Result<Value, WsError> {
    let code = call.current_room()?;
    let user_id = call.session.user.id.clone();
    let committed = call
        .change(&code, |room| {
            room.set_options(&user_id, request.options)
                .map(|()| Effects::default())
        })
        .await?;
    Ok(json!({ "version": committed.room.map(|room| room.version) }))
}

async fn start_game(call: Call, _: NoFields) -> Result<Value, WsError> {
    let code = call.current_room()?;
    let user_id = call.session.user.id.clone();
    let maintenance = call.app.maintenance();
    let start = GameStart {
        seed: rand::rng().random(),
        game_id: uuid::Uuid::new_v4().to_string(),
        now_ms: now_ms(),
        maintenance: maintenance.enabled.then_some(maintenance.message),
    };
    let committed = call
        .change(&code, |room| room.start(&user_id, start.clone()))
        .await?;
    let game_id = committed
        .room
        .as_ref()
        .and_then(|room| room.game.as_ref())
        .map(|game| game.id.clone());
    Ok(json!({ "game_id": game_id, "events": committed.effects.events }))
}

#[derive(Deserialize)]
struct Propose {
    team: Vec<Seat>,
}

async fn propose(call: Call, request: Propose) -> Result<Value, WsError> {
    call.act(Action::Propose { team: request.team }).await
}

#[derive(Deserialize)]
struct Vote {
    approve: bool,
}

async fn vote(call: Call, request: Vote) -> Result<Value, WsError> {
    call.act(Action::Vote {
        approve: request.approve,
    })
    .await
}

#[derive(Deserialize)]
struct QuestCard {
    success: bool,
}

async fn play_quest_card(call: Call, request: QuestCard) -> Result<Value, WsError> {
    call.act(Action::PlayQuestCard {
        success: request.success,
    })
    .await
}

#[derive(Deserialize)]
struct Target {
    target: Seat,
}

async fn assassinate(call: Call, request: Target) -> Result<Value, WsError> {
    call.act(Action::Assassinate {
        target: request.target,
    })
    .await
}

async fn lady_examine(call: Call, request: Target) -> Result<Value, WsError> {
    call.act(Action::LadyExamine {
        target: request.target,
    })
    .await
}

#[derive(Deserialize)]
struct Chat {
    text: String,
}

async fn chat(call: Call, request: Chat) -> Result<Value, WsError> {
    let code = call.current_room()?;
    if !call.session.allow_chat() {
        return Err(WsError::new(
            "CHAT_RATE_LIMITED",
            format!(
                "at most {} chat messages per minute",
                call.app.ws().chat_per_minute
            ),
        ));
    }
    let max = usize::try_from(call.app.ws().chat_max_length).unwrap_or(usize::MAX);
    let user_id = call.session.user.id.clone();
    let committed = call
        .change(&code, |room| {
            room.chat(&user_id, &request.text, max, now_ms())
        })
        .await?;
    Ok(json!({ "message": committed.effects.chat }))
}

/// Sends the full current state again (e.g. after the client lost track).
async fn sync(call: Call, _: NoFields) -> Result<Value, WsError> {
    let Some(code) = call.session.room() else {
        return Ok(json!({ "room": null, "view": null }));
    };
    let room = call.app.store.load(&code).await.map_err(WsError::from)?;
    match room {
        Some(room) => {
            // Placed again in the room it is in, so the state below is pushed in full — unless a
            // `room:leave` or the room's closing overtook the load.
            if !call
                .app
                .rooms
                .place_if_in(&code, &call.socket, &call.session, Some(&code))
            {
                return Ok(json!({ "room": null, "view": null }));
            }
            push_state(&call.socket, &call.session, &room);
            Ok(json!({ "room": room.view(), "view": room.player_view(&call.session.user.id) }))
        }
        None => {
            close_room(&call.app, &call.socket, &code, "the room expired");
            Ok(json!({ "room": null, "view": null }))
        }
    }
}
