//! The heartbeat: wait until the instance is ready, then write its record every REGISTRY_HEARTBEAT with
//! a REGISTRY_TTL expiry; write `draining` the moment shutdown starts (not at the next tick), keep
//! beating while the drain runs, and delete the record when the process exits cleanly.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::build_info;
use crate::config::RegistrySettings;
use crate::health::Health;
use crate::lifecycle::Lifecycle;
use crate::reload::LiveConfig;

use super::identity::{Identity, now_rfc3339};
use super::load::{Load, LoadSource};
use super::record::{InstanceRecord, InstanceState};
use super::store::RegistryStore;

/// Everything the heartbeat reads.
pub struct Heartbeat {
    pub identity: Identity,
    pub store: RegistryStore,
    pub settings: RegistrySettings,
    pub load: LoadSource,
    pub live: LiveConfig,
    pub lifecycle: Lifecycle,
    pub health: Health,
}

/// A running heartbeat; [`Registered::deregister`] stops it and deletes the record.
pub struct Registered {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    store: RegistryStore,
    id: String,
}

/// The record as of now (pure but for the clock, which the caller passes).
pub fn record(
    identity: &Identity,
    state: InstanceState,
    load: Load,
    max_connections: u64,
    heartbeat_at: String,
) -> InstanceRecord {
    InstanceRecord {
        id: identity.id.clone(),
        service: identity.service.to_owned(),
        version: build_info::VERSION.to_owned(),
        revision: build_info::REVISION.to_owned(),
        slot: identity.slot.clone(),
        host: identity.host.clone(),
        address: identity.address.clone(),
        port: identity.port,
        started_at: identity.started_at.clone(),
        heartbeat_at,
        state,
        connections: load.connections,
        rooms: load.rooms,
        live_games: load.live_games,
        max_connections,
    }
}

impl Heartbeat {
    pub fn spawn(self) -> Registered {
        let (stop, stopped) = watch::channel(false);
        let store = self.store.clone();
        let id = self.identity.id.clone();
        let task = tokio::spawn(self.run(stopped));
        Registered {
            stop,
            task,
            store,
            id,
        }
    }

    fn current(&self, state: InstanceState) -> InstanceRecord {
        record(
            &self.identity,
            state,
            self.load.read(),
            u64::from(self.live.get().max_connections),
            now_rfc3339(),
        )
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.settings.heartbeat);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Registered once ready: an instance that never passes its checks never takes traffic.
        loop {
            tokio::select! {
                _ = stopped.changed() => return,
                _ = ticker.tick() => {}
            }
            if self.lifecycle.is_draining() {
                // Shutting down before it was ever ready: nothing to announce.
                let _ = stopped.changed().await;
                return;
            }
            if self.health.readiness().await.is_ready() {
                break;
            }
        }
        let mut failing = false;
        let mut announced: Option<InstanceState> = None;
        loop {
            let state = if self.lifecycle.is_draining() {
                InstanceState::Draining
            } else {
                InstanceState::Ready
            };
            match self
                .store
                .put(&self.current(state), self.settings.ttl)
                .await
            {
                Ok(()) => {
                    if failing {
                        tracing::info!(id = %self.identity.id, "registry: heartbeat written again");
                        failing = false;
                    }
                    if announced != Some(state) {
                        tracing::info!(id = %self.identity.id, %state, address = %self.identity.address,
                            "registry: instance registered as {state}");
                        announced = Some(state);
                    }
                }
                Err(err) => {
                    if !failing {
                        tracing::warn!(id = %self.identity.id, error = %err,
                            "registry: heartbeat failed; the record expires unless a later one succeeds");
                        failing = true;
                    }
                }
            }
            let draining = state == InstanceState::Draining;
            tokio::select! {
                _ = stopped.changed() => return,
                _ = ticker.tick() => {}
                // The drain's first moment is written at once: the edge must stop sending new work now.
                () = self.lifecycle.draining(), if !draining => {}
            }
        }
    }
}

