//! Rooms in Redis, shared by every instance. A room is a hash `{version, state}`; a change is written by a
//! Lua script only if the version is still the one that was read (optimistic concurrency), and the same script
//! refreshes the expiry, publishes the new state on the room's channel and, when the change ended a game,
//! appends the record to the finished-games stream, so none of these can happen without the others.

use std::sync::Arc;
use std::time::Duration;

use avalon_game::{FINISHED_GAMES_FIELD, FINISHED_GAMES_STREAM};
use avalon_runtime::config::RedisSettings;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, Script};

use super::{BusMessage, BusSender, Committed, StoreError, bus_message};
use crate::metrics::WsMetrics;
use crate::room::{Effects, Room};

pub const ROOM_PREFIX: &str = "avalon:room:";
pub const CHANNEL_PREFIX: &str = "avalon:room-events:";
pub const USER_PREFIX: &str = "avalon:user-room:";
pub const MAINTENANCE_KEY: &str = avalon_runtime::maintenance_flag::KEY;

const WRITE_IF_UNCHANGED: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
if current == false then current = '' end
if current ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'version', ARGV[2], 'state', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
if ARGV[7] ~= '' then redis.call('XADD', KEYS[2], '*', ARGV[8], ARGV[7]) end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
";

pub struct RedisStore {
    client: Client,
    connection: ConnectionManager,
    script: Script,
    metrics: WsMetrics,
}

/// One write, already serialized.
struct Write<'a> {
    code: &'a str,
    expected: String,
    new_version: Option<u64>,
    state: String,
    ttl: Duration,
    message: String,
    record: String,
}

impl RedisStore {
    pub async fn connect(
        settings: &RedisSettings,
        metrics: WsMetrics,
    ) -> Result<RedisStore, String> {
        let client =
            avalon_runtime::redis_client::client(settings).map_err(|err| err.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(2)
            .set_max_delay(1_000);
        let connection = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|err| {
                format!(
                    "cannot connect to Redis at {}:{}: {err}",
                    settings.host, settings.port
                )
            })?;
        Ok(RedisStore {
            client,
            connection,
            script: Script::new(WRITE_IF_UNCHANGED),
            metrics,
        })
    }

    fn failed(&self, operation: &str, err: impl std::fmt::Display) -> StoreError {
        self.metrics.redis_error(operation);
        StoreError::Backend(format!("Redis {operation} failed: {err}"))
    }

    pub async fn load(&self, code: &str) -> Result<Option<Room>, StoreError> {
        let mut connection = self.connection.clone();
        let state: Option<String> = connection
            .hget(room_key(code), "state")
            .await
            .map_err(|err| self.failed("load", err))?;
        state.map(|json| decode(code, &json)).transpose()
    }

    pub async fn create(&self, room: &Room, ttl: Duration) -> Result<bool, StoreError> {
        let state = encode(room)?;
        let message = encode(&bus_message(Some(room), &room.code, room.version, None))?;
        self.write(Write {
            code: &room.code,
            expected: String::new(),
            new_version: Some(room.version),
            state,
            ttl,
            message,
            record: String::new(),
        })
        .await
    }

    /// One optimistic attempt: `Ok(None)` when another writer got there first.
    pub async fn try_update(
        &self,
        code: &str,
        ttl: Duration,
        apply: &mut (dyn FnMut(&mut Room) -> Result<Effects, StoreError> + Send),
    ) -> Result<Option<Committed>, StoreError> {
        let mut room = self
            .load(code)
            .await?
            .ok_or_else(|| StoreError::NotFound(code.to_owned()))?;
        let expected = room.version.to_string();
        let effects = apply(&mut room)?;
        let record = match &effects.finished {
            Some(record) => encode(record)?,
            None => String::new(),
        };
        let stored = (!effects.deleted).then_some(&room);
        let message = encode(&bus_message(
            stored,
            code,
            room.version,
            effects.chat.clone(),
        ))?;
        let written = self
            .write(Write {
                code,
                expected,
                new_version: stored.map(|room| room.version),
                state: match stored {
                    Some(room) => encode(room)?,
                    None => String::new(),
                },
                ttl,
                message,
                record,
            })
            .await?;
        Ok(written.then(|| Committed {
            room: (!effects.deleted).then_some(room),
            effects,
        }))
    }

