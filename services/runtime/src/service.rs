//! Start-up and serving, identical for both binaries: validate configuration before binding anything, install
//! logging, start the watchdog, serve the service's routes beside the ops routes, reload on SIGHUP, and shut
//! down in order on SIGTERM/SIGINT.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt as _;
use tokio::signal::unix::{SignalKind, signal};
use tracing::Level;

use crate::config::{Config, ServiceSettings, Sources};
use crate::health::Health;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::registry::{Heartbeat, Identity, Load, LoadSource, RegistryStore, count};
use crate::reload::{LiveConfig, Reloader};
use crate::{build_info, healthcheck, http_layers, ops_routes, telemetry, watchdog};

/// What a service gets to build its routes and register its checks and metrics.
#[derive(Clone)]
pub struct ServiceContext<S> {
    /// The configuration as validated at start-up; fixed keys never change.
    pub config: Arc<Config<S>>,
    /// The reloadable keys as they are now.
    pub live: LiveConfig,
    pub health: Health,
    pub metrics: Metrics,
    pub lifecycle: Lifecycle,
    /// What this instance reports as its load in the instance registry; the API keeps the default (HTTP
    /// requests in flight), the game server replaces it with its connections, rooms and live games.
    pub load: LoadSource,
}

/// How long a clean exit waits to delete its registry record before leaving it to the TTL.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(1);

/// Errors that end start-up; each becomes a log line and a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot start the watchdog: {0}")]
    Watchdog(std::io::Error),
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("service start-up failed: {0}")]
    Service(String),
    #[error("cannot set up the instance registry: {0}")]
    Registry(#[from] crate::registry::RegistryError),
}

const USAGE: &str = "usage: {bin} [healthcheck | check-config | --version]";

/// The whole `main` of a service binary.
pub fn run_service<S, F, Fut>(build: F) -> ExitCode
where
    S: ServiceSettings,
    F: FnOnce(ServiceContext<S>) -> Fut,
    Fut: Future<Output = Result<Router, String>>,
{
    let binary = S::KIND.binary();
    let command = std::env::args().nth(1);
    match command.as_deref() {
        Some("healthcheck") => return exit_code(healthcheck::run(S::KIND)),
        Some("--version" | "version") => {
            println!(
                "{binary} {} ({})",
                build_info::VERSION,
                build_info::REVISION
            );
            return ExitCode::SUCCESS;
        }
        Some("check-config") | None => {}
        Some(other) => {
            eprintln!(
                "{binary}: unknown command {other:?}; {}",
                USAGE.replace("{bin}", binary)
            );
            return ExitCode::from(2);
        }
    }

    let sources = Sources::from_process();
    let config = match Config::<S>::load(&sources) {
        Ok(config) => config,
        Err(invalid) => {
            eprint!("{binary}: {invalid}");
            return ExitCode::from(2);
        }
    };
    if command.as_deref() == Some("check-config") {
        for warning in &config.warnings {
            eprintln!("{binary}: warning: {warning}");
        }
        println!("{binary}: configuration valid");
        return ExitCode::SUCCESS;
    }

    let logs = match telemetry::init(config.common.log_format, &config.live.log_level) {
        Ok(logs) => logs,
        Err(err) => {
            eprintln!("{binary}: {err}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &config.warnings {
        tracing::warn!(variable = %warning.variable, rule = %warning.rule, "suspicious configuration: {warning}");
    }
    match start(sources, config, logs, build) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "{binary} stopped");
            ExitCode::FAILURE
        }
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn start<S, F, Fut>(
    sources: Sources,
    config: Config<S>,
    logs: telemetry::LogControl,
    build: F,
) -> Result<(), StartError>
where
    S: ServiceSettings,
    F: FnOnce(ServiceContext<S>) -> Fut,
    Fut: Future<Output = Result<Router, String>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(S::KIND.binary())
        .build()
        .map_err(StartError::Runtime)?;
    watchdog::start(runtime.handle(), config.common.lifecycle.watchdog_timeout)
        .map_err(StartError::Watchdog)?;
    runtime.block_on(serve(sources, config, logs, build))
}

