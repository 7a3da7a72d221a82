//! Fixed one-minute windows per client IP and per user. In Redis (one atomic script per hit) so every API
//! instance counts against the same budget; in process memory when running embedded. Limits are read from
//! the live configuration on each request, so a reload applies at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::Script;
use redis::aio::ConnectionManager;

pub const WINDOW: Duration = Duration::from_secs(60);

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until the window resets.
    pub reset: Duration,
}

impl Decision {
    fn from_count(count: u64, limit: u32, reset: Duration) -> Decision {
        Decision {
            allowed: count <= u64::from(limit),
            limit,
            remaining: u32::try_from(u64::from(limit).saturating_sub(count)).unwrap_or(0),
            reset,
        }
    }

    /// Whole seconds, rounded up, never 0 (for Retry-After / RateLimit-Reset).
    pub fn reset_secs(&self) -> u64 {
        self.reset.as_millis().div_ceil(1000).max(1) as u64
    }
}

pub enum RateLimiter {
    Memory(Mutex<HashMap<String, (u64, Instant)>>),
    Redis {
        connection: ConnectionManager,
        script: Script,
    },
}

/// INCR the window's counter, start its expiry on the first hit, answer the count and the time left.
const HIT_SCRIPT: &str = r"
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
";

/// Beyond this many tracked keys, expired windows are swept from memory.
const SWEEP_AT: usize = 50_000;

impl RateLimiter {
    pub fn memory() -> RateLimiter {
        RateLimiter::Memory(Mutex::new(HashMap::new()))
    }

    pub fn redis(connection: ConnectionManager) -> RateLimiter {
        RateLimiter::Redis {
            connection,
            script: Script::new(HIT_SCRIPT),
        }
    }

    /// Counts one request for `key` against `limit` per minute. A Redis failure lets the request through
    /// (and is logged): an outage of the limiter must not become an outage of the API.
    pub async fn hit(&self, key: &str, limit: u32) -> Decision {
        match self {
            RateLimiter::Memory(windows) => Self::hit_memory(windows, key, limit),
            RateLimiter::Redis { connection, script } => {
                let mut connection = connection.clone();
                let key = format!("avalon:ratelimit:{key}");
                let window_ms = WINDOW.as_millis() as u64;
                let answer: Result<(u64, i64), _> = script
                    .key(&key)
                    .arg(window_ms)
                    .invoke_async(&mut connection)
                    .await;
                match answer {
                    Ok((count, ttl_ms)) => {
                        let reset =
                            Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(window_ms));
                        Decision::from_count(count, limit, reset)
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "rate limiter: Redis failed; request allowed");
                        Decision::from_count(0, limit, WINDOW)
                    }
                }
            }
        }
    }

    fn hit_memory(
        windows: &Mutex<HashMap<String, (u64, Instant)>>,
        key: &str,
        limit: u32,
    ) -> Decision {
        let now = Instant::now();
        let Ok(mut windows) = windows.lock() else {
            return Decision::from_count(0, limit, WINDOW);
        };
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (_, ends)| *ends > now);
        }
        let entry = windows.entry(key.to_owned()).or_insert((0, now + WINDOW));
        if entry.1 <= now {
            *entry = (0, now + WINDOW);
        }
        entry.0 += 1;
        Decision::from_count(entry.0, limit, entry.1 - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_limiter_counts_per_key() {
        let limiter = RateLimiter::memory();
        for expected_remaining in [2, 1, 0] {
            let decision = limiter.hit("ip:1", 3).await;
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
        }
        let refused = limiter.hit("ip:1", 3).await;
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert!((1..=60).contains(&refused.reset_secs()));
        assert!(limiter.hit("ip:2", 3).await.allowed);
    }
}
