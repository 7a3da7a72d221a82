//! `cargo xtask dev` on a bare machine: both services answer /livez and /readyz on loopback only (DEV_LOGIN
//! is on), and Ctrl-C stops both.
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
        // The developer's shell must not choose the address: the default is under test.
        .env_remove("BIND_ADDRESS")
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
        assert_eq!(
            listening_addresses(port),
            ["127.0.0.1"],
            "port {port} must listen on loopback only"
        );
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

/// The local addresses of the sockets listening on `port`, from the kernel's own table (IPv4 and IPv6).
fn listening_addresses(port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    let mut addresses = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let Some((address, hex_port)) = local.split_once(':') else {
                continue;
            };
            if *state != LISTEN || u16::from_str_radix(hex_port, 16).ok() != Some(port) {
                continue;
            }
            addresses.push(match address.len() {
                // IPv4 in network byte order written as a little-endian word.
                8 => {
                    let word = u32::from_str_radix(address, 16).unwrap();
                    std::net::Ipv4Addr::from(word.swap_bytes()).to_string()
                }
                _ => format!("ipv6:{address}"),
            });
        }
    }
    addresses
}
