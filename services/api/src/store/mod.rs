//! Persistence behind one trait: MongoDB in staging/production, an embedded file-backed store (SQLite,
//! shared by every API process on one DATA_DIR) for development and the offline stack.
//! `tests/store_contract.rs` holds both to the same behaviour.

use std::sync::Arc;

use async_trait::async_trait;

use crate::model::{Consumed, GameCursor, RefreshRecord, StoredGame, User};

pub mod embedded;
pub mod mongo;

pub use embedded::EmbeddedStore;
pub use mongo::MongoStore;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the operation; worth retrying.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data does not decode: a bug or manual edit, not worth retrying.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The user with this openid; `candidate` is inserted when there is none yet (atomically, so two
    /// concurrent first logins end with one user).
    async fn upsert_user(&self, candidate: User) -> StoreResult<User>;
    async fn user(&self, id: &str) -> StoreResult<Option<User>>;
    async fn set_nickname(
        &self,
        id: &str,
        nickname: &str,
        now_ms: u64,
    ) -> StoreResult<Option<User>>;

    async fn insert_refresh(&self, record: &RefreshRecord) -> StoreResult<()>;
    /// Marks the token with this hash used, atomically, and tells what it was before.
    async fn consume_refresh(&self, token_hash: &str) -> StoreResult<Consumed>;
    /// Revokes every token of the family; returns how many were revoked.
    async fn revoke_family(&self, family: &str) -> StoreResult<u64>;

    /// Stores a finished game once: `false` when that game id was already stored.
    async fn insert_game(&self, game: &StoredGame) -> StoreResult<bool>;
    async fn game(&self, game_id: &str) -> StoreResult<Option<StoredGame>>;
    /// The user's games newest first, strictly after `after`, at most `limit`.
    async fn games_of(
        &self,
        user_id: &str,
        limit: usize,
        after: Option<&GameCursor>,
    ) -> StoreResult<Vec<StoredGame>>;

    /// A named position (e.g. the byte offset of the finished-games spool already ingested).
    async fn position(&self, name: &str) -> StoreResult<Option<u64>>;
    async fn set_position(&self, name: &str, value: u64) -> StoreResult<()>;

    /// A cheap round trip for readiness.
    async fn ping(&self) -> StoreResult<()>;
}

pub type SharedStore = Arc<dyn Store>;
