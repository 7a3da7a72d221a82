//! The signed-in user's game history and statistics.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, Authenticated};
use crate::model::{GameCursor, Stats, StoredGame};
use crate::rules::CURSOR;
use crate::state::AppState;

pub const DEFAULT_PAGE: usize = 20;
pub const MAX_PAGE: usize = 50;
/// Games read for statistics; beyond this the figures cover the most recent games only.
pub const STATS_WINDOW: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// One line of history, from the caller's seat.
#[derive(Serialize)]
pub struct HistoryItem {
    game_id: String,
    room_code: String,
    finished_at_ms: u64,
    duration_ms: u64,
    players: usize,
    winner: serde_json::Value,
    reason: serde_json::Value,
    role: serde_json::Value,
    side: serde_json::Value,
    won: bool,
}

#[derive(Serialize)]
pub struct HistoryPage {
    games: Vec<HistoryItem>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

fn item(user_id: &str, game: &StoredGame) -> Option<HistoryItem> {
    let me = game
        .summary
        .players
        .iter()
        .find(|player| player.player_id.as_ref() == user_id)?;
    let value = |v: serde_json::Result<serde_json::Value>| v.unwrap_or(serde_json::Value::Null);
    Some(HistoryItem {
        game_id: game.game_id.clone(),
        room_code: game.room_code.clone(),
        finished_at_ms: game.finished_at_ms,
        duration_ms: game.summary.duration_ms,
        players: game.summary.players.len(),
        winner: value(serde_json::to_value(game.summary.outcome.winner)),
        reason: value(serde_json::to_value(game.summary.outcome.reason)),
        role: value(serde_json::to_value(me.role)),
        side: value(serde_json::to_value(me.side)),
        won: me.won,
    })
}

pub async fn list(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<HistoryPage>> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "INVALID_QUERY",
            format!("limit must be from 1 to {MAX_PAGE}"),
        ));
    }
    let cursor = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => {
            CURSOR.check(text)?;
            Some(GameCursor::decode(text).ok_or_else(|| CURSOR.refusal(CURSOR.message))?)
        }
    };
    // One extra tells whether another page exists.
    let mut games = state
        .store
        .games_of(&claims.sub, limit + 1, cursor.as_ref())
        .await?;
    let more = games.len() > limit;
    games.truncate(limit);
    let next_cursor = more
        .then(|| games.last().map(|game| GameCursor::of(game).encode()))
        .flatten();
    Ok(Json(HistoryPage {
        games: games
            .iter()
            .filter_map(|game| item(&claims.sub, game))
            .collect(),
        next_cursor,
    }))
}

pub async fn one(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(game_id): Path<String>,
) -> ApiResult<Json<StoredGame>> {
    let not_found = || {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "GAME_NOT_FOUND",
            "no such game in your history",
        )
    };
    let game = state.store.game(&game_id).await?.ok_or_else(not_found)?;
    // Only players see a game: a game id alone must not reveal who played what.
    if !game.player_ids.contains(&claims.sub) {
        return Err(not_found());
    }
    Ok(Json(game))
}

pub async fn stats(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> ApiResult<Json<Stats>> {
    let games = state
        .store
        .games_of(&claims.sub, STATS_WINDOW, None)
        .await?;
    Ok(Json(Stats::of(&claims.sub, &games)))
}
