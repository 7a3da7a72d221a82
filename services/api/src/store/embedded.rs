//! The development store: one redb file below DATA_DIR. Single process; writes are serialised by redb.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Store, StoreError, StoreResult};
use crate::model::{Consumed, GameCursor, RefreshRecord, StoredGame, User};

const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const USERS_BY_OPENID: TableDefinition<&str, &str> = TableDefinition::new("users_by_openid");
const REFRESH: TableDefinition<&str, &[u8]> = TableDefinition::new("refresh_tokens");
/// `<family>\0<token hash>` → nothing: the tokens of a family, for revocation.
const REFRESH_BY_FAMILY: TableDefinition<&str, ()> = TableDefinition::new("refresh_by_family");
const GAMES: TableDefinition<&str, &[u8]> = TableDefinition::new("games");
/// `<user id>\0<inverted finished ms, 20 digits>\0<game id>` → game id: a user's games newest first.
const USER_GAMES: TableDefinition<&str, &str> = TableDefinition::new("user_games");
const POSITIONS: TableDefinition<&str, u64> = TableDefinition::new("positions");

pub const FILE_NAME: &str = "avalon-api.redb";

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

fn unavailable(err: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

fn encode<T: serde::Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|err| StoreError::Corrupt(err.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|err| StoreError::Corrupt(err.to_string()))
}

fn user_game_key(user_id: &str, finished_at_ms: u64, game_id: &str) -> String {
    format!("{user_id}\0{:020}\0{game_id}", u64::MAX - finished_at_ms)
}

impl EmbeddedStore {
    /// Opens (creating if needed) `<dir>/avalon-api.redb`.
    pub fn open(dir: &Path) -> StoreResult<EmbeddedStore> {
        std::fs::create_dir_all(dir)
            .map_err(|err| unavailable(format!("cannot create {}: {err}", dir.display())))?;
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path)
            .map_err(|err| unavailable(format!("cannot open {}: {err}", path.display())))?;
        let store = EmbeddedStore { db: Arc::new(db) };
        store.write(|txn| {
            txn.open_table(USERS)?;
            txn.open_table(USERS_BY_OPENID)?;
            txn.open_table(REFRESH)?;
            txn.open_table(REFRESH_BY_FAMILY)?;
            txn.open_table(GAMES)?;
            txn.open_table(USER_GAMES)?;
            txn.open_table(POSITIONS)?;
            Ok(())
        })?;
        Ok(store)
    }

    fn write<T>(
        &self,
        work: impl FnOnce(&redb::WriteTransaction) -> Result<T, TxError>,
    ) -> StoreResult<T> {
        let txn = self.db.begin_write().map_err(unavailable)?;
        let value = work(&txn).map_err(TxError::into_store)?;
        txn.commit().map_err(unavailable)?;
        Ok(value)
    }

    fn read<T>(
        &self,
        work: impl FnOnce(&redb::ReadTransaction) -> Result<T, TxError>,
    ) -> StoreResult<T> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        work(&txn).map_err(TxError::into_store)
    }

    /// redb is synchronous: run it off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(EmbeddedStore) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(store))
            .await
            .map_err(unavailable)?
    }
}

/// Errors inside a transaction: redb's own, or ours (decoding).
enum TxError {
    Redb(redb::Error),
    Store(StoreError),
}

impl TxError {
    fn into_store(self) -> StoreError {
        match self {
            TxError::Redb(err) => unavailable(err),
            TxError::Store(err) => err,
        }
    }
}

impl<E: Into<redb::Error>> From<E> for TxError {
    fn from(err: E) -> TxError {
        TxError::Redb(err.into())
    }
}

