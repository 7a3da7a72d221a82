//! avalon-ws: the real-time Avalon game server (Socket.IO v4 on `/socket.io/`). Start-up, health, metrics,
//! reload and shutdown come from `avalon-runtime`; the protocol is documented in `docs/protocol.md`.

mod app;
mod budget;
mod connect;
mod error;
mod fanout;
mod handlers;
mod local_rooms;
mod metrics;
mod payload;
mod request_head;
mod room;
mod server;
mod session;
mod store;
mod tasks;

use std::process::ExitCode;

use avalon_runtime::config::WsSettings;

fn main() -> ExitCode {
    avalon_runtime::run_service::<WsSettings, _, _>(server::build)
}
