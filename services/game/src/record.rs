//! The record of a finished game that the game server hands to the API for players' history.
//!
//! Transport (agreed between avalon-ws and avalon-api): with Redis, `XADD avalon:finished_games * record
//! <json>` and the API reads the stream with a consumer group; embedded (development, no Redis), one JSON
//! object per line appended to `<DATA_DIR>/finished-games.jsonl`, which the API tails.

use serde::{Deserialize, Serialize};

use crate::view::GameSummary;

/// The Redis stream finished games are appended to.
pub const FINISHED_GAMES_STREAM: &str = "avalon:finished_games";
/// The field of each stream entry that holds the JSON record.
pub const FINISHED_GAMES_FIELD: &str = "record";
/// The spool file name below `DATA_DIR` in embedded mode.
pub const FINISHED_GAMES_SPOOL: &str = "finished-games.jsonl";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishedGame {
    /// Unique per game (a room may host several games); the API stores each id once, so redelivery is safe.
    pub game_id: String,
    pub room_code: String,
    /// Player ids are the API's user ids (the JWT `sub`).
    pub summary: GameSummary,
}