fn store_err(err: StoreError) -> TxError {
    TxError::Store(err)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn upsert_user(&self, candidate: User) -> StoreResult<User> {
        self.blocking(move |store| {
            store.write(|txn| {
                let mut by_openid = txn.open_table(USERS_BY_OPENID)?;
                let mut users = txn.open_table(USERS)?;
                let existing = by_openid
                    .get(candidate.openid.as_str())?
                    .map(|id| id.value().to_owned());
                if let Some(id) = existing
                    && let Some(bytes) = users.get(id.as_str())?
                {
                    return decode(bytes.value()).map_err(store_err);
                }
                let bytes = encode(&candidate).map_err(store_err)?;
                users.insert(candidate.id.as_str(), bytes.as_slice())?;
                by_openid.insert(candidate.openid.as_str(), candidate.id.as_str())?;
                Ok(candidate)
            })
        })
        .await
    }

    async fn user(&self, id: &str) -> StoreResult<Option<User>> {
        let id = id.to_owned();
        self.blocking(move |store| {
            store.read(|txn| {
                let users = txn.open_table(USERS)?;
                let found = users.get(id.as_str())?;
                found
                    .map(|bytes| decode(bytes.value()))
                    .transpose()
                    .map_err(store_err)
            })
        })
        .await
    }

    async fn set_nickname(
        &self,
        id: &str,
        nickname: &str,
        now_ms: u64,
    ) -> StoreResult<Option<User>> {
        let (id, nickname) = (id.to_owned(), nickname.to_owned());
        self.blocking(move |store| {
            store.write(|txn| {
                let mut users = txn.open_table(USERS)?;
                let current = users.get(id.as_str())?.map(|bytes| bytes.value().to_vec());
                let Some(current) = current else {
                    return Ok(None);
                };
                let mut user: User = decode(&current).map_err(store_err)?;
                user.nickname = nickname;
                user.updated_at_ms = now_ms;
                let bytes = encode(&user).map_err(store_err)?;
                users.insert(id.as_str(), bytes.as_slice())?;
                Ok(Some(user))
            })
        })
        .await
    }

    async fn insert_refresh(&self, record: &RefreshRecord) -> StoreResult<()> {
        let record = record.clone();
        self.blocking(move |store| {
            store.write(|txn| {
                let bytes = encode(&record).map_err(store_err)?;
                txn.open_table(REFRESH)?
                    .insert(record.token_hash.as_str(), bytes.as_slice())?;
                let family_key = format!("{}\0{}", record.family, record.token_hash);
                txn.open_table(REFRESH_BY_FAMILY)?
                    .insert(family_key.as_str(), ())?;
                Ok(())
            })
        })
        .await
    }

    async fn consume_refresh(&self, token_hash: &str) -> StoreResult<Consumed> {
        let token_hash = token_hash.to_owned();
        self.blocking(move |store| {
            store.write(|txn| {
                let mut tokens = txn.open_table(REFRESH)?;
                let current = tokens
                    .get(token_hash.as_str())?
                    .map(|bytes| bytes.value().to_vec());
                let Some(current) = current else {
                    return Ok(Consumed::Unknown);
                };
                let record: RefreshRecord = decode(&current).map_err(store_err)?;
                if record.used {
                    return Ok(Consumed::AlreadyUsed(record));
                }
                let used = RefreshRecord {
                    used: true,
                    ..record.clone()
                };
                let bytes = encode(&used).map_err(store_err)?;
                tokens.insert(token_hash.as_str(), bytes.as_slice())?;
                Ok(Consumed::Fresh(record))
            })
        })
        .await
    }

    async fn revoke_family(&self, family: &str) -> StoreResult<u64> {
        let prefix = format!("{family}\0");
        self.blocking(move |store| {
            store.write(|txn| {
                let members = txn.open_table(REFRESH_BY_FAMILY)?;
                let mut hashes = Vec::new();
                for entry in members.range(prefix.as_str()..)? {
                    let (key, ()) =
                        entry.map(|(key, value)| (key.value().to_owned(), value.value()))?;
                    let Some(hash) = key.strip_prefix(prefix.as_str()) else {
                        break;
                    };
                    hashes.push(hash.to_owned());
                }
                let mut tokens = txn.open_table(REFRESH)?;
                let mut revoked = 0;
                for hash in hashes {
                    let current = tokens
                        .get(hash.as_str())?
                        .map(|bytes| bytes.value().to_vec());
                    let Some(current) = current else { continue };
                    let mut record: RefreshRecord = decode(&current).map_err(store_err)?;
                    if !record.revoked {
                        record.revoked = true;
                        revoked += 1;
                        let bytes = encode(&record).map_err(store_err)?;
                        tokens.insert(hash.as_str(), bytes.as_slice())?;
                    }
                }
                Ok(revoked)
            })
        })
        .await
    }

    async fn insert_game(&self, game: &StoredGame) -> StoreResult<bool> {
        let game = game.clone();
        self.blocking(move |store| {
            store.write(|txn| {
                let mut games = txn.open_table(GAMES)?;
                if games.get(game.game_id.as_str())?.is_some() {
                    return Ok(false);
                }
                let bytes = encode(&game).map_err(store_err)?;
                games.insert(game.game_id.as_str(), bytes.as_slice())?;
                let mut index = txn.open_table(USER_GAMES)?;
                for player in &game.player_ids {
                    let key = user_game_key(player, game.finished_at_ms, &game.game_id);
                    index.insert(key.as_str(), game.game_id.as_str())?;
                }
                Ok(true)
            })
        })
        .await
    }

    async fn game(&self, game_id: &str) -> StoreResult<Option<StoredGame>> {
        let game_id = game_id.to_owned();
        self.blocking(move |store| {
            store.read(|txn| {
                let games = txn.open_table(GAMES)?;
                let found = games.get(game_id.as_str())?;
                found
                    .map(|bytes| decode(bytes.value()))
                    .transpose()
                    .map_err(store_err)
            })
        })
        .await
    }

    async fn games_of(
        &self,
        user_id: &str,
        limit: usize,
        after: Option<&GameCursor>,
    ) -> StoreResult<Vec<StoredGame>> {
        let prefix = format!("{user_id}\0");
        // Keys sort newest first; start just past the cursor's own key.
        let start = match after {
            Some(cursor) => {
                let mut key = user_game_key(user_id, cursor.finished_at_ms, &cursor.game_id);
                key.push('\0');
                key
            }
            None => prefix.clone(),
        };
        self.blocking(move |store| {
            store.read(|txn| {
                let index = txn.open_table(USER_GAMES)?;
                let games = txn.open_table(GAMES)?;
                let mut found = Vec::new();
                for entry in index.range(start.as_str()..)? {
                    if found.len() >= limit {
                        break;
                    }
                    let (key, game_id) = entry
                        .map(|(key, value)| (key.value().to_owned(), value.value().to_owned()))?;
                    if !key.starts_with(prefix.as_str()) {
                        break;
                    }
                    if let Some(bytes) = games.get(game_id.as_str())? {
                        found.push(decode(bytes.value()).map_err(store_err)?);
                    }
                }
                Ok(found)
            })
        })
        .await
    }

    async fn position(&self, name: &str) -> StoreResult<Option<u64>> {
        let name = name.to_owned();
        self.blocking(move |store| {
            store.read(|txn| {
                let positions = txn.open_table(POSITIONS)?;
                let value = positions.get(name.as_str())?.map(|value| value.value());
                Ok(value)
            })
        })
        .await
    }

    async fn set_position(&self, name: &str, value: u64) -> StoreResult<()> {
        let name = name.to_owned();
        self.blocking(move |store| {
            store.write(|txn| {
                txn.open_table(POSITIONS)?.insert(name.as_str(), value)?;
                Ok(())
            })
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.blocking(|store| store.read(|txn| Ok(txn.open_table(POSITIONS).map(|_| ())?)))
            .await
    }
}
