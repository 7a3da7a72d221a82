//! What one instance says about itself in the registry, and where it says it. The JSON field names and
//! the key are the contract with `cargo xtask instances` and the edge's membership (xtask reads this very
//! type), so they change only together.

use serde::{Deserialize, Serialize};

use crate::config::ServiceKind;

/// Every record lives under this prefix: `avalon:instance:<id>`.
pub const KEY_PREFIX: &str = "avalon:instance:";

/// Whether an instance takes new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Passed its readiness checks once and is not shutting down.
    Ready,
    /// Shutdown or drain has started: it finishes what it has and takes nothing new.
    Draining,
}

impl InstanceState {
    pub fn name(self) -> &'static str {
        match self {
            InstanceState::Ready => "ready",
            InstanceState::Draining => "draining",
        }
    }
}

impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One instance's record: the value of `avalon:instance:<id>`, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// `<service>-<host>-<port>` ([`instance_id`]).
    pub id: String,
    /// `api` or `websocket`.
    pub service: String,
    pub version: String,
    pub revision: String,
    /// `blue` / `green` from `AVALON_SLOT`; `None` for the unslotted services and outside Compose.
    pub slot: Option<String>,
    /// The hostname (in a container: its 12-character id, unless Compose was told otherwise).
    pub host: String,
    /// `ip:port`: the first non-loopback IPv4 address of the host and the service port.
    pub address: String,
    pub port: u16,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// RFC 3339, UTC: when this copy of the record was written.
    pub heartbeat_at: String,
    pub state: InstanceState,
    /// Game server: open Socket.IO connections. API: HTTP requests in flight.
    pub connections: u64,
    /// Game server: rooms with at least one player connected here. API: 0.
    pub rooms: u64,
    /// Game server: rooms with a player connected here whose game is in progress. API: 0.
    pub live_games: u64,
    /// The instance's MAX_CONNECTIONS as it is now (reloadable).
    pub max_connections: u64,
}

/// The record's name for a service: `api` or `websocket` (the Compose service names, not the binaries').
pub fn service_name(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::Api => "api",
        ServiceKind::Ws => "websocket",
    }
}

/// `<service>-<host>-<port>`: unique per listening process (two processes on one host differ by port).
pub fn instance_id(service: &str, host: &str, port: u16) -> String {
    format!("{service}-{host}-{port}")
}

/// The Redis key of an instance's record.
pub fn key(id: &str) -> String {
    format!("{KEY_PREFIX}{id}")
}

/// Parses a stored record, naming the key in the error.
pub fn parse(key: &str, json: &str) -> Result<InstanceRecord, super::RegistryError> {
    serde_json::from_str(json).map_err(|source| super::RegistryError::Record {
        key: key.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sample() -> InstanceRecord {
        InstanceRecord {
            id: instance_id("websocket", "3f2a1b9c0d12", 3001),
            service: "websocket".to_owned(),
            version: "1.4.0".to_owned(),
            revision: "abc1234".to_owned(),
            slot: Some("blue".to_owned()),
            host: "3f2a1b9c0d12".to_owned(),
            address: "172.18.0.5:3001".to_owned(),
            port: 3001,
            started_at: "2026-12-05T02:40:00Z".to_owned(),
            heartbeat_at: "2026-12-05T02:41:07.250Z".to_owned(),
            state: InstanceState::Draining,
            connections: 12,
            rooms: 3,
            live_games: 2,
            max_connections: 10000,
        }
    }

    #[test]
    fn the_record_is_the_agreed_json() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "websocket-3f2a1b9c0d12-3001", "service": "websocket", "version": "1.4.0",
                "revision": "abc1234", "slot": "blue", "host": "3f2a1b9c0d12",
                "address": "172.18.0.5:3001", "port": 3001, "started_at": "2026-12-05T02:40:00Z",
                "heartbeat_at": "2026-12-05T02:41:07.250Z", "state": "draining", "connections": 12,
                "rooms": 3, "live_games": 2, "max_connections": 10000
            })
        );
    }

    #[test]
    fn a_record_reads_back_and_an_unslotted_one_has_a_null_slot() {
        let mut record = sample();
        record.slot = None;
        record.state = InstanceState::Ready;
        let text = serde_json::to_string(&record).unwrap();
        assert!(text.contains(r#""slot":null"#), "{text}");
        assert!(text.contains(r#""state":"ready""#), "{text}");
        assert_eq!(parse("k", &text).unwrap(), record);
    }

    #[test]
    fn a_broken_record_names_its_key() {
        let err = parse("avalon:instance:x", r#"{"id":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("avalon:instance:x"), "{err}");
        let err = parse(
            "k",
            &serde_json::to_string(&sample())
                .unwrap()
                .replace("draining", "gone"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }

    #[test]
    fn ids_and_keys_follow_the_schema() {
        assert_eq!(
            instance_id("api", "0123456789ab", 3000),
            "api-0123456789ab-3000"
        );
        assert_eq!(key("api-h-3000"), "avalon:instance:api-h-3000");
        assert_eq!(service_name(ServiceKind::Ws), "websocket");
        assert_eq!(service_name(ServiceKind::Api), "api");
    }
}