impl Registered {
    /// Stops the heartbeat, then deletes the record (bounded by `timeout`: exit is not held hostage by a
    /// Redis that is away; the record then expires by its TTL).
    pub async fn deregister(self, timeout: Duration) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        match tokio::time::timeout(timeout, self.store.remove(&self.id)).await {
            Ok(Ok(())) => tracing::info!(id = %self.id, "registry: record deleted"),
            Ok(Err(err)) => {
                tracing::warn!(id = %self.id, error = %err, "registry: cannot delete the record; it expires by its TTL")
            }
            Err(_) => {
                tracing::warn!(id = %self.id, "registry: deleting the record timed out; it expires by its TTL")
            }
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::Ipv4Addr;
    use std::time::Instant;

    use super::*;
    use crate::config::{ApiSettings, Config, ServiceKind, Sources};
    use crate::registry::store::InProcessRegistry;

    fn heartbeat(store: &InProcessRegistry, lifecycle: &Lifecycle, health: &Health) -> Heartbeat {
        let env = std::collections::BTreeMap::from([
            ("APP_ENV".to_owned(), "development".to_owned()),
            (
                "CONFIG_DIR".to_owned(),
                "/nonexistent/avalon-config".to_owned(),
            ),
        ]);
        let config = Config::<ApiSettings>::load(&Sources::from_env(env)).unwrap();
        Heartbeat {
            identity: Identity::new(
                ServiceKind::Api,
                "h1".to_owned(),
                Ipv4Addr::new(10, 0, 0, 2),
                3000,
                None,
            ),
            store: RegistryStore::InProcess(store.clone()),
            settings: RegistrySettings {
                heartbeat: Duration::from_millis(100),
                ttl: Duration::from_millis(300),
            },
            load: LoadSource::new(|| Load {
                connections: 4,
                rooms: 0,
                live_games: 0,
            }),
            live: LiveConfig::new(config.live.clone()),
            lifecycle: lifecycle.clone(),
            health: health.clone(),
        }
    }

    async fn wait_for(
        store: &InProcessRegistry,
        what: &str,
        done: impl Fn(&[InstanceRecord]) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(&store.list()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                store.list()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn registered_when_ready_draining_at_once_and_deleted_on_exit() {
        let store = InProcessRegistry::default();
        let lifecycle = Lifecycle::new();
        let health = Health::new(lifecycle.clone(), Duration::from_millis(100));
        let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gate = std::sync::Arc::clone(&ready);
        health.register("gate", move || {
            let open = gate.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                if open {
                    Ok(())
                } else {
                    Err("not yet".to_owned())
                }
            }
        });
        let registered = heartbeat(&store, &lifecycle, &health).spawn();
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(store.list().is_empty(), "not registered before ready");

        ready.store(true, std::sync::atomic::Ordering::SeqCst);
        wait_for(&store, "ready", |records| {
            records.len() == 1 && records[0].state == InstanceState::Ready
        })
        .await;
        let first = store.list()[0].clone();
        assert_eq!(first.id, "api-h1-3000");
        let default_max: u64 = crate::config::spec::MAX_CONNECTIONS
            .default
            .and_then(|text| text.parse().ok())
            .unwrap();
        assert_eq!((first.connections, first.max_connections), (4, default_max));
        // Beats keep it past its TTL, with a newer heartbeat time.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let later = store.list();
        assert_eq!(later.len(), 1, "the heartbeat keeps the record");
        assert!(later[0].heartbeat_at > first.heartbeat_at);

        let drain_started = Instant::now();
        lifecycle.begin_draining();
        wait_for(&store, "draining", |records| {
            records
                .first()
                .is_some_and(|r| r.state == InstanceState::Draining)
        })
        .await;
        // Written when the drain starts, not left for the TTL: a generous bound for a loaded machine (the
        // websocket's registry test prints the real figure, tens of milliseconds).
        assert!(
            drain_started.elapsed() < Duration::from_secs(1),
            "{:?}",
            drain_started.elapsed()
        );
        registered.deregister(Duration::from_secs(1)).await;
        assert!(store.list().is_empty(), "deleted at clean exit");
    }

    #[tokio::test]
    async fn a_stopped_heartbeat_vanishes_by_ttl() {
        let store = InProcessRegistry::default();
        let lifecycle = Lifecycle::new();
        let health = Health::new(lifecycle.clone(), Duration::from_millis(100));
        let registered = heartbeat(&store, &lifecycle, &health).spawn();
        wait_for(&store, "ready", |records| records.len() == 1).await;
        // A hung or killed process: the task stops beating and nobody deletes anything.
        registered.task.abort();
        let stopped = Instant::now();
        wait_for(&store, "expiry", |records| records.is_empty()).await;
        // TTL 300 ms from the last beat; the bound leaves room for a loaded machine.
        assert!(
            stopped.elapsed() <= Duration::from_secs(2),
            "{:?}",
            stopped.elapsed()
        );
    }
}
