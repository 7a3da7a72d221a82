//! avalon-api: the HTTP API. Start-up, health, metrics and shutdown come from `avalon-runtime`.

use std::process::ExitCode;

use avalon_runtime::config::ApiSettings;

mod routes;

fn main() -> ExitCode {
    avalon_runtime::run_service::<ApiSettings, _, _>(|context| async move {
        Ok(routes::router(&context))
    })
}
