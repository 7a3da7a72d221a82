//! The instance registry: every api and websocket instance announces itself once ready, with a
//! heartbeat and an expiry, so operators (`cargo xtask instances`), the edge's membership and the
//! autoscaler see which instances exist, what they run and what they carry.
//!
//! Schema (a contract with xtask, which reads [`InstanceRecord`] itself): the key
//! `avalon:instance:<id>` in the service's REDIS_DB holds the record as JSON, written with
//! `SET … PX <REGISTRY_TTL>` every REGISTRY_HEARTBEAT; `id` is `<service>-<host>-<port>`. The state is
//! `ready` from the first passed readiness check, `draining` from the moment shutdown starts (a state, not
//! a deletion: a draining game server still holds players until they reconnect elsewhere); the key is
//! deleted when the process exits cleanly, and an instance that stops beating vanishes by the TTL. In
//! development without REDIS_HOST the records live in the process ([`InProcessRegistry`]).

mod heartbeat;
mod identity;
mod load;
mod record;
mod store;

pub use heartbeat::{Heartbeat, Registered, record as record_now};
pub use identity::{Identity, SLOT_VARIABLE, now_rfc3339, slot_from};
pub use load::{Load, LoadSource, count};
pub use record::{
    InstanceRecord, InstanceState, KEY_PREFIX, instance_id, key, parse, service_name,
};
pub use store::{InProcessRegistry, RedisRegistry, RegistryStore};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("instance registry: {0}")]
    Redis(#[source] redis::RedisError),
    #[error("instance registry: cannot encode the record: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("instance registry: {key} does not hold an instance record: {source}")]
    Record {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("instance registry: the in-process registry is poisoned by an earlier panic")]
    Poisoned,
}
