//! The production store: MongoDB through the official driver. Indexes are created at start; pool size and
//! timeouts come from configuration.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{self, Document, doc};
use mongodb::error::{Error as MongoError, ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, Database, IndexModel};

use avalon_runtime::config::MongoPool;

use super::{Store, StoreError, StoreResult};
use crate::model::{Consumed, GameCursor, RefreshRecord, StoredGame, User};

/// Used when the connection string names no database.
pub const DEFAULT_DATABASE: &str = "avalon";

#[derive(Clone)]
pub struct MongoStore {
    db: Database,
}

fn unavailable(err: MongoError) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

fn corrupt(err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(err.to_string())
}

fn is_duplicate_key(err: &MongoError) -> bool {
    matches!(
        err.kind.as_ref(),
        ErrorKind::Write(WriteFailure::WriteError(write)) if write.code == 11000
    ) || matches!(err.kind.as_ref(), ErrorKind::Command(command) if command.code == 11000)
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn uint(doc: &Document, key: &str) -> StoreResult<u64> {
    let value = doc
        .get_i64(key)
        .or_else(|_| doc.get_i32(key).map(i64::from))
        .map_err(|err| corrupt(format!("{key}: {err}")))?;
    u64::try_from(value).map_err(|err| corrupt(format!("{key}: {err}")))
}

fn text(doc: &Document, key: &str) -> StoreResult<String> {
    doc.get_str(key)
        .map(str::to_owned)
        .map_err(|err| corrupt(format!("{key}: {err}")))
}

fn flag(doc: &Document, key: &str) -> StoreResult<bool> {
    doc.get_bool(key)
        .map_err(|err| corrupt(format!("{key}: {err}")))
}

fn user_doc(user: &User) -> Document {
    doc! {
        "_id": &user.id,
        "openid": &user.openid,
        "nickname": &user.nickname,
        "created_at_ms": int(user.created_at_ms),
        "updated_at_ms": int(user.updated_at_ms),
    }
}

fn user_from(doc: &Document) -> StoreResult<User> {
    Ok(User {
        id: text(doc, "_id")?,
        openid: text(doc, "openid")?,
        nickname: text(doc, "nickname")?,
        created_at_ms: uint(doc, "created_at_ms")?,
        updated_at_ms: uint(doc, "updated_at_ms")?,
    })
}

fn refresh_doc(record: &RefreshRecord) -> Document {
    doc! {
        "_id": &record.token_hash,
        "family": &record.family,
        "user_id": &record.user_id,
        "issued_at_ms": int(record.issued_at_ms),
        "expires_at_ms": int(record.expires_at_ms),
        // A BSON date for the TTL index, so expired tokens disappear by themselves.
        "expires_at": bson::DateTime::from_millis(int(record.expires_at_ms)),
        "used": record.used,
        "revoked": record.revoked,
    }
}

fn refresh_from(doc: &Document) -> StoreResult<RefreshRecord> {
    Ok(RefreshRecord {
        token_hash: text(doc, "_id")?,
        family: text(doc, "family")?,
        user_id: text(doc, "user_id")?,
        issued_at_ms: uint(doc, "issued_at_ms")?,
        expires_at_ms: uint(doc, "expires_at_ms")?,
        used: flag(doc, "used")?,
        revoked: flag(doc, "revoked")?,
    })
}

fn game_doc(game: &StoredGame) -> StoreResult<Document> {
    // The summary holds u64 values (the seed) that BSON integers cannot carry: keep it as JSON text.
    let summary = serde_json::to_string(&game.summary).map_err(corrupt)?;
    Ok(doc! {
        "_id": &game.game_id,
        "room_code": &game.room_code,
        "player_ids": &game.player_ids,
        "finished_at_ms": int(game.finished_at_ms),
        "summary_json": summary,
    })
}

fn game_from(doc: &Document) -> StoreResult<StoredGame> {
    let player_ids = doc
        .get_array("player_ids")
        .map_err(|err| corrupt(format!("player_ids: {err}")))?
        .iter()
        .map(|id| {
            id.as_str()
                .map(str::to_owned)
                .ok_or_else(|| corrupt("player_ids: not a string"))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(StoredGame {
        game_id: text(doc, "_id")?,
        room_code: text(doc, "room_code")?,
        player_ids,
        finished_at_ms: uint(doc, "finished_at_ms")?,
        summary: serde_json::from_str(&text(doc, "summary_json")?).map_err(corrupt)?,
    })
}

impl MongoStore {
    /// Connects lazily (the driver dials on first use) and creates the indexes.
    pub async fn connect(uri: &str, pool: &MongoPool) -> StoreResult<MongoStore> {
        let mut options = ClientOptions::parse(uri).await.map_err(unavailable)?;
        options.app_name = Some("avalon-api".to_owned());
        options.max_pool_size = Some(pool.max_pool_size);
        options.min_pool_size = Some(pool.min_pool_size);
        options.connect_timeout = Some(pool.connect_timeout);
        options.server_selection_timeout = Some(pool.server_selection_timeout);
        let database = options
            .default_database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        let client = Client::with_options(options).map_err(unavailable)?;
        Ok(MongoStore {
            db: client.database(&database),
        })
    }

    /// A store on another database of the same server (contract tests use a fresh one each).
    pub fn on_database(&self, name: &str) -> MongoStore {
        MongoStore {
            db: self.db.client().database(name),
        }
    }

    pub async fn drop_database(&self) -> StoreResult<()> {
        self.db.drop().await.map_err(unavailable)
    }

    pub async fn create_indexes(&self) -> StoreResult<()> {
        let unique = IndexOptions::builder().unique(true).build();
        self.users()
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "openid": 1 })
                    .options(unique)
                    .build(),
            )
            .await
            .map_err(unavailable)?;
        self.refresh()
            .create_index(IndexModel::builder().keys(doc! { "family": 1 }).build())
            .await
            .map_err(unavailable)?;
        let ttl = IndexOptions::builder()
            .expire_after(std::time::Duration::ZERO)
            .build();
        self.refresh()
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "expires_at": 1 })
                    .options(ttl)
                    .build(),
            )
            .await
            .map_err(unavailable)?;
        self.games()
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "player_ids": 1, "finished_at_ms": -1, "_id": 1 })
                    .build(),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn users(&self) -> Collection<Document> {
        self.db.collection("users")
    }

    fn refresh(&self) -> Collection<Document> {
        self.db.collection("refresh_tokens")
    }

    fn games(&self) -> Collection<Document> {
        self.db.collection("games")
    }

    fn positions(&self) -> Collection<Document> {
        self.db.collection("positions")
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn upsert_user(&self, candidate: User) -> StoreResult<User> {
        let upsert = || async {
            self.users()
                .find_one_and_update(
                    doc! { "openid": &candidate.openid },
                    doc! { "$setOnInsert": user_doc(&candidate) },
                )
                .upsert(true)
                .return_document(ReturnDocument::After)
                .await
        };
        let found = match upsert().await {
            // Two first logins at once: the loser of the unique index race reads the winner's user.
            Err(err) if is_duplicate_key(&err) => upsert().await,
            other => other,
        }
        .map_err(unavailable)?;
        let doc = found.ok_or_else(|| corrupt("upsert returned no user"))?;
        user_from(&doc)
    }

    async fn user(&self, id: &str) -> StoreResult<Option<User>> {
        let found = self
            .users()
            .find_one(doc! { "_id": id })
            .await
            .map_err(unavailable)?;
        found.as_ref().map(user_from).transpose()
    }

    async fn set_nickname(
        &self,
        id: &str,
        nickname: &str,
        now_ms: u64,
    ) -> StoreResult<Option<User>> {
        let found = self
            .users()
            .find_one_and_update(
                doc! { "_id": id },
                doc! { "$set": { "nickname": nickname, "updated_at_ms": int(now_ms) } },
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(unavailable)?;
        found.as_ref().map(user_from).transpose()
    }

    async fn insert_refresh(&self, record: &RefreshRecord) -> StoreResult<()> {
        self.refresh()
            .insert_one(refresh_doc(record))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn consume_refresh(&self, token_hash: &str) -> StoreResult<Consumed> {
        let before = self
            .refresh()
            .find_one_and_update(
                doc! { "_id": token_hash, "used": false },
                doc! { "$set": { "used": true } },
            )
            .return_document(ReturnDocument::Before)
            .await
            .map_err(unavailable)?;
        if let Some(doc) = before {
            return Ok(Consumed::Fresh(refresh_from(&doc)?));
        }
        let existing = self
            .refresh()
            .find_one(doc! { "_id": token_hash })
            .await
            .map_err(unavailable)?;
        match existing {
            Some(doc) => Ok(Consumed::AlreadyUsed(refresh_from(&doc)?)),
            None => Ok(Consumed::Unknown),
        }
    }

    async fn revoke_family(&self, family: &str) -> StoreResult<u64> {
        let result = self
            .refresh()
            .update_many(
                doc! { "family": family, "revoked": false },
                doc! { "$set": { "revoked": true } },
            )
            .await
            .map_err(unavailable)?;
        Ok(result.modified_count)
    }

    async fn insert_game(&self, game: &StoredGame) -> StoreResult<bool> {
        match self.games().insert_one(game_doc(game)?).await {
            Ok(_) => Ok(true),
            Err(err) if is_duplicate_key(&err) => Ok(false),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn game(&self, game_id: &str) -> StoreResult<Option<StoredGame>> {
        let found = self
            .games()
            .find_one(doc! { "_id": game_id })
            .await
            .map_err(unavailable)?;
        found.as_ref().map(game_from).transpose()
    }

    async fn games_of(
        &self,
        user_id: &str,
        limit: usize,
        after: Option<&GameCursor>,
    ) -> StoreResult<Vec<StoredGame>> {
        let mut filter = doc! { "player_ids": user_id };
        if let Some(cursor) = after {
            let at = int(cursor.finished_at_ms);
            filter.insert(
                "$or",
                vec![
                    doc! { "finished_at_ms": { "$lt": at } },
                    doc! { "finished_at_ms": at, "_id": { "$gt": &cursor.game_id } },
                ],
            );
        }
        let docs: Vec<Document> = self
            .games()
            .find(filter)
            .sort(doc! { "finished_at_ms": -1, "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        docs.iter().map(game_from).collect()
    }

    async fn position(&self, name: &str) -> StoreResult<Option<u64>> {
        let found = self
            .positions()
            .find_one(doc! { "_id": name })
            .await
            .map_err(unavailable)?;
        found.map(|doc| uint(&doc, "value")).transpose()
    }

    async fn set_position(&self, name: &str, value: u64) -> StoreResult<()> {
        self.positions()
            .update_one(
                doc! { "_id": name },
                doc! { "$set": { "value": int(value) } },
            )
            .upsert(true)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
