//! The game server's Prometheus metrics, registered beside the runtime's on the same registry. Gauges are
//! per instance: sum them over instances for connections; rooms and games split across instances count once
//! on each instance that serves one of their players.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct WsMetrics {
    pub connections: IntGauge,
    pub rooms: IntGauge,
    pub active_games: IntGauge,
    events: IntCounterVec,
    event_duration: HistogramVec,
    redis_errors: IntCounterVec,
    refused: IntCounterVec,
    /// Handshakes admitted; with `refused`, the game server's own handshake failure rate (a deploy
    /// judgment reads both).
    pub accepted: prometheus::IntCounter,
    pub games_finished: prometheus::IntCounter,
}

impl WsMetrics {
    pub fn register(registry: &Registry) -> Result<WsMetrics, prometheus::Error> {
        let connections = IntGauge::new(
            "ws_connections",
            "Socket.IO connections open on this instance",
        )?;
        let rooms = IntGauge::new(
            "ws_rooms",
            "Rooms with at least one player connected to this instance",
        )?;
        let active_games = IntGauge::new(
            "ws_active_games",
            "Running games with at least one player connected to this instance",
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                "ws_events_total",
                "Client events handled, by event and result code",
            ),
            &["event", "result"],
        )?;
        let event_duration = HistogramVec::new(
            HistogramOpts::new(
                "ws_event_duration_seconds",
                "Time from receiving a client event to its acknowledgement",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["event"],
        )?;
        let redis_errors = IntCounterVec::new(
            Opts::new(
                "ws_redis_errors_total",
                "Failed Redis operations, by operation",
            ),
            &["operation"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "ws_connections_refused_total",
                "Refused Socket.IO handshakes, by code",
            ),
            &["code"],
        )?;
        let accepted = prometheus::IntCounter::new(
            "ws_connections_accepted_total",
            "Socket.IO handshakes admitted",
        )?;
        let games_finished = prometheus::IntCounter::new(
            "ws_games_finished_total",
            "Games finished by an action handled on this instance",
        )?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(rooms.clone()))?;
        registry.register(Box::new(active_games.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(event_duration.clone()))?;
        registry.register(Box::new(redis_errors.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(accepted.clone()))?;
        registry.register(Box::new(games_finished.clone()))?;
        Ok(WsMetrics {
            connections,
            rooms,
            active_games,
            events,
            event_duration,
            redis_errors,
            refused,
            accepted,
            games_finished,
        })
    }

    pub fn observe_event(&self, event: &str, result: &str, elapsed: Duration) {
        self.events.with_label_values(&[event, result]).inc();
        self.event_duration
            .with_label_values(&[event])
            .observe(elapsed.as_secs_f64());
    }

    pub fn redis_error(&self, operation: &str) {
        self.redis_errors.with_label_values(&[operation]).inc();
    }

    pub fn refused(&self, code: &str) {
        self.refused.with_label_values(&[code]).inc();
    }
}
