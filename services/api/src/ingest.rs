//! Finished games arrive from the game server: with Redis through the stream `avalon:finished_games`
//! (consumer group `avalon-api`, acknowledged after storing), embedded by tailing
//! `<DATA_DIR>/finished-games.jsonl` (the byte offset already read is kept in the store). Storing is
//! idempotent by game id, so redelivery after a crash is harmless.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use avalon_game::{FINISHED_GAMES_FIELD, FINISHED_GAMES_STREAM, FinishedGame};
use avalon_runtime::lifecycle::Lifecycle;

use crate::model::StoredGame;
use crate::store::SharedStore;

pub const CONSUMER_GROUP: &str = "avalon-api";
/// The position name under which the embedded tailer remembers its offset.
pub const SPOOL_POSITION: &str = "finished_games_spool";
const BATCH: usize = 100;
const BLOCK: Duration = Duration::from_secs(2);
/// Entries another consumer took but did not acknowledge for this long are taken over.
const ABANDONED_AFTER: Duration = Duration::from_secs(60);
const CLAIM_EVERY: Duration = Duration::from_secs(30);

/// What happened to one record.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    Duplicate,
    /// Not a finished-game record; logged and skipped (never retried).
    Malformed,
}

/// Parses and stores one record; an error means the store failed and the record must be retried.
pub async fn ingest_record(
    store: &SharedStore,
    text: &str,
) -> Result<Outcome, crate::store::StoreError> {
    let game: FinishedGame = match serde_json::from_str(text) {
        Ok(game) => game,
        Err(err) => {
            tracing::error!(error = %err, "skipping a malformed finished-game record");
            return Ok(Outcome::Malformed);
        }
    };
    let game = StoredGame::from(game);
    if store.insert_game(&game).await? {
        tracing::info!(game_id = %game.game_id, players = game.player_ids.len(), "finished game stored");
        Ok(Outcome::Stored)
    } else {
        Ok(Outcome::Duplicate)
    }
}

async fn pause_or_drain(lifecycle: &Lifecycle, pause: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(pause) => false,
        () = lifecycle.draining() => true,
    }
}

/// Reads the stream until the service drains.
pub async fn consume_stream(
    store: SharedStore,
    mut redis: ConnectionManager,
    consumer: String,
    lifecycle: Lifecycle,
) {
    loop {
        let created: Result<(), redis::RedisError> = redis
            .xgroup_create_mkstream(FINISHED_GAMES_STREAM, CONSUMER_GROUP, "0")
            .await;
        match created {
            Ok(()) => break,
            Err(err) if err.code() == Some("BUSYGROUP") => break,
            Err(err) => {
                tracing::warn!(error = %err, "cannot create the finished-games consumer group; retrying");
                if pause_or_drain(&lifecycle, Duration::from_secs(2)).await {
                    return;
                }
            }
        }
    }
    tracing::info!(stream = FINISHED_GAMES_STREAM, group = CONSUMER_GROUP, %consumer, "consuming finished games");
    // Our own unacknowledged entries first (e.g. a store failure last time round).
    let mut read_pending = true;
    let mut last_claim: Option<Instant> = None;
    while !lifecycle.is_draining() {
        let entries = if last_claim.is_none_or(|at| at.elapsed() >= CLAIM_EVERY) {
            last_claim = Some(Instant::now());
            claim_abandoned(&mut redis, &consumer).await
        } else {
            read(&mut redis, &consumer, read_pending).await
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err(err) => {
                tracing::warn!(error = %err, "reading finished games from Redis failed");
                if pause_or_drain(&lifecycle, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        if read_pending && entries.is_empty() {
            read_pending = false;
        }
        for entry in entries {
            let text: String = entry.get(FINISHED_GAMES_FIELD).unwrap_or_default();
            match ingest_record(&store, &text).await {
                Ok(_) => {
                    let acked: Result<usize, _> = redis
                        .xack(FINISHED_GAMES_STREAM, CONSUMER_GROUP, &[&entry.id])
                        .await;
                    if let Err(err) = acked {
                        tracing::warn!(error = %err, id = %entry.id, "cannot acknowledge a finished game");
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, id = %entry.id, "cannot store a finished game; will retry");
                    read_pending = true;
                    if pause_or_drain(&lifecycle, Duration::from_secs(1)).await {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

async fn read(
    redis: &mut ConnectionManager,
    consumer: &str,
    pending: bool,
) -> redis::RedisResult<Vec<StreamId>> {
    let mut options = StreamReadOptions::default()
        .group(CONSUMER_GROUP, consumer)
        .count(BATCH);
    if !pending {
        options = options.block(BLOCK.as_millis() as usize);
    }
    let from = if pending { "0" } else { ">" };
    let reply: Option<StreamReadReply> = redis
        .xread_options(&[FINISHED_GAMES_STREAM], &[from], &options)
        .await?;
    Ok(reply
        .map(|reply| reply.keys.into_iter().flat_map(|key| key.ids).collect())
        .unwrap_or_default())
}

async fn claim_abandoned(
    redis: &mut ConnectionManager,
    consumer: &str,
) -> redis::RedisResult<Vec<StreamId>> {
    let reply: StreamAutoClaimReply = redis
        .xautoclaim_options(
            FINISHED_GAMES_STREAM,
            CONSUMER_GROUP,
            consumer,
            ABANDONED_AFTER.as_millis() as u64,
            "0-0",
            StreamAutoClaimOptions::default().count(BATCH),
        )
        .await?;
    if !reply.claimed.is_empty() {
        tracing::info!(
            count = reply.claimed.len(),
            "took over abandoned finished games"
        );
    }
    Ok(reply.claimed)
}

/// Tails the spool file until the service drains.
pub async fn tail_spool(store: SharedStore, path: PathBuf, lifecycle: Lifecycle) {
    tracing::info!(path = %path.display(), "tailing finished games");
    loop {
        if let Err(err) = tail_once(&store, &path).await {
            tracing::warn!(error = %err, path = %path.display(), "reading finished games failed");
        }
        if pause_or_drain(&lifecycle, Duration::from_millis(500)).await {
            return;
        }
    }
}

/// Ingests every complete line past the remembered offset; returns how many records were read.
pub async fn tail_once(store: &SharedStore, path: &std::path::Path) -> Result<usize, String> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err.to_string()),
    };
    let len = file.metadata().await.map_err(|err| err.to_string())?.len();
    let mut offset = store
        .position(SPOOL_POSITION)
        .await
        .map_err(|err| err.to_string())?
        .unwrap_or(0);
    if len < offset {
        tracing::warn!(path = %path.display(), "spool file shrank (replaced?): reading it from the start");
        offset = 0;
    }
    if len == offset {
        return Ok(0);
    }
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|err| err.to_string())?;
    let mut bytes = Vec::new();
    file.take(len - offset)
        .read_to_end(&mut bytes)
        .await
        .map_err(|err| err.to_string())?;
    // Only whole lines: the writer may be half-way through the last one.
    let Some(end) = bytes.iter().rposition(|byte| *byte == b'\n') else {
        return Ok(0);
    };
    let mut count = 0;
    for line in bytes[..end].split(|byte| *byte == b'\n') {
        let text = String::from_utf8_lossy(line);
        if text.trim().is_empty() {
            continue;
        }
        ingest_record(store, &text)
            .await
            .map_err(|err| err.to_string())?;
        count += 1;
    }
    store
        .set_position(SPOOL_POSITION, offset + end as u64 + 1)
        .await
        .map_err(|err| err.to_string())?;
    Ok(count)
}
