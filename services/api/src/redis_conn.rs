//! The shared Redis connection (rate limits, maintenance flag, finished-games stream).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use avalon_runtime::config::RedisSettings;

pub fn client(settings: &RedisSettings) -> Result<redis::Client, String> {
    avalon_runtime::redis_client::client(settings)
        .map_err(|err| format!("invalid Redis settings: {err}"))
}

/// Connects with retries, so a Redis that starts a moment after the API is tolerated. Commands fail after
/// `response_timeout` (keep it above any BLOCK time used on this connection).
pub async fn connect(
    settings: &RedisSettings,
    response_timeout: Duration,
) -> Result<ConnectionManager, String> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(response_timeout)
        .set_number_of_retries(5);
    ConnectionManager::new_with_config(client(settings)?, config)
        .await
        .map_err(|err| {
            format!(
                "cannot reach Redis at {}:{}: {err}",
                settings.host, settings.port
            )
        })
}
