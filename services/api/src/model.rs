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

    /// Opaque to clients: `<ms>.<game id as lower-case hex>`, so the text needs no escaping in a query and
    /// its exact rule can be published ([`crate::rules::CURSOR`]).
    pub fn encode(&self) -> String {
        let hex: String = self
            .game_id
            .bytes()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("{}.{hex}", self.finished_at_ms)
    }

    /// Any text of the published form is a position in history order (a game id that is not UTF-8 is read
    /// leniently: it still names a place between two real ids).
    pub fn decode(text: &str) -> Option<GameCursor> {
        let (ms, hex) = text.split_once('.')?;
        if ms.is_empty() || ms.len() > 19 || !ms.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if hex.len() % 2 != 0 {
            return None;
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|at| {
                hex.get(at..at + 2)
                    .filter(|pair| pair.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()?;
        Some(GameCursor {
            finished_at_ms: ms.parse().ok()?,
            game_id: String::from_utf8_lossy(&bytes).into_owned(),
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
        assert_eq!(cursor.encode(), "1700000000000.672d312e32");
        assert_eq!(GameCursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(GameCursor::decode("%%%"), None);
        assert_eq!(GameCursor::decode("bm90LWEtY3Vyc29y"), None);
        assert_eq!(GameCursor::decode("12.6"), None);
        assert_eq!(GameCursor::decode("12.6G"), None);
        assert_eq!(GameCursor::decode(".67"), None);
    }

    #[test]
    fn every_cursor_the_rule_accepts_decodes_and_every_encoding_follows_the_rule() {
        for text in [
            "0.",
            "9999999999999999999.ff",
            "1.00",
            "42.e4ba9ae7919fe78e8b",
        ] {
            assert!(crate::rules::CURSOR.matches(text).unwrap());
            assert!(GameCursor::decode(text).is_some(), "{text}");
        }
        let cursor = GameCursor {
            finished_at_ms: u64::MAX / 2,
            game_id: "亚瑟-0f3c".to_owned(),
        };
        assert!(crate::rules::CURSOR.matches(&cursor.encode()).unwrap());
    }
}
