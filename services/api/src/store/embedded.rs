//! The development store: one SQLite file below DATA_DIR, in WAL mode so several processes can share it —
//! the blue and green API slots of a deploy run side by side on the same volume, and a user who logged in
//! on one slot must be known to the other. Documents are kept as JSON next to the columns that are looked
//! up or sorted on.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Store, StoreError, StoreResult};
use crate::model::{Consumed, GameCursor, RefreshRecord, StoredGame, User};

pub const FILE_NAME: &str = "avalon-api.sqlite3";

/// How long a writer waits for another process's write transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id     TEXT PRIMARY KEY,
    openid TEXT NOT NULL UNIQUE,
    doc    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family     TEXT NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS refresh_tokens_by_family ON refresh_tokens (family);
CREATE TABLE IF NOT EXISTS games (
    game_id TEXT PRIMARY KEY,
    doc     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS user_games (
    user_id        TEXT NOT NULL,
    finished_at_ms INTEGER NOT NULL,
    game_id        TEXT NOT NULL,
    PRIMARY KEY (user_id, finished_at_ms, game_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// One connection per process: the store serves development and the offline stack, where a mutex is
/// ample and keeps SQLite's threading rules out of the picture.
#[derive(Clone)]
pub struct EmbeddedStore {
    conn: Arc<Mutex<Connection>>,
}

fn unavailable(err: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

fn encode<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|err| StoreError::Corrupt(err.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt(err.to_string()))
}

/// SQLite integers are signed 64-bit; our times and offsets are u64 that never come near the limit.
fn to_sql_int(value: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} exceeds 2^63-1")))
}

fn from_sql_int(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} is negative")))
}

impl EmbeddedStore {
    /// Opens (creating if needed) `<dir>/avalon-api.sqlite3`.
    pub fn open(dir: &Path) -> StoreResult<EmbeddedStore> {
        std::fs::create_dir_all(dir)
            .map_err(|err| unavailable(format!("cannot create {}: {err}", dir.display())))?;
        let path = dir.join(FILE_NAME);
        let conn = Connection::open(&path)
            .map_err(|err| unavailable(format!("cannot open {}: {err}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
        // WAL lets readers in one process run beside a writer in another; NORMAL sync is durable
        // across process crashes, which is what a development store needs.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|err| {
                unavailable(format!("cannot enable WAL on {}: {err}", path.display()))
            })?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(|err| {
            unavailable(format!(
                "cannot create the schema in {}: {err}",
                path.display()
            ))
        })?;
        Ok(EmbeddedStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `work` in an IMMEDIATE transaction (the write lock is taken up front, so two processes never
    /// deadlock upgrading readers) on a blocking thread, and commits when it returns Ok.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, TxError> + Send + 'static,
    ) -> StoreResult<T> {
        self.blocking(move |conn| {
            let txn = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let value = work(&txn).map_err(TxError::into_store)?;
            txn.commit().map_err(unavailable)?;
            Ok(value)
        })
        .await
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, TxError> + Send + 'static,
    ) -> StoreResult<T> {
        self.blocking(move |conn| work(conn).map_err(TxError::into_store))
            .await
    }

    /// SQLite is synchronous: run it off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves the connection itself intact (SQLite rolls back the
            // open transaction when it is dropped), so a poisoned lock is still usable.
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut conn)
        })
        .await
        .map_err(unavailable)?
    }
}

