//! A room as stored (in Redis or in process): its members, options, chat tail and the game. Every change is a
//! pure method here that either applies completely or refuses with a [`WsError`], so the store can retry an
//! optimistic update by simply calling it again on fresh state.

use std::collections::VecDeque;
use std::time::Duration;

use avalon_game::{
    Action, Event, FinishedGame, GameSetup, GameState, MAX_PLAYERS, MIN_PLAYERS, Phase, PlayerView,
    RoomOptions, SetupWarning,
};
use serde::{Deserialize, Serialize};

use crate::error::WsError;

/// Chat messages kept with the room, so a reconnecting player sees the recent conversation.
pub const CHAT_HISTORY: usize = 50;

/// The signed-in user behind a socket (from the access token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    pub name: String,
    pub ready: bool,
    /// The socket currently carrying this member (`<instance>/<socket id>`), if any. A disconnect only
    /// clears it when it still names the disconnecting socket, so a quick reconnect through another
    /// instance is never undone by the old socket's late disconnect.
    pub connection: Option<String>,
    /// When the member last connected or disconnected (ms since the Unix epoch).
    pub seen_ms: u64,
}

impl Member {
    pub fn connected(&self) -> bool {
        self.connection.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: u64,
    pub user_id: String,
    pub name: String,
    pub text: String,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomGame {
    pub id: String,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    pub state: GameState,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Room {
    pub code: String,
    /// Bumped by every stored change; clients and instances drop anything older than what they have.
    pub version: u64,
    pub host: String,
    pub members: Vec<Member>,
    pub options: RoomOptions,
    pub game: Option<RoomGame>,
    pub chat: VecDeque<ChatMessage>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// Where the room stands, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Lobby,
    Playing,
    Finished,
}

/// What every member may see about the room (no secrets: the game part is in each player's own view).
#[derive(Debug, Clone, Serialize)]
pub struct RoomView {
    pub code: String,
    pub version: u64,
    pub stage: Stage,
    pub host: String,
    pub members: Vec<MemberView>,
    pub options: RoomOptions,
    pub warnings: Vec<&'static str>,
    pub game: Option<GameInfo>,
    pub chat: Vec<ChatMessage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub user_id: String,
    pub name: String,
    pub ready: bool,
    pub connected: bool,
    /// The seat in the current (or last) game, if the member plays in it.
    pub seat: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GameInfo {
    pub id: String,
    pub phase: Phase,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    pub outcome: Option<avalon_game::GameOutcome>,
}

/// What an accepted change produced besides the new state.
#[derive(Debug, Default)]
pub struct Effects {
    /// Public game events the change caused.
    pub events: Vec<Event>,
    /// Set when this change ended a game: the record for the API's history.
    pub finished: Option<FinishedGame>,
    /// Set when a chat message was posted.
    pub chat: Option<ChatMessage>,
    /// The last member left: the room is deleted.
    pub deleted: bool,
    /// A join took an existing seat back.
    pub resumed: bool,
}

impl Room {
    pub fn new(
        code: String,
        host: &User,
        connection: &str,
        options: RoomOptions,
        now_ms: u64,
    ) -> Room {
        Room {
            code,
            version: 0,
            host: host.id.clone(),
            members: vec![Member::joining(host, connection, now_ms)],
            options,
            game: None,
            chat: VecDeque::new(),
            created_ms: now_ms,
            updated_ms: now_ms,
        }
    }

    pub fn stage(&self) -> Stage {
        match &self.game {
            None => Stage::Lobby,
            Some(game) if game.state.is_over() => Stage::Finished,
            Some(_) => Stage::Playing,
        }
    }

    pub fn is_playing(&self) -> bool {
        self.stage() == Stage::Playing
    }

    fn member_mut(&mut self, user_id: &str) -> Result<&mut Member, WsError> {
        self.members
            .iter_mut()
            .find(|member| member.user_id == user_id)
            .ok_or_else(not_in_room)
    }

    /// Joins as a new member, or takes an existing seat back (same user): `Ok(true)` when resumed.
    pub fn join(&mut self, user: &User, connection: &str, now_ms: u64) -> Result<bool, WsError> {
        if let Ok(member) = self.member_mut(&user.id) {
            member.connection = Some(connection.to_owned());
            member.seen_ms = now_ms;
            return Ok(true);
        }
        if self.is_playing() {
            return Err(WsError::new(
                "GAME_IN_PROGRESS",
                "a game is being played in this room; only its players can rejoin",
            ));
        }
        if self.members.len() >= MAX_PLAYERS {
            return Err(WsError::new(
                "ROOM_FULL",
                format!("the room already has {MAX_PLAYERS} members"),
            ));
        }
        self.members.push(Member::joining(user, connection, now_ms));
        Ok(false)
    }

    /// Takes back the seat `user` still holds (a returning player); refused with NOT_IN_ROOM when the seat
    /// was freed meanwhile, so a reconnect never turns into a new membership on its own.
    pub fn rejoin(&mut self, user: &User, connection: &str, now_ms: u64) -> Result<(), WsError> {
        let member = self.member_mut(&user.id)?;
        member.connection = Some(connection.to_owned());
        member.seen_ms = now_ms;
        Ok(())
    }

    /// Leaves for good. Refused while the member plays in a running game (they may disconnect and come back).
    pub fn leave(&mut self, user_id: &str) -> Result<Effects, WsError> {
        self.member_mut(user_id)?;
        if self.seat_of(user_id).is_some() && self.is_playing() {
            return Err(WsError::new(
                "GAME_IN_PROGRESS",
                "you play in the running game; you can disconnect and rejoin, but not leave",
            ));
        }
        self.remove_member(user_id);
        Ok(Effects {
            deleted: self.members.is_empty(),
            ..Effects::default()
        })
    }

    fn remove_member(&mut self, user_id: &str) {
        self.members.retain(|member| member.user_id != user_id);
        if self.host == user_id
            && let Some(next) = self
                .members
                .iter()
                .find(|member| member.connected())
                .or(self.members.first())
        {
            self.host = next.user_id.clone();
        }
    }

    /// The socket `connection` of `user_id` went away; `Ok(false)` when the member is already carried by
    /// another socket (nothing changes).
    pub fn disconnect(
        &mut self,
        user_id: &str,
        connection: &str,
        now_ms: u64,
    ) -> Result<bool, WsError> {
        let member = self.member_mut(user_id)?;
        if member.connection.as_deref() != Some(connection) {
            return Ok(false);
        }
        member.connection = None;
        member.seen_ms = now_ms;
        Ok(true)
    }

    /// Drops lobby members who stayed away longer than the reconnect window. Players of a running game
    /// keep their seats: the game cannot go on without them.
    pub fn expire_absent(&mut self, now_ms: u64, window: Duration) -> Vec<String> {
        if self.is_playing() {
            return Vec::new();
        }
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|member| {
                !member.connected() && now_ms.saturating_sub(member.seen_ms) > window_ms
            })
            .map(|member| member.user_id.clone())
            .collect();
        for user_id in &gone {
            self.remove_member(user_id);
        }
        gone
    }

    pub fn set_ready(&mut self, user_id: &str, ready: bool) -> Result<(), WsError> {
        self.refuse_while_playing()?;
        self.member_mut(user_id)?.ready = ready;
        Ok(())
    }

    pub fn set_options(&mut self, user_id: &str, options: RoomOptions) -> Result<(), WsError> {
        self.member_mut(user_id)?;
        self.require_host(user_id)?;
        self.refuse_while_playing()?;
        if self.options != options {
            self.options = options;
            // Readiness was given for the old rules.
            for member in &mut self.members {
                member.ready = false;
            }
        }
        Ok(())
    }

    /// Deals a new game to the current members in their join order. `maintenance` refuses new games.
    pub fn start(&mut self, user_id: &str, start: GameStart) -> Result<Effects, WsError> {
        self.member_mut(user_id)?;
        self.require_host(user_id)?;
        self.refuse_while_playing()?;
        if let Some(message) = start.maintenance {
            return Err(WsError::new("MAINTENANCE", message));
        }
        let count = self.members.len();
        if !(MIN_PLAYERS..=MAX_PLAYERS).contains(&count) {
            return Err(WsError::new(
                "BAD_PLAYER_COUNT",
                format!(
                    "Avalon needs {MIN_PLAYERS} to {MAX_PLAYERS} players, this room has {count}"
                ),
            ));
        }
        if let Some(absent) = self.members.iter().find(|member| !member.connected()) {
            return Err(WsError::new(
                "PLAYER_DISCONNECTED",
                format!("{} is disconnected", absent.name),
            ));
        }
        if let Some(waiting) = self.members.iter().find(|member| !member.ready) {
            return Err(WsError::new(
                "NOT_ALL_READY",
                format!("{} is not ready", waiting.name),
            ));
        }
        let players = self.members.iter().map(|member| member.user_id.clone());
        let state = GameState::new(GameSetup::new(players, self.options, start.seed))?;
        let events = state.log().to_vec();
        self.game = Some(RoomGame {
            id: start.game_id,
            started_ms: start.now_ms,
            finished_ms: None,
            state,
        });
        Ok(Effects {
            events,
            ..Effects::default()
        })
    }

    /// A move in the running game on behalf of `user_id`.
    pub fn act(&mut self, user_id: &str, action: Action, now_ms: u64) -> Result<Effects, WsError> {
        self.member_mut(user_id)?;
        let code = self.code.clone();
        let Some(game) = self.game.as_mut() else {
            return Err(WsError::new(
                "NO_GAME",
                "no game has been started in this room",
            ));
        };
        let seat = game
            .state
            .seat_of(user_id)
            .ok_or_else(|| WsError::new("NOT_A_PLAYER", "you do not play in this game"))?;
        // A finished game answers its players GAME_OVER (from the engine) until the next one starts.
        let events = game.state.apply(seat, action)?;
        let mut effects = Effects {
            events,
            ..Effects::default()
        };
        if game.state.is_over() {
            game.finished_ms = Some(now_ms);
            effects.finished =
                game.state
                    .summary(game.started_ms, now_ms)
                    .map(|summary| FinishedGame {
                        game_id: game.id.clone(),
                        room_code: code,
                        summary,
                    });
            for member in &mut self.members {
                member.ready = false;
            }
        }
        Ok(effects)
    }

    pub fn chat(
        &mut self,
        user_id: &str,
        text: &str,
        max_chars: usize,
        now_ms: u64,
    ) -> Result<Effects, WsError> {
        let name = self.member_mut(user_id)?.name.clone();
        let text = text.trim();
        if text.is_empty() {
            return Err(WsError::new("CHAT_EMPTY", "a chat message needs some text"));
        }
        let length = text.chars().count();
        if length > max_chars {
            return Err(WsError::new(
                "CHAT_TOO_LONG",
                format!("a chat message has at most {max_chars} characters, this one has {length}"),
            ));
        }
        let message = ChatMessage {
            id: self.version + 1,
            user_id: user_id.to_owned(),
            name,
            text: text.to_owned(),
            at_ms: now_ms,
        };
        self.chat.push_back(message.clone());
        while self.chat.len() > CHAT_HISTORY {
            self.chat.pop_front();
        }
        Ok(Effects {
            chat: Some(message),
            ..Effects::default()
        })
    }

    pub fn seat_of(&self, user_id: &str) -> Option<usize> {
        self.game
            .as_ref()
            .and_then(|game| game.state.seat_of(user_id))
    }

    /// This user's own game view, if they play in the room's current (or last) game.
    pub fn player_view(&self, user_id: &str) -> Option<PlayerView> {
        self.game
            .as_ref()
            .and_then(|game| game.state.view_for_player(user_id).ok())
    }

    pub fn view(&self) -> RoomView {
        RoomView {
            code: self.code.clone(),
            version: self.version,
            stage: self.stage(),
            host: self.host.clone(),
            members: self
                .members
                .iter()
                .map(|member| MemberView {
                    user_id: member.user_id.clone(),
                    name: member.name.clone(),
                    ready: member.ready,
                    connected: member.connected(),
                    seat: self.seat_of(&member.user_id),
                })
                .collect(),
            options: self.options,
            warnings: self
                .options
                .warnings()
                .iter()
                .map(SetupWarning::code)
                .collect(),
            game: self.game.as_ref().map(|game| GameInfo {
                id: game.id.clone(),
                phase: game.state.phase(),
                started_ms: game.started_ms,
                finished_ms: game.finished_ms,
                outcome: game.state.outcome(),
            }),
            chat: self.chat.iter().cloned().collect(),
        }
    }

    fn require_host(&self, user_id: &str) -> Result<(), WsError> {
        if self.host == user_id {
            Ok(())
        } else {
            Err(WsError::new("NOT_HOST", "only the room's host can do this"))
        }
    }

    fn refuse_while_playing(&self) -> Result<(), WsError> {
        if self.is_playing() {
            Err(WsError::new(
                "GAME_IN_PROGRESS",
                "not while a game is being played",
            ))
        } else {
            Ok(())
        }
    }
}

/// The caller-supplied parts of starting a game, which keep [`Room::start`] pure.
#[derive(Debug, Clone)]
pub struct GameStart {
    pub seed: u64,
    pub game_id: String,
    pub now_ms: u64,
    /// `Some(message)` while maintenance is on.
    pub maintenance: Option<String>,
}

impl Member {
    fn joining(user: &User, connection: &str, now_ms: u64) -> Member {
        Member {
            user_id: user.id.clone(),
            name: user.name.clone(),
            ready: false,
            connection: Some(connection.to_owned()),
            seen_ms: now_ms,
        }
    }
}

fn not_in_room() -> WsError {
    WsError::new("NOT_IN_ROOM", "you are not a member of this room")
}

#[cfg(test)]
mod tests;
