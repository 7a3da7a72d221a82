//! Wiring: the store and bus for the configured mode, the Socket.IO layer on `/socket.io/`, handlers,
//! background tasks, readiness and metrics.

use std::sync::Arc;

use avalon_game::FINISHED_GAMES_SPOOL;
use avalon_runtime::ServiceContext;
use avalon_runtime::config::WsSettings;
use avalon_runtime::registry::{Load, count};
use axum::Router;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;

use crate::app::App;
use crate::error::WsError;
use crate::fanout;
use crate::metrics::WsMetrics;
use crate::store::{MemoryStore, RedisStore, Store};

/// Each WebSocket's read buffer (engineioxide's default is 4 KiB). It is held, zero-filled, for the life of
/// every connection, idle or not, while client packets are small (a move, a chat line); a larger message
/// still arrives whole, as tungstenite grows the buffer to the frame (MAX_MESSAGE_BYTES caps it). 4 KiB →
/// 1 KiB saved 3 KiB per idle connection in `cargo xtask bench ws` (docs/protocol.md §9).
pub const WS_READ_BUFFER: usize = 1024;

pub async fn build(context: ServiceContext<WsSettings>) -> Result<Router, String> {
    let metrics = WsMetrics::register(context.metrics.registry())
        .map_err(|err| format!("cannot register game-server metrics: {err}"))?;
    let (bus, bus_rx) = tokio::sync::mpsc::unbounded_channel();
    let settings = &context.config.service;
    if settings.fault_inject_refuse_rate > 0.0 {
        tracing::warn!(
            rate = settings.fault_inject_refuse_rate,
            "FAULT_INJECT_WS_REFUSE_RATE is set: this instance refuses that share of Socket.IO handshakes on purpose"
        );
    }
    let max_bytes = usize::try_from(settings.max_message_bytes).unwrap_or(usize::MAX);
    let (service, io) = SocketIo::builder()
        .max_payload(u64::from(settings.max_message_bytes))
        .ws_max_message_size(max_bytes)
        .ws_max_frame_size(max_bytes)
        .ws_read_buffer_size(WS_READ_BUFFER)
        .build_svc();

    let resubscribed = Arc::new(tokio::sync::Notify::new());
    let (store, redis) = match &context.config.common.redis {
        Some(redis) => {
            let store = Arc::new(RedisStore::connect(redis, metrics.clone()).await?);
            store.spawn_listener(bus, Arc::clone(&resubscribed));
            (Store::Redis(Arc::clone(&store)), true)
        }
        None => {
            let spool = context.config.common.data_dir.join(FINISHED_GAMES_SPOOL);
            tracing::info!(spool = %spool.display(), "no REDIS_HOST: in-process rooms, single instance");
            (Store::Memory(MemoryStore::new(spool, bus)), false)
        }
    };
    let app = Arc::new(App::new(
        Arc::clone(&context.config),
        context.live.clone(),
        context.lifecycle.clone(),
        metrics,
        store,
        io.clone(),
    ));
    if redis {
        let checked = Arc::clone(&app);
        context.health.register("redis", move || {
            let app = Arc::clone(&checked);
            async move { app.store.ping().await }
        });
    }

    let admit_app = Arc::clone(&app);
    let connect_app = Arc::clone(&app);
    io.ns(
        "/",
        (move |socket: SocketRef| {
            let app = Arc::clone(&connect_app);
            async move { crate::connect::connected(app, socket).await }
        })
        .with(move |socket: SocketRef, TryData(auth): TryData<Value>| {
            let app = Arc::clone(&admit_app);
            async move {
                crate::connect::admit(&app, &socket, auth)
                    .await
                    .map_err(|err: WsError| err)
            }
        }),
    );
    if redis {
        // Only once the default namespace exists: `sockets()` panics without it, and the listener's
        // first subscription signals at once, so a resync task started earlier died on its first turn
        // and no resubscription after a Redis outage was ever followed by a resync.
        tokio::spawn(resync_after_resubscribe(Arc::clone(&app), resubscribed));
    }
    let reported = Arc::clone(&app);
    context.load.replace(move || {
        crate::tasks::refresh_room_gauges(&reported);
        let gauges = &reported.metrics;
        Load {
            connections: count(&gauges.connections),
            rooms: count(&gauges.rooms),
            live_games: count(&gauges.active_games),
        }
    });
    fanout::spawn(Arc::clone(&app), bus_rx);
    crate::tasks::spawn_all(&app);
    tracing::info!(instance = %app.instance, "game server ready on /socket.io/");
    // Mounted as routes (not a layer) so the runtime's ops routes merge beside it.
    Ok(Router::new()
        .route_service("/socket.io/", service.clone())
        .route_service("/socket.io", service)
        .layer(axum::middleware::map_request(crate::request_head::detach)))
}

/// After (re)subscribing, states published while this instance was not listening are fetched and pushed.
async fn resync_after_resubscribe(app: Arc<App>, resubscribed: Arc<tokio::sync::Notify>) {
    loop {
        resubscribed.notified().await;
        // No default namespace once the server is closing (`io.sockets()` would panic): nothing to resync.
        let Some(namespace) = app.io.of("/") else {
            continue;
        };
        let codes: std::collections::HashSet<String> = namespace
            .sockets()
            .iter()
            .filter_map(|socket| crate::app::session_of(socket).and_then(|session| session.room()))
            .collect();
        for code in codes {
            if let Ok(Some(room)) = app.store.load(&code).await {
                fanout::deliver(
                    &app,
                    &crate::store::BusMessage {
                        code: code.clone(),
                        version: room.version,
                        room: Some(room),
                        chat: None,
                    },
                );
            }
        }
    }
}
