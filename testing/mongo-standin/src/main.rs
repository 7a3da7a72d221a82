//! A MongoDB wire-protocol stand-in for stack tests on hosts that cannot obtain a MongoDB image: the
//! shipped compose overlays run it unchanged through `MONGO_IMAGE`. In memory, standalone, SCRAM-SHA-256,
//! the commands the API's store and the driver's handshake use — see README.md for what it does not do.
//!
//! Invoked as `mongosh` (the image links that name to this binary for the compose healthcheck) it is a
//! tiny client that only runs `db.adminCommand('ping')`.

mod admin;
mod auth;
mod commands;
mod config;
mod crud;
mod cursor;
mod error;
mod handshake;
mod mongosh;
mod query;
mod server;
mod store;
mod update;
mod wire;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

fn main() -> ExitCode {
    let mut args = std::env::args();
    let program = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let invoked_as = std::path::Path::new(&program)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if invoked_as == "mongosh" {
        return mongosh::main(&rest);
    }
    if rest.first().map(String::as_str) == Some("mongosh") {
        return mongosh::main(&rest[1..]);
    }
    match run_server(&rest) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mongo-standin: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_server(args: &[String]) -> anyhow::Result<()> {
    let config = config::Config::from_env_and_args(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let users: Vec<String> = config
            .users
            .iter()
            .map(|user| format!("{user:?}"))
            .collect();
        eprintln!(
            "mongo-standin: listening on {} (in-memory test fixture, not MongoDB); users: {}",
            listener
                .local_addr()
                .map_or_else(|_| config.bind.to_string(), |addr| addr.to_string()),
            if users.is_empty() {
                "none, access control off".to_owned()
            } else {
                users.join(", ")
            }
        );
        let shared = Arc::new(commands::Shared::new(config.users));
        // PID 1 in a container ignores SIGTERM unless it handles it: stop at once (nothing to flush).
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("installing the SIGTERM handler")?;
        tokio::select! {
            served = server::serve(listener, shared) => served.context("accepting connections"),
            _ = terminate.recv() => {
                eprintln!("mongo-standin: SIGTERM, exiting");
                Ok(())
            }
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
