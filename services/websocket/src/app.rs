//! The shared state every handler and background task works with.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use avalon_runtime::config::{Config, WsSettings};
use avalon_runtime::lifecycle::Lifecycle;
use avalon_runtime::reload::LiveConfig;
use serde::Serialize;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;

use crate::budget::Budgets;
use crate::local_rooms::LocalRooms;
use crate::metrics::WsMetrics;
use crate::session::Session;
use crate::store::Store;

pub struct App {
    pub config: Arc<Config<WsSettings>>,
    pub live: LiveConfig,
    pub lifecycle: Lifecycle,
    pub metrics: WsMetrics,
    pub store: Store,
    pub io: SocketIo,
    /// Names this process in member connection ids and logs.
    pub instance: String,
    /// RATE_LIMIT_USER and WS_CHAT_PER_MINUTE budgets, per user across their sockets here.
    pub budgets: Budgets,
    /// The game rooms with a player connected here; every socket changes room through it.
    pub rooms: LocalRooms,
    maintenance: RwLock<MaintenanceNotice>,
}

/// The effective maintenance state pushed to clients as `server:maintenance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaintenanceNotice {
    pub enabled: bool,
    pub message: String,
    /// Seconds the operator expects maintenance to last (0 = unknown).
    pub retry_after: u64,
}

impl App {
    pub fn new(
        config: Arc<Config<WsSettings>>,
        live: LiveConfig,
        lifecycle: Lifecycle,
        metrics: WsMetrics,
        store: Store,
        io: SocketIo,
    ) -> App {
        App {
            config,
            live,
            lifecycle,
            metrics,
            store,
            io,
            instance: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            budgets: Budgets::default(),
            rooms: LocalRooms::default(),
            maintenance: RwLock::new(MaintenanceNotice {
                enabled: false,
                message: String::new(),
                retry_after: 0,
            }),
        }
    }

    pub fn ws(&self) -> &WsSettings {
        &self.config.service
    }

    pub fn room_ttl(&self) -> Duration {
        self.ws().room_ttl
    }

    pub fn maintenance(&self) -> MaintenanceNotice {
        self.maintenance
            .read()
            .map(|notice| notice.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Stores the new state; true when it differs from the previous one.
    pub fn set_maintenance(&self, notice: MaintenanceNotice) -> bool {
        match self.maintenance.write() {
            Ok(mut current) if *current != notice => {
                *current = notice;
                true
            }
            _ => false,
        }
    }
}

pub fn session_of(socket: &SocketRef) -> Option<Arc<Session>> {
    socket.extensions.get::<Arc<Session>>()
}