    async fn write(&self, write: Write<'_>) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let written: i64 = self
            .script
            .key(room_key(write.code))
            .key(FINISHED_GAMES_STREAM)
            .arg(write.expected)
            .arg(
                write
                    .new_version
                    .map(|version| version.to_string())
                    .unwrap_or_default(),
            )
            .arg(write.state)
            .arg(write.ttl.as_secs().max(1))
            .arg(channel(write.code))
            .arg(write.message)
            .arg(write.record)
            .arg(FINISHED_GAMES_FIELD)
            .invoke_async(&mut connection)
            .await
            .map_err(|err| self.failed("write", err))?;
        Ok(written == 1)
    }

    pub async fn user_room(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        let mut connection = self.connection.clone();
        connection
            .get(user_key(user_id))
            .await
            .map_err(|err| self.failed("user_room", err))
    }

    pub async fn set_user_room(
        &self,
        user_id: &str,
        code: Option<&str>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let result: redis::RedisResult<()> = match code {
            Some(code) => {
                connection
                    .set_ex(user_key(user_id), code, ttl.as_secs().max(1))
                    .await
            }
            None => connection.del(user_key(user_id)).await,
        };
        result.map_err(|err| self.failed("user_room", err))
    }

    pub async fn ping(&self) -> Result<(), String> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(|_| ())
            .map_err(|err| {
                self.metrics.redis_error("ping");
                err.to_string()
            })
    }

    pub async fn maintenance_flag(&self) -> Result<Option<String>, StoreError> {
        let mut connection = self.connection.clone();
        connection
            .get(MAINTENANCE_KEY)
            .await
            .map_err(|err| self.failed("maintenance", err))
    }

    /// Forwards every room change published by any instance to `bus`, resubscribing after a lost connection.
    /// `resubscribed` is notified after each (re)subscription so the caller can resynchronise what it
    /// may have missed while disconnected.
    pub fn spawn_listener(
        self: &Arc<Self>,
        bus: BusSender,
        resubscribed: Arc<tokio::sync::Notify>,
    ) {
        let store = Arc::clone(self);
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            loop {
                match store.client.get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.psubscribe(format!("{CHANNEL_PREFIX}*")).await {
                        Ok(()) => {
                            delay = Duration::from_millis(100);
                            resubscribed.notify_one();
                            let mut messages = pubsub.into_on_message();
                            while let Some(message) = messages.next().await {
                                let payload: Vec<u8> = message.get_payload_bytes().to_vec();
                                match serde_json::from_slice::<BusMessage>(&payload) {
                                    Ok(parsed) => {
                                        if bus.send(Arc::new(parsed)).is_err() {
                                            return;
                                        }
                                    }
                                    Err(err) => {
                                        tracing::warn!(error = %err, "unreadable room message ignored")
                                    }
                                }
                            }
                            store.metrics.redis_error("subscribe");
                            tracing::warn!("room channel subscription lost; resubscribing");
                        }
                        Err(err) => {
                            store.metrics.redis_error("subscribe");
                            tracing::warn!(error = %err, "cannot subscribe to room channels");
                        }
                    },
                    Err(err) => {
                        store.metrics.redis_error("subscribe");
                        tracing::warn!(error = %err, "cannot open the Redis subscription connection");
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        });
    }
}

fn room_key(code: &str) -> String {
    format!("{ROOM_PREFIX}{code}")
}

fn user_key(user_id: &str) -> String {
    format!("{USER_PREFIX}{user_id}")
}

fn channel(code: &str) -> String {
    format!("{CHANNEL_PREFIX}{code}")
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|err| StoreError::Backend(format!("cannot encode: {err}")))
}

fn decode(code: &str, json: &str) -> Result<Room, StoreError> {
    serde_json::from_str(json)
        .map_err(|err| StoreError::Backend(format!("stored room {code} is unreadable: {err}")))
}
