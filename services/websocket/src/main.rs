//! avalon-ws: the real-time game server. Start-up, health, metrics and shutdown come from `avalon-runtime`.

use std::process::ExitCode;

use avalon_runtime::config::WsSettings;

fn main() -> ExitCode {
    avalon_runtime::run_service::<WsSettings, _, _>(
        |_context| async move { Ok(axum::Router::new()) },
    )
}
