//! Where rooms live: Redis (shared by every instance) or, in development without Redis, this process. Both
//! apply a change as "read, run the pure room method, write if nobody wrote in between", publish the new
//! state on the room's bus, and record a finished game in the same step.

mod memory;
mod redis_store;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use memory::MemoryStore;
pub use redis_store::RedisStore;

use crate::error::WsError;
use crate::room::{ChatMessage, Effects, Room};

/// What every instance receives after a room changed: the whole new state (or `None` once deleted), so no
/// instance needs a second read to fan it out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusMessage {
    pub code: String,
    pub version: u64,
    pub room: Option<Room>,
    pub chat: Option<ChatMessage>,
}

pub type BusSender = mpsc::UnboundedSender<Arc<BusMessage>>;

/// A stored change.
pub struct Committed {
    /// The new state; `None` when the change deleted the room.
    pub room: Option<Room>,
    pub effects: Effects,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("room {0} does not exist (it may have expired)")]
    NotFound(String),
    #[error("{0}")]
    Refused(WsError),
    #[error("room {0} is changing too fast; try again")]
    Contention(String),
    #[error("room store unavailable: {0}")]
    Backend(String),
}

impl From<StoreError> for WsError {
    fn from(err: StoreError) -> WsError {
        match err {
            StoreError::Refused(refusal) => refusal,
            StoreError::NotFound(_) => WsError::new("ROOM_NOT_FOUND", err.to_string()),
            StoreError::Contention(_) => WsError::new("BUSY", err.to_string()),
            StoreError::Backend(_) => WsError::unavailable(err.to_string()),
        }
    }
}

/// How many times an optimistic update is retried when another instance changed the room first.
const UPDATE_ATTEMPTS: usize = 16;

pub enum Store {
    Memory(MemoryStore),
    Redis(Arc<RedisStore>),
}

impl Store {
    pub async fn load(&self, code: &str) -> Result<Option<Room>, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.load(code)),
            Store::Redis(store) => store.load(code).await,
        }
    }

    /// Stores a brand-new room; `Ok(false)` when the code is taken.
    pub async fn create(&self, room: &Room, ttl: Duration) -> Result<bool, StoreError> {
        match self {
            Store::Memory(store) => store.create(room),
            Store::Redis(store) => store.create(room, ttl).await,
        }
    }

    /// Applies `change` to the current state of room `code` atomically, retrying on a concurrent write.
    pub async fn update<F>(
        &self,
        code: &str,
        ttl: Duration,
        now_ms: u64,
        mut change: F,
    ) -> Result<Committed, StoreError>
    where
        F: FnMut(&mut Room) -> Result<Effects, WsError> + Send,
    {
        let mut apply = |room: &mut Room| {
            let effects = change(room).map_err(StoreError::Refused)?;
            room.version += 1;
            room.updated_ms = now_ms;
            Ok(effects)
        };
        match self {
            Store::Memory(store) => store.update(code, &mut apply),
            Store::Redis(store) => {
                for _ in 0..UPDATE_ATTEMPTS {
                    if let Some(committed) = store.try_update(code, ttl, &mut apply).await? {
                        return Ok(committed);
                    }
                }
                Err(StoreError::Contention(code.to_owned()))
            }
        }
    }

    /// The room a user last joined, so a reconnecting player is put back in it on any instance.
    pub async fn user_room(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.user_room(user_id)),
            Store::Redis(store) => store.user_room(user_id).await,
        }
    }

    pub async fn set_user_room(
        &self,
        user_id: &str,
        code: Option<&str>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(store) => {
                store.set_user_room(user_id, code);
                Ok(())
            }
            Store::Redis(store) => store.set_user_room(user_id, code, ttl).await,
        }
    }

    /// Readiness: can the store be reached right now?
    pub async fn ping(&self) -> Result<(), String> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(store) => store.ping().await,
        }
    }

    /// The shared maintenance flag (`avalon:maintenance`), if any was written.
    pub async fn maintenance_flag(&self) -> Result<Option<String>, StoreError> {
        match self {
            Store::Memory(_) => Ok(None),
            Store::Redis(store) => store.maintenance_flag().await,
        }
    }

    /// Rooms expire when untouched for `ttl` (Redis does that itself with key expiry).
    pub fn sweep_expired(&self, now_ms: u64, ttl: Duration) -> Vec<String> {
        match self {
            Store::Memory(store) => store.sweep_expired(now_ms, ttl),
            Store::Redis(_) => Vec::new(),
        }
    }
}

fn bus_message(
    room: Option<&Room>,
    code: &str,
    version: u64,
    chat: Option<ChatMessage>,
) -> BusMessage {
    BusMessage {
        code: code.to_owned(),
        version,
        room: room.cloned(),
        chat,
    }
}
