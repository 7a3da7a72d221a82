//! Where records are kept: Redis (every instance of the stack writes into its REDIS_DB), or, in
//! development without REDIS_HOST, a map in this process. Both expire a record `ttl` after it was
//! written, so an instance that stops beating disappears without anyone deleting it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::RedisSettings;

use super::RegistryError;
use super::record::{self, InstanceRecord, KEY_PREFIX};

/// How many keys one SCAN step asks for when listing.
const SCAN_COUNT: usize = 200;

#[derive(Clone)]
pub enum RegistryStore {
    Redis(RedisRegistry),
    InProcess(InProcessRegistry),
}

impl RegistryStore {
    /// Redis when the service has one, else an in-process registry.
    pub fn for_settings(
        redis: Option<&RedisSettings>,
        ttl: Duration,
    ) -> Result<Self, RegistryError> {
        match redis {
            Some(settings) => Ok(RegistryStore::Redis(RedisRegistry::new(settings, ttl)?)),
            None => Ok(RegistryStore::InProcess(InProcessRegistry::default())),
        }
    }

    /// Writes (or rewrites) a record that expires after `ttl` unless written again.
    pub async fn put(&self, record: &InstanceRecord, ttl: Duration) -> Result<(), RegistryError> {
        match self {
            RegistryStore::Redis(store) => store.put(record, ttl).await,
            RegistryStore::InProcess(store) => store.put(record, ttl),
        }
    }

    pub async fn remove(&self, id: &str) -> Result<(), RegistryError> {
        match self {
            RegistryStore::Redis(store) => store.remove(id).await,
            RegistryStore::InProcess(store) => {
                store.remove(id);
                Ok(())
            }
        }
    }

    /// Every live record, sorted by id.
    pub async fn list(&self) -> Result<Vec<InstanceRecord>, RegistryError> {
        match self {
            RegistryStore::Redis(store) => store.list().await,
            RegistryStore::InProcess(store) => Ok(store.list()),
        }
    }
}

/// The registry in Redis: `SET avalon:instance:<id> <json> PX <ttl>`. Connects on first use and
/// reconnects by itself, so a Redis that is away for a moment only costs heartbeats.
#[derive(Clone)]
pub struct RedisRegistry {
    client: redis::Client,
    response_timeout: Duration,
    connection: Arc<tokio::sync::Mutex<Option<ConnectionManager>>>,
}

impl RedisRegistry {
    /// `ttl` bounds how long one command may take: a write slower than the record's life is useless.
    pub fn new(settings: &RedisSettings, ttl: Duration) -> Result<Self, RegistryError> {
        let client = crate::redis_client::client(settings).map_err(RegistryError::Redis)?;
        Ok(RedisRegistry {
            client,
            response_timeout: (ttl / 2).min(Duration::from_secs(2)),
            connection: Arc::default(),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, RegistryError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.response_timeout)
            .set_response_timeout(self.response_timeout)
            .set_number_of_retries(1)
            .set_max_delay(1_000);
        let connection = ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(RegistryError::Redis)?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    async fn put(&self, record: &InstanceRecord, ttl: Duration) -> Result<(), RegistryError> {
        let json = serde_json::to_string(record).map_err(RegistryError::Encode)?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut connection = self.connection().await?;
        redis::cmd("SET")
            .arg(record::key(&record.id))
            .arg(json)
            .arg("PX")
            .arg(ttl_ms)
            .query_async::<()>(&mut connection)
            .await
            .map_err(RegistryError::Redis)
    }

    async fn remove(&self, id: &str) -> Result<(), RegistryError> {
        let mut connection = self.connection().await?;
        connection
            .del::<_, ()>(record::key(id))
            .await
            .map_err(RegistryError::Redis)
    }

    /// SCAN (never KEYS, which blocks Redis) for the prefix, then one MGET; a key that expired in
    /// between reads as nil and is skipped.
    async fn list(&self) -> Result<Vec<InstanceRecord>, RegistryError> {
        let mut connection = self.connection().await?;
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{KEY_PREFIX}*"))
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut connection)
                .await
                .map_err(RegistryError::Redis)?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut connection)
            .await
            .map_err(RegistryError::Redis)?;
        keys.iter()
            .zip(values)
            .filter_map(|(key, value)| value.map(|json| record::parse(key, &json)))
            .collect()
    }
}

/// The registry of a single development process: the same records, expiring the same way, kept in
/// memory (development without Redis runs one instance of each service).
#[derive(Clone, Default)]
pub struct InProcessRegistry {
    records: Arc<Mutex<BTreeMap<String, (InstanceRecord, Instant)>>>,
}

impl InProcessRegistry {
    pub fn put(&self, record: &InstanceRecord, ttl: Duration) -> Result<(), RegistryError> {
        let mut records = self.records.lock().map_err(|_| RegistryError::Poisoned)?;
        records.insert(record.id.clone(), (record.clone(), Instant::now() + ttl));
        Ok(())
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut records) = self.records.lock() {
            records.remove(id);
        }
    }

    /// The records not yet expired, sorted by id.
    pub fn list(&self) -> Vec<InstanceRecord> {
        let now = Instant::now();
        match self.records.lock() {
            Ok(mut records) => {
                records.retain(|_, (_, expires)| *expires > now);
                records.values().map(|(record, _)| record.clone()).collect()
            }
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::registry::record::InstanceState;

    fn record(id: &str) -> InstanceRecord {
        InstanceRecord {
            id: id.to_owned(),
            service: "api".to_owned(),
            version: "0.1.0".to_owned(),
            revision: "r".to_owned(),
            slot: None,
            host: "h".to_owned(),
            address: "10.0.0.2:3000".to_owned(),
            port: 3000,
            started_at: "2026-12-05T00:00:00Z".to_owned(),
            heartbeat_at: "2026-12-05T00:00:01Z".to_owned(),
            state: InstanceState::Ready,
            connections: 0,
            rooms: 0,
            live_games: 0,
            max_connections: 10,
        }
    }

    #[tokio::test]
    async fn an_in_process_record_expires_unless_rewritten() {
        let store = RegistryStore::InProcess(InProcessRegistry::default());
        store
            .put(&record("a"), Duration::from_millis(150))
            .await
            .unwrap();
        store
            .put(&record("b"), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.list().await.unwrap().len(), 2);
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.list().await.unwrap().len() == 2 {
            assert!(
                Instant::now() < deadline,
                "the short-lived record never expired"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = store.list().await.unwrap();
        assert_eq!(
            left.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        store.remove("b").await.unwrap();
        assert!(store.list().await.unwrap().is_empty());
    }
}
