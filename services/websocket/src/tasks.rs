//! Background work of one instance: maintenance notices, idle sockets, gauges and room expiry, and the
//! drain that hands every client to another instance on shutdown.

use std::sync::Arc;
use std::time::Duration;

use avalon_runtime::lifecycle::ExitHold;
use serde::Deserialize;
use serde_json::json;

use crate::app::{App, MaintenanceNotice, session_of};
use crate::connect::MAINTENANCE;
use crate::fanout::close_room;
use crate::session::now_ms;

pub const RECONNECT: &str = "server:reconnect";
pub const IDLE: &str = "server:idle";

/// How often the shared maintenance flag is read.
const MAINTENANCE_POLL: Duration = avalon_runtime::maintenance_flag::POLL_EVERY;
/// How long clients get to read `server:reconnect` before their sockets are closed.
const DRAIN_GRACE: Duration = Duration::from_millis(300);
/// How long the transports get to write the disconnect packets once every socket is closed.
const CLOSE_FLUSH: Duration = Duration::from_millis(100);

pub fn spawn_all(app: &Arc<App>) {
    tokio::spawn(watch_maintenance(Arc::clone(app)));
    tokio::spawn(close_idle_sockets(Arc::clone(app)));
    tokio::spawn(housekeeping(Arc::clone(app)));
    // Taken now, not inside the task, so that a signal arriving before the task first runs still waits for it.
    let hold = app.lifecycle.hold_exit();
    tokio::spawn(drain(Arc::clone(app), hold));
}

/// The JSON an operator writes to `avalon:maintenance`; null or missing fields take their defaults.
#[derive(Debug, Deserialize)]
struct SharedFlag {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    retry_after: Option<u64>,
}

async fn watch_maintenance(app: Arc<App>) {
    let mut ticker = tokio::time::interval(MAINTENANCE_POLL);
    loop {
        ticker.tick().await;
        let live = app.live.get();
        let shared = match app.store.maintenance_flag().await {
            Ok(Some(json)) => match serde_json::from_str::<SharedFlag>(&json) {
                Ok(flag) => Some(flag),
                Err(err) => {
                    tracing::warn!(error = %err, "ignoring an unreadable avalon:maintenance value");
                    None
                }
            },
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the maintenance flag; keeping the last state");
                continue;
            }
        };
        let notice = match shared {
            Some(flag) if flag.enabled == Some(true) => MaintenanceNotice {
                enabled: true,
                message: flag
                    .message
                    .filter(|message| !message.is_empty())
                    .unwrap_or_else(|| live.maintenance.message.clone()),
                retry_after: flag.retry_after.unwrap_or(0),
            },
            _ if live.maintenance.enabled => MaintenanceNotice {
                enabled: true,
                message: live.maintenance.message.clone(),
                retry_after: 0,
            },
            _ => MaintenanceNotice {
                enabled: false,
                message: String::new(),
                retry_after: 0,
            },
        };
        if app.set_maintenance(notice.clone()) {
            tracing::info!(enabled = notice.enabled, "maintenance state changed");
            let _ = app.io.emit(MAINTENANCE, &notice).await;
        }
    }
}

async fn close_idle_sockets(app: Arc<App>) {
    let limit = app.ws().idle_timeout;
    let mut ticker =
        tokio::time::interval((limit / 4).clamp(Duration::from_secs(1), Duration::from_secs(30)));
    loop {
        ticker.tick().await;
        let now = now_ms();
        for socket in app.io.sockets() {
            let Some(session) = session_of(&socket) else {
                continue;
            };
            if session.idle_for(now) > limit {
                let _ = socket.emit(
                    IDLE,
                    &json!({
                        "code": "IDLE_TIMEOUT",
                        "message": format!("no activity for {}s; disconnected", limit.as_secs()),
                    }),
                );
                let _ = socket.disconnect();
            }
        }
    }
}

/// Keeps the room and game gauges current (from what this instance delivered, without reading the store)
/// and, in embedded mode, expires abandoned rooms.
async fn housekeeping(app: Arc<App>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticker.tick().await;
        for code in app.store.sweep_expired(now_ms(), app.room_ttl()) {
            for socket in app.io.within(code.clone()).sockets() {
                close_room(
                    &app,
                    &socket,
                    &code,
                    "the room expired after a long time without activity",
                );
            }
        }
        refresh_room_gauges(&app);
    }
}

/// Sets `ws_rooms` (rooms with a player connected here) and `ws_active_games` (of those, the ones whose
/// game is in progress) from the rooms kept as sockets move ([`crate::local_rooms`]). Called by
/// housekeeping and by every registry heartbeat, so the registry's `rooms`/`live_games` are these gauges.
pub fn refresh_room_gauges(app: &App) {
    let counts = app.rooms.counts();
    app.metrics
        .rooms
        .set(i64::try_from(counts.rooms).unwrap_or(i64::MAX));
    app.metrics
        .active_games
        .set(i64::try_from(counts.playing).unwrap_or(i64::MAX));
}

/// On SIGTERM: tell every client to reconnect (their state is in the store; the next instance resumes it),
/// then close the sockets. New handshakes are already refused with `DRAINING`. The process is held open
/// meanwhile: an emit only queues the packet for the socket's transport task, and the HTTP server's shutdown
/// does not wait for upgraded connections, so without the hold the process could exit before any notice was
/// written.
async fn drain(app: Arc<App>, _exit_hold: ExitHold) {
    app.lifecycle.draining().await;
    let sockets = app.io.sockets();
    tracing::info!(
        sockets = sockets.len(),
        "draining: asking every client to reconnect elsewhere"
    );
    let notice = json!({
        "code": "DRAINING",
        "message": "this server is restarting; reconnect now to continue where you were",
        "retry_after_ms": 0,
    });
    for socket in &sockets {
        let _ = socket.emit(RECONNECT, &notice);
    }
    tokio::time::sleep(DRAIN_GRACE).await;
    for socket in app.io.sockets() {
        let _ = socket.disconnect();
    }
    let closed_by = tokio::time::Instant::now() + DRAIN_GRACE;
    while !app.io.sockets().is_empty() && tokio::time::Instant::now() < closed_by {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A socket leaves the namespace when it is closed, before its transport has written the queued
    // disconnect packet: a moment for those writes (a client that misses one reconnects on the close).
    tokio::time::sleep(CLOSE_FLUSH).await;
}
