//! Hot reload: on SIGHUP or a change of the config file, the configuration is read again from the same
//! sources. Reloadable keys swap atomically; a changed fixed key is logged as needing a restart; an invalid
//! configuration is rejected and the running one kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::Watcher;
use tokio::sync::mpsc;

use crate::config::{Config, Invalid, Live, ServiceSettings, Sources};
use crate::metrics::Metrics;
use crate::telemetry::LogControl;

/// The reloadable part of the configuration, readable without locks from any task.
#[derive(Clone)]
pub struct LiveConfig {
    current: Arc<ArcSwap<Live>>,
}

impl LiveConfig {
    pub fn new(live: Live) -> LiveConfig {
        LiveConfig {
            current: Arc::new(ArcSwap::from_pointee(live)),
        }
    }

    pub fn get(&self) -> Arc<Live> {
        self.current.load_full()
    }

    fn store(&self, live: Live) {
        self.current.store(Arc::new(live));
    }
}

#[derive(Debug)]
pub enum ReloadOutcome {
    /// The new reloadable values are live; `needs_restart` lists fixed keys that changed but were ignored.
    Applied {
        changed: bool,
        needs_restart: Vec<&'static str>,
    },
    Rejected(Invalid),
}

/// Re-reads configuration and applies what may change at run time.
pub struct Reloader<S> {
    sources: Sources,
    running: Mutex<Config<S>>,
    live: LiveConfig,
    logs: Option<LogControl>,
    metrics: Option<Metrics>,
}

impl<S: ServiceSettings> Reloader<S> {
    pub fn new(sources: Sources, running: Config<S>, live: LiveConfig) -> Reloader<S> {
        Reloader {
            sources,
            running: Mutex::new(running),
            live,
            logs: None,
            metrics: None,
        }
    }

    pub fn with_telemetry(mut self, logs: LogControl, metrics: Metrics) -> Reloader<S> {
        self.logs = Some(logs);
        self.metrics = Some(metrics);
        self
    }

    pub fn reload(&self, trigger: &str) -> ReloadOutcome {
        let outcome = match Config::<S>::load(&self.sources) {
            Err(invalid) => ReloadOutcome::Rejected(invalid),
            Ok(newer) => self.apply(newer),
        };
        self.report(trigger, &outcome);
        outcome
    }

    fn apply(&self, newer: Config<S>) -> ReloadOutcome {
        let Ok(mut running) = self.running.lock() else {
            let violation =
                crate::config::Violation::new("reload", "internal state poisoned by a panic");
            return ReloadOutcome::Rejected(Invalid {
                violations: vec![violation],
            });
        };
        let needs_restart = running.needs_restart(&newer);
        let old_live = self.live.get();
        let changed = *old_live != newer.live;
        if changed {
            if old_live.log_level != newer.live.log_level
                && let Some(logs) = &self.logs
                && let Err(err) = logs.set_filter(&newer.live.log_level)
            {
                tracing::error!(error = %err, "cannot apply the new log level");
            }
            if newer.live.max_connections > old_live.max_connections {
                // More connections are more open files: the limit follows (or a warning says it cannot).
                crate::open_files::raise_for(newer.live.max_connections);
            }
            self.live.store(newer.live.clone());
            running.live = newer.live;
        }
        ReloadOutcome::Applied {
            changed,
            needs_restart,
        }
    }

    fn report(&self, trigger: &str, outcome: &ReloadOutcome) {
        match outcome {
            ReloadOutcome::Applied {
                changed,
                needs_restart,
            } => {
                let live = self.live.get();
                tracing::info!(
                    trigger,
                    changed,
                    log_level = %live.log_level,
                    max_connections = live.max_connections,
                    rate_limit_ip = live.rate_limit_ip,
                    rate_limit_user = live.rate_limit_user,
                    maintenance = live.maintenance.enabled,
                    "configuration reloaded"
                );
                for key in needs_restart {
                    tracing::warn!(
                        trigger,
                        variable = key,
                        "configuration change needs restart; ignored until then"
                    );
                }
                self.count(if *changed { "applied" } else { "unchanged" });
            }
            ReloadOutcome::Rejected(invalid) => {
                let problems: Vec<String> =
                    invalid.violations.iter().map(ToString::to_string).collect();
                tracing::error!(
                    trigger,
                    ?problems,
                    "configuration reload rejected; keeping the running configuration"
                );
                self.count("rejected");
            }
        }
    }

    fn count(&self, result: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.observe_reload(result);
        }
    }
}

