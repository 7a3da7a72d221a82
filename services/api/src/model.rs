//! What the API stores: users, refresh tokens and finished games.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use avalon_game::{FinishedGame, GameSummary, Role, Side};
use serde::{Deserialize, Serialize};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    /// The WeChat openid (or the dev-login openid). Never shown to other players.
    pub openid: String,
    pub nickname: String,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl User {
    pub fn new(openid: &str, now_ms: u64) -> User {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let nickname = format!("Knight-{}", &id[..6]);
        User {
            id,
            openid: openid.to_owned(),
            nickname,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }
}

/// One refresh token, stored by the SHA-256 of its value: a database leak reveals no usable token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub token_hash: String,
    /// The login session; every rotation stays in the family, and a replay revokes all of it.
    pub family: String,
    pub user_id: String,
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
    pub used: bool,
    pub revoked: bool,
}

/// The result of atomically marking a refresh token used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed {
    /// It was unused; it is now used (the record shows it as it was).
    Fresh(RefreshRecord),
    /// It had been used before: a replay.
    AlreadyUsed(RefreshRecord),
    Unknown,
}

/// A finished game as kept for history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGame {
    pub game_id: String,
    pub room_code: String,
    pub player_ids: Vec<String>,
    pub finished_at_ms: u64,
    pub summary: GameSummary,
}

impl From<FinishedGame> for StoredGame {
    fn from(game: FinishedGame) -> StoredGame {
        let player_ids = game
            .summary
            .players
            .iter()
            .map(|player| player.player_id.as_ref().to_owned())
            .collect();
        StoredGame {
            game_id: game.game_id,
            room_code: game.room_code,
            player_ids,
            finished_at_ms: game.summary.finished_at_ms,
            summary: game.summary,
        }
    }
}

/// Position in a user's history, newest first: games strictly older than this are on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameCursor {
    pub finished_at_ms: u64,
    pub game_id: String,
}

impl GameCursor {
    pub fn of(game: &StoredGame) -> GameCursor {
        GameCursor {
            finished_at_ms: game.finished_at_ms,
            game_id: game.game_id.clone(),
        }
    }

    /// Opaque to clients; `<ms>.<game id>` in URL-safe base64.
    pub fn encode(&self) -> String {
        use base64::Engine;
        let raw = format!("{}.{}", self.finished_at_ms, self.game_id);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(text: &str) -> Option<GameCursor> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (ms, id) = raw.split_once('.')?;
        Some(GameCursor {
            finished_at_ms: ms.parse().ok()?,
            game_id: id.to_owned(),
        })
    }

    /// True when `game` comes after this cursor in history order (newest first, then by game id).
    pub fn precedes(&self, game: &StoredGame) -> bool {
        game.finished_at_ms < self.finished_at_ms
            || (game.finished_at_ms == self.finished_at_ms && game.game_id > self.game_id)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub played: u32,
    pub wins: u32,
}

impl Tally {
    fn add(&mut self, won: bool) {
        self.played += 1;
        self.wins += u32::from(won);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub games_played: u32,
    pub wins: u32,
    pub losses: u32,
    /// Wins divided by games played, 0 when none.
    pub win_rate: f64,
    pub by_side: BTreeMap<String, Tally>,
    pub by_role: BTreeMap<String, Tally>,
}

impl Stats {
    pub fn of(user_id: &str, games: &[StoredGame]) -> Stats {
        let mut stats = Stats::default();
        for game in games {
            let Some(me) = game
                .summary
                .players
                .iter()
                .find(|player| player.player_id.as_ref() == user_id)
            else {
                continue;
            };
            stats.games_played += 1;
            if me.won {
                stats.wins += 1;
            } else {
                stats.losses += 1;
            }
            stats
                .by_side
                .entry(side_name(me.side))
                .or_default()
                .add(me.won);
            stats
                .by_role
                .entry(role_name(me.role))
                .or_default()
                .add(me.won);
        }
        if stats.games_played > 0 {
            stats.win_rate = f64::from(stats.wins) / f64::from(stats.games_played);
        }
        stats
    }
}

fn side_name(side: Side) -> String {
    serde_json::to_value(side)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{side:?}"))
}

fn role_name(role: Role) -> String {
    serde_json::to_value(role)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{role:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = GameCursor {
            finished_at_ms: 1_700_000_000_000,
            game_id: "g-1.2".to_owned(),
        };
        assert_eq!(GameCursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(GameCursor::decode("%%%"), None);
        assert_eq!(GameCursor::decode("bm90LWEtY3Vyc29y"), None);
    }
}
