//! avalon-api binary: everything lives in the library (`avalon_api::build`).

use std::process::ExitCode;

use avalon_runtime::config::ApiSettings;

fn main() -> ExitCode {
    avalon_runtime::run_service::<ApiSettings, _, _>(avalon_api::build)
}
