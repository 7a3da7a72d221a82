//! The load figures an instance reports with each heartbeat. Each service plugs in its own source, read
//! from the same gauges its `/metrics` exports, so the registry and Prometheus never disagree.

use std::sync::{Arc, RwLock};

/// What an instance carries right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub connections: u64,
    pub rooms: u64,
    pub live_games: u64,
}

type Source = Arc<dyn Fn() -> Load + Send + Sync>;

/// Where the heartbeat reads [`Load`] from; replaceable once by the service at start-up.
#[derive(Clone)]
pub struct LoadSource {
    source: Arc<RwLock<Source>>,
}

impl LoadSource {
    pub fn new(source: impl Fn() -> Load + Send + Sync + 'static) -> LoadSource {
        LoadSource {
            source: Arc::new(RwLock::new(Arc::new(source))),
        }
    }

    /// Makes `source` the one every later heartbeat reads (the game server's connections, rooms, games).
    pub fn replace(&self, source: impl Fn() -> Load + Send + Sync + 'static) {
        if let Ok(mut current) = self.source.write() {
            *current = Arc::new(source);
        }
    }

    pub fn read(&self) -> Load {
        let source = match self.source.read() {
            Ok(source) => Arc::clone(&source),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        source()
    }
}

/// A gauge's value as a count (a gauge briefly below zero reads 0).
pub fn count(gauge: &prometheus::IntGauge) -> u64 {
    u64::try_from(gauge.get()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_replaces_the_default_source() {
        let gauge = prometheus::IntGauge::new("g", "g").unwrap_or_else(|_| unreachable!());
        let source = LoadSource::new(Load::default);
        assert_eq!(source.read(), Load::default());
        let reading = gauge.clone();
        source.replace(move || Load {
            connections: count(&reading),
            rooms: 2,
            live_games: 1,
        });
        gauge.set(7);
        assert_eq!(
            source.read(),
            Load {
                connections: 7,
                rooms: 2,
                live_games: 1
            }
        );
        gauge.set(-1);
        assert_eq!(source.read().connections, 0);
    }
}