async fn serve<S, F, Fut>(
    sources: Sources,
    config: Config<S>,
    logs: telemetry::LogControl,
    build: F,
) -> Result<(), StartError>
where
    S: ServiceSettings,
    F: FnOnce(ServiceContext<S>) -> Fut,
    Fut: Future<Output = Result<Router, String>>,
{
    crate::open_files::raise_for(config.live.max_connections);
    let lifecycle = Lifecycle::new();
    let metrics = Metrics::new(S::KIND.name())?;
    let health = Health::new(lifecycle.clone(), config.common.lifecycle.readiness_timeout);
    let live = LiveConfig::new(config.live.clone());
    let config_file = config.config_file.clone();
    let reloader =
        Reloader::new(sources, config.clone(), live.clone()).with_telemetry(logs, metrics.clone());
    crate::reload::spawn(reloader, config_file).map_err(StartError::Signals)?;

    let config = Arc::new(config);
    let in_flight = metrics.requests_in_flight().clone();
    let load = LoadSource::new(move || Load {
        connections: count(&in_flight),
        ..Load::default()
    });
    let context = ServiceContext {
        config: Arc::clone(&config),
        live,
        health: health.clone(),
        metrics: metrics.clone(),
        lifecycle: lifecycle.clone(),
        load: load.clone(),
    };
    let live = context.live.clone();
    let service_routes = build(context).await.map_err(StartError::Service)?;
    let registry_store =
        RegistryStore::for_settings(config.common.redis.as_ref(), config.common.registry.ttl)?;
    let ops = ops_routes::router(
        S::KIND.name(),
        health.clone(),
        metrics.clone(),
        config
            .common
            .debug_endpoints
            .then(|| registry_store.clone()),
    );
    let app = http_layers::outer(
        http_layers::traced(service_routes, Level::INFO)
            .merge(http_layers::traced(ops, Level::DEBUG)),
        metrics.clone(),
    );

    let addr = SocketAddr::new(config.common.bind_address, config.port());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?
        // Small writes (a game event, an acknowledgement) go out at once. With Nagle's algorithm on, a frame
        // written while the client's delayed ACK of the previous one was pending waited ~40 ms: the fan-out
        // p99 at 5,000 rooms was 44 ms for that alone (docs/protocol.md §9).
        .tap_io(|stream| {
            if let Err(err) = stream.set_nodelay(true) {
                tracing::debug!(%err, "cannot set TCP_NODELAY on an accepted connection");
            }
        });
    tracing::info!(
        %addr,
        service = S::KIND.name(),
        version = build_info::VERSION,
        revision = build_info::REVISION,
        app_env = config.common.app_env.name(),
        "listening"
    );

    let registry = Heartbeat {
        identity: Identity::of_this_process(S::KIND, config.common.bind_address, config.port()),
        store: registry_store,
        settings: config.common.registry,
        load,
        live,
        lifecycle: lifecycle.clone(),
        health,
    }
    .spawn();

    spawn_signal_handler(lifecycle.clone(), metrics, &config)?;
    let stopped = lifecycle.clone();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stopped.stop_accepting().await })
    .await
    .map_err(StartError::Serve)?;
    lifecycle.exit_holds_released().await;
    registry.deregister(DEREGISTER_TIMEOUT).await;
    tracing::info!("shutdown complete");
    Ok(())
}

fn spawn_signal_handler<S>(
    lifecycle: Lifecycle,
    metrics: Metrics,
    config: &Config<S>,
) -> Result<(), StartError> {
    let mut terminate = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;
    let drain_delay = config.common.lifecycle.shutdown_drain_delay;
    let timeout = config.common.lifecycle.shutdown_timeout;
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = terminate.recv() => "SIGTERM",
                Some(()) = interrupt.recv() => "SIGINT",
                else => break,
            };
            metrics.set_draining(true);
            let lifecycle = lifecycle.clone();
            // Spawned so that a second signal is still received while the first one drains.
            tokio::spawn(async move { lifecycle.on_signal(drain_delay, timeout, name).await });
        }
    });
    Ok(())
}
