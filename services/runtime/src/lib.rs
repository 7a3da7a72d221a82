//! The runtime both Avalon services stand on: layered and validated configuration with hot reload, JSON logs
//! with request ids, Prometheus metrics, liveness/readiness, graceful shutdown, a watchdog for hung runtimes
//! and the `healthcheck` subcommand used by container images.
//!
//! A service binary is `fn main() -> ExitCode { avalon_runtime::run_service::<Settings, _, _>(routes) }`.

pub mod auth;
pub mod build_info;
pub mod config;
pub mod health;
pub mod healthcheck;
mod http_layers;
pub mod lifecycle;
pub mod maintenance_flag;
pub mod metrics;
mod open_files;
mod ops_routes;
pub mod redis_client;
pub mod registry;
pub mod reload;
mod service;
pub mod telemetry;
pub mod watchdog;

pub use service::{ServiceContext, StartError, run_service};