/// Reloads on SIGHUP and whenever the config file is written, created or replaced.
pub fn spawn<S: ServiceSettings>(
    reloader: Reloader<S>,
    config_file: PathBuf,
) -> std::io::Result<()> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let (changed_tx, mut changed_rx) = mpsc::channel::<()>(1);
    let watcher = watch_file(&config_file, changed_tx);
    tokio::spawn(async move {
        // Held for as long as the loop runs; dropping it stops the notifications.
        let _watcher = watcher;
        loop {
            let trigger = tokio::select! {
                Some(()) = hangups.recv() => "SIGHUP",
                Some(()) = changed_rx.recv() => {
                    // Editors write in several steps; let them finish before reading.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    while changed_rx.try_recv().is_ok() {}
                    "config file changed"
                }
                else => break,
            };
            reloader.reload(trigger);
        }
    });
    Ok(())
}

/// Watches the file's directory, not the file: editors and `kubectl`/Compose config mounts replace files.
fn watch_file(file: &Path, changed: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let dir = file
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        tracing::info!(dir = %dir.display(), "config directory absent; reload on SIGHUP only");
        return None;
    }
    let name = file.file_name()?.to_owned();
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        if event
            .paths
            .iter()
            .any(|path| path.file_name() == Some(name.as_os_str()))
        {
            let _ = changed.try_send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(watcher) => watcher,
        Err(err) => {
            tracing::warn!(error = %err, "cannot watch the config file; reload on SIGHUP only");
            return None;
        }
    };
    if let Err(err) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!(error = %err, dir = %dir.display(), "cannot watch the config directory; reload on SIGHUP only");
        return None;
    }
    Some(watcher)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::ApiSettings;

    fn sources(dir: &Path) -> Sources {
        let env = BTreeMap::from([("CONFIG_DIR".to_owned(), dir.display().to_string())]);
        Sources::from_env(env)
    }

    fn reloader(dir: &Path) -> Reloader<ApiSettings> {
        let sources = sources(dir);
        let config = Config::<ApiSettings>::load(&sources).unwrap();
        let live = LiveConfig::new(config.live.clone());
        Reloader::new(sources, config, live)
    }

    #[test]
    fn reload_changes_the_log_level_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("development.toml"),
            "log_level = \"info\"\n",
        )
        .unwrap();
        let reloader = reloader(dir.path());
        assert_eq!(reloader.live.get().log_level, "info");

        std::fs::write(
            dir.path().join("development.toml"),
            "log_level = \"debug\"\nrate_limit_ip = 7\n",
        )
        .unwrap();
        let outcome = reloader.reload("test");
        assert!(
            matches!(outcome, ReloadOutcome::Applied { changed: true, ref needs_restart } if needs_restart.is_empty())
        );
        assert_eq!(reloader.live.get().log_level, "debug");
        assert_eq!(reloader.live.get().rate_limit_ip, 7);
    }

    #[test]
    fn invalid_reload_keeps_the_running_configuration() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("development.toml"),
            "log_level = \"warn\"\n",
        )
        .unwrap();
        let reloader = reloader(dir.path());

        std::fs::write(
            dir.path().join("development.toml"),
            "log_level = \"loud\"\nmax_connections = 0\n",
        )
        .unwrap();
        let ReloadOutcome::Rejected(invalid) = reloader.reload("test") else {
            panic!("an invalid file must be rejected");
        };
        let named: Vec<&str> = invalid
            .violations
            .iter()
            .map(|v| v.variable.as_str())
            .collect();
        assert_eq!(named, ["LOG_LEVEL", "MAX_CONNECTIONS"]);
        assert_eq!(reloader.live.get().log_level, "warn");
        assert_eq!(reloader.live.get().max_connections, 36_000);
    }

    #[test]
    fn changed_fixed_key_is_reported_as_needing_restart_and_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("development.toml"), "port = 3000\n").unwrap();
        let reloader = reloader(dir.path());

        std::fs::write(
            dir.path().join("development.toml"),
            "port = 4000\nmaintenance_mode = true\n",
        )
        .unwrap();
        let ReloadOutcome::Applied {
            changed,
            needs_restart,
        } = reloader.reload("test")
        else {
            panic!("a valid file must be applied");
        };
        assert!(changed);
        assert_eq!(needs_restart, ["PORT"]);
        assert!(reloader.live.get().maintenance.enabled);
        assert_eq!(reloader.running.lock().unwrap().common.api_port, 3000);
    }
}
