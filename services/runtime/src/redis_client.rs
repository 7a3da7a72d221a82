//! The one way both services (and the runtime's instance registry) open a Redis client from the
//! validated settings: host, port, database and the password (never logged).

use redis::{ConnectionAddr, ConnectionInfo, RedisConnectionInfo};

use crate::config::RedisSettings;

pub fn client(settings: &RedisSettings) -> Result<redis::Client, redis::RedisError> {
    let info = ConnectionInfo {
        addr: ConnectionAddr::Tcp(settings.host.clone(), settings.port),
        redis: RedisConnectionInfo {
            db: i64::from(settings.db),
            password: settings
                .password
                .as_ref()
                .map(|password| password.expose().to_owned()),
            ..RedisConnectionInfo::default()
        },
    };
    redis::Client::open(info)
}