/// Errors inside a transaction: SQLite's own, or ours (decoding).
enum TxError {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl TxError {
    fn into_store(self) -> StoreError {
        match self {
            TxError::Sql(err) => unavailable(err),
            TxError::Store(err) => err,
        }
    }
}

impl From<rusqlite::Error> for TxError {
    fn from(err: rusqlite::Error) -> TxError {
        TxError::Sql(err)
    }
}

impl From<StoreError> for TxError {
    fn from(err: StoreError) -> TxError {
        TxError::Store(err)
    }
}

fn user_doc(conn: &Connection, id: &str) -> Result<Option<User>, TxError> {
    let doc: Option<String> = conn
        .query_row("SELECT doc FROM users WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .optional()?;
    Ok(doc.as_deref().map(decode).transpose()?)
}

fn refresh_doc(conn: &Connection, token_hash: &str) -> Result<Option<RefreshRecord>, TxError> {
    let doc: Option<String> = conn
        .query_row(
            "SELECT doc FROM refresh_tokens WHERE token_hash = ?1",
            [token_hash],
            |row| row.get(0),
        )
        .optional()?;
    Ok(doc.as_deref().map(decode).transpose()?)
}

fn put_refresh(conn: &Connection, record: &RefreshRecord) -> Result<(), TxError> {
    conn.execute(
        "INSERT INTO refresh_tokens (token_hash, family, doc) VALUES (?1, ?2, ?3)
         ON CONFLICT (token_hash) DO UPDATE SET family = excluded.family, doc = excluded.doc",
        params![record.token_hash, record.family, encode(record)?],
    )?;
    Ok(())
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn upsert_user(&self, candidate: User) -> StoreResult<User> {
        self.write(move |txn| {
            let existing: Option<String> = txn
                .query_row(
                    "SELECT doc FROM users WHERE openid = ?1",
                    [&candidate.openid],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(doc) = existing {
                return Ok(decode(&doc)?);
            }
            txn.execute(
                "INSERT INTO users (id, openid, doc) VALUES (?1, ?2, ?3)",
                params![candidate.id, candidate.openid, encode(&candidate)?],
            )?;
            Ok(candidate)
        })
        .await
    }

    async fn user(&self, id: &str) -> StoreResult<Option<User>> {
        let id = id.to_owned();
        self.read(move |conn| user_doc(conn, &id)).await
    }

    async fn set_nickname(
        &self,
        id: &str,
        nickname: &str,
        now_ms: u64,
    ) -> StoreResult<Option<User>> {
        let (id, nickname) = (id.to_owned(), nickname.to_owned());
        self.write(move |txn| {
            let Some(mut user) = user_doc(txn, &id)? else {
                return Ok(None);
            };
            user.nickname = nickname;
            user.updated_at_ms = now_ms;
            txn.execute(
                "UPDATE users SET doc = ?2 WHERE id = ?1",
                params![id, encode(&user)?],
            )?;
            Ok(Some(user))
        })
        .await
    }

    async fn insert_refresh(&self, record: &RefreshRecord) -> StoreResult<()> {
        let record = record.clone();
        self.write(move |txn| put_refresh(txn, &record)).await
    }

    async fn consume_refresh(&self, token_hash: &str) -> StoreResult<Consumed> {
        let token_hash = token_hash.to_owned();
        self.write(move |txn| {
            let Some(record) = refresh_doc(txn, &token_hash)? else {
                return Ok(Consumed::Unknown);
            };
            if record.used {
                return Ok(Consumed::AlreadyUsed(record));
            }
            put_refresh(
                txn,
                &RefreshRecord {
                    used: true,
                    ..record.clone()
                },
            )?;
            Ok(Consumed::Fresh(record))
        })
        .await
    }

    async fn revoke_family(&self, family: &str) -> StoreResult<u64> {
        let family = family.to_owned();
        self.write(move |txn| {
            let docs = {
                let mut query =
                    txn.prepare_cached("SELECT doc FROM refresh_tokens WHERE family = ?1")?;
                query
                    .query_map([&family], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?
            };
            let mut revoked = 0;
            for doc in docs {
                let mut record: RefreshRecord = decode(&doc)?;
                if !record.revoked {
                    record.revoked = true;
                    revoked += 1;
                    put_refresh(txn, &record)?;
                }
            }
            Ok(revoked)
        })
        .await
    }

    async fn insert_game(&self, game: &StoredGame) -> StoreResult<bool> {
        let game = game.clone();
        self.write(move |txn| {
            let inserted = txn.execute(
                "INSERT INTO games (game_id, doc) VALUES (?1, ?2) ON CONFLICT (game_id) DO NOTHING",
                params![game.game_id, encode(&game)?],
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            let finished_at = to_sql_int(game.finished_at_ms, "finished_at_ms")?;
            let mut index = txn.prepare_cached(
                "INSERT OR IGNORE INTO user_games (user_id, finished_at_ms, game_id) VALUES (?1, ?2, ?3)",
            )?;
            for player in &game.player_ids {
                index.execute(params![player, finished_at, game.game_id])?;
            }
            Ok(true)
        })
        .await
    }

    async fn game(&self, game_id: &str) -> StoreResult<Option<StoredGame>> {
        let game_id = game_id.to_owned();
        self.read(move |conn| {
            let doc: Option<String> = conn
                .query_row(
                    "SELECT doc FROM games WHERE game_id = ?1",
                    [&game_id],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(doc.as_deref().map(decode).transpose()?)
        })
        .await
    }

    async fn games_of(
        &self,
        user_id: &str,
        limit: usize,
        after: Option<&GameCursor>,
    ) -> StoreResult<Vec<StoredGame>> {
        let user_id = user_id.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Newest first, ties by game id ascending — the same order as the MongoDB store. Without a cursor
        // the bound sits above every real time.
        let (after_ms, after_id) = match after {
            Some(cursor) => (
                to_sql_int(cursor.finished_at_ms, "cursor finished_at_ms")?,
                cursor.game_id.clone(),
            ),
            None => (i64::MAX, String::new()),
        };
        self.read(move |conn| {
            let mut query = conn.prepare_cached(
                "SELECT g.doc FROM user_games u JOIN games g ON g.game_id = u.game_id
                 WHERE u.user_id = ?1
                   AND (u.finished_at_ms < ?2 OR (u.finished_at_ms = ?2 AND u.game_id > ?3))
                 ORDER BY u.finished_at_ms DESC, u.game_id ASC
                 LIMIT ?4",
            )?;
            let docs = query
                .query_map(params![user_id, after_ms, after_id, limit], |row| {
                    row.get::<_, String>(0)
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(docs
                .iter()
                .map(|doc| decode(doc))
                .collect::<StoreResult<Vec<_>>>()?)
        })
        .await
    }

    async fn position(&self, name: &str) -> StoreResult<Option<u64>> {
        let name = name.to_owned();
        self.read(move |conn| {
            let value: Option<i64> = conn
                .query_row(
                    "SELECT value FROM positions WHERE name = ?1",
                    [&name],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(value
                .map(|value| from_sql_int(value, "position"))
                .transpose()?)
        })
        .await
    }

    async fn set_position(&self, name: &str, value: u64) -> StoreResult<()> {
        let name = name.to_owned();
        self.write(move |txn| {
            txn.execute(
                "INSERT INTO positions (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name, to_sql_int(value, "position")?],
            )?;
            Ok(())
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }
}
