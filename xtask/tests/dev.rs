//! `cargo xtask dev` on a bare machine: both services answer /livez and /readyz, and Ctrl-C stops both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use avalon_testkit::{Process, Signal, free_port, http_get, wait_for_port};

#[test]
fn dev_runs_both_services_on_embedded_defaults_and_stops_on_ctrl_c() {
    let (api_port, ws_port) = (free_port(), free_port());
    let data_dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .arg("dev")
        .env("PORT", api_port.to_string())
        .env("WS_PORT", ws_port.to_string())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("DATA_DIR", data_dir.path())
        // No stores: whatever the developer's shell has, this is the bare-machine path.
        .env_remove("MONGODB_URI")
        .env_remove("REDIS_HOST")
        .env_remove("APP_ENV")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut dev = Process::spawn_command("xtask dev", command);

    for port in [api_port, ws_port] {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // The first run may compile both services.
        assert!(
            wait_for_port(addr, Duration::from_secs(600)),
            "nothing listening on {addr}"
        );
        for path in ["/livez", "/readyz"] {
            let (status, body) = http_get(addr, path).unwrap();
            assert_eq!(status, 200, "{addr}{path}: {body}");
        }
    }
    assert!(
        dev.output().iter().any(|line| line.starts_with("[api] ")),
        "api output is prefixed"
    );
    assert!(
        dev.output().iter().any(|line| line.starts_with("[ws ] ")),
        "ws output is prefixed"
    );

    dev.signal(Signal::SIGINT);
    let exit = dev
        .wait_exit(Duration::from_secs(30))
        .expect("dev must stop after Ctrl-C");
    assert!(exit.success(), "{exit}: {:?}", dev.output());
    assert!(dev.output_contains("both services stopped cleanly"));
    for port in [api_port, ws_port] {
        assert!(
            http_get(([127, 0, 0, 1], port).into(), "/livez").is_err(),
            "port {port} still served"
        );
    }
}
