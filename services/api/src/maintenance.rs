//! Maintenance mode: on when the live configuration says so (MAINTENANCE_MODE, hot-reloadable) or when the
//! Redis key `avalon:maintenance` holds `{"enabled":true,...}` (set by `cargo xtask maintenance` for every
//! instance at once). Polled every two seconds, so a flip reaches all instances within that.

use std::sync::RwLock;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::Deserialize;

use avalon_runtime::config::Live;
use avalon_runtime::lifecycle::Lifecycle;

pub const REDIS_KEY: &str = avalon_runtime::maintenance_flag::KEY;
pub const POLL_EVERY: Duration = avalon_runtime::maintenance_flag::POLL_EVERY;
/// Retry-After when nothing more specific was said.
pub const DEFAULT_RETRY_AFTER: u64 = 120;

/// The Redis flag as `cargo xtask maintenance` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RemoteFlag {
    pub enabled: bool,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub retry_after: Option<u64>,
}

/// Maintenance as it applies to a request right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    pub message: String,
    pub retry_after: u64,
}

#[derive(Default)]
pub struct Maintenance {
    remote: RwLock<Option<RemoteFlag>>,
}

impl Maintenance {
    pub fn active(&self, live: &Live) -> Option<Active> {
        let remote = self.remote.read().ok().and_then(|flag| flag.clone());
        let retry_after = remote
            .as_ref()
            .and_then(|flag| flag.retry_after)
            .unwrap_or(DEFAULT_RETRY_AFTER);
        match remote {
            Some(flag) if flag.enabled => Some(Active {
                message: flag
                    .message
                    .filter(|message| !message.trim().is_empty())
                    .unwrap_or_else(|| live.maintenance.message.clone()),
                retry_after,
            }),
            _ if live.maintenance.enabled => Some(Active {
                message: live.maintenance.message.clone(),
                retry_after,
            }),
            _ => None,
        }
    }

    pub fn set_remote(&self, flag: Option<RemoteFlag>) {
        if let Ok(mut remote) = self.remote.write() {
            if *remote != flag {
                tracing::info!(?flag, "maintenance flag in Redis changed");
            }
            *remote = flag;
        }
    }

    /// Keeps the Redis flag current until the service drains. A read error keeps the last known flag.
    pub async fn poll(
        self: std::sync::Arc<Self>,
        mut redis: ConnectionManager,
        lifecycle: Lifecycle,
    ) {
        loop {
            let read: Result<Option<String>, _> = redis.get(REDIS_KEY).await;
            match read {
                Ok(None) => self.set_remote(None),
                Ok(Some(text)) => match serde_json::from_str::<RemoteFlag>(&text) {
                    Ok(flag) => self.set_remote(Some(flag)),
                    Err(err) => {
                        tracing::warn!(error = %err, key = REDIS_KEY, "ignoring malformed maintenance flag")
                    }
                },
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the maintenance flag from Redis")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(POLL_EVERY) => {}
                () = lifecycle.draining() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(enabled: bool) -> Live {
        Live {
            log_level: "info".to_owned(),
            max_connections: 1,
            rate_limit_ip: 1,
            rate_limit_user: 1,
            maintenance: avalon_runtime::config::Maintenance {
                enabled,
                message: "config says".to_owned(),
            },
            features: Default::default(),
        }
    }

    #[test]
    fn either_source_turns_maintenance_on() {
        let maintenance = Maintenance::default();
        assert_eq!(maintenance.active(&live(false)), None);
        assert_eq!(
            maintenance.active(&live(true)).map(|active| active.message),
            Some("config says".to_owned())
        );
        maintenance.set_remote(Some(RemoteFlag {
            enabled: true,
            message: Some("redis says".to_owned()),
            retry_after: Some(30),
        }));
        assert_eq!(
            maintenance.active(&live(false)),
            Some(Active {
                message: "redis says".to_owned(),
                retry_after: 30
            })
        );
        // `cargo xtask maintenance off` writes nulls.
        let off: RemoteFlag =
            serde_json::from_str(r#"{"enabled":false,"message":null,"retry_after":null}"#).unwrap();
        maintenance.set_remote(Some(off));
        assert_eq!(maintenance.active(&live(false)), None);
        let bare: RemoteFlag = serde_json::from_str(r#"{"enabled":true}"#).unwrap();
        maintenance.set_remote(Some(bare));
        assert_eq!(
            maintenance.active(&live(false)),
            Some(Active {
                message: "config says".to_owned(),
                retry_after: DEFAULT_RETRY_AFTER
            })
        );
    }
}
