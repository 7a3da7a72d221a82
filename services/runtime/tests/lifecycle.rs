//! The runtime contract as an operator sees it, on the real `avalon-api` binary: shutdown drains in-flight
//! requests, a stalled runtime is aborted, configuration reloads without a restart, and a bad configuration
//! stops the process before it binds a port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use avalon_runtime::config::{self, ServiceKind, Sources};
use avalon_testkit::{
    Process, Signal, free_port, http_get, service_binary, wait_for_port, wait_until,
};

struct Api {
    process: Process,
    addr: SocketAddr,
}

fn start_api(config_dir: &Path, extra: &[(&str, &str)]) -> Api {
    let port = free_port();
    let ws_port = free_port().to_string();
    let port_text = port.to_string();
    let config_dir = config_dir.display().to_string();
    let mut env: Vec<(&str, &str)> = vec![
        ("APP_ENV", "development"),
        ("BIND_ADDRESS", "127.0.0.1"),
        ("PORT", &port_text),
        ("WS_PORT", &ws_port),
        ("CONFIG_DIR", &config_dir),
        ("LOG_FORMAT", "json"),
        ("DEBUG_ENDPOINTS", "true"),
        ("DATA_DIR", &config_dir),
    ];
    env.extend_from_slice(extra);
    let process = Process::spawn("api", service_binary("avalon-api"), &[], &env);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(
        wait_for_port(addr, Duration::from_secs(20)),
        "api did not start listening on {addr}"
    );
    Api { process, addr }
}

fn get_in_background(
    addr: SocketAddr,
    path: &'static str,
) -> std::thread::JoinHandle<std::io::Result<(u16, String)>> {
    std::thread::spawn(move || http_get(addr, path))
}

#[test]
fn sigterm_lets_in_flight_requests_finish_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut api = start_api(
        dir.path(),
        &[("SHUTDOWN_DRAIN_DELAY", "1s"), ("SHUTDOWN_TIMEOUT", "10s")],
    );
    let in_flight: Vec<_> = (0..3)
        .map(|_| get_in_background(api.addr, "/debug/sleep?ms=2500"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    let signalled = Instant::now();
    api.process.signal(Signal::SIGTERM);
    // During the drain delay the process still answers, but readiness says it is going away.
    let (status, body) = http_get(api.addr, "/readyz").unwrap();
    assert_eq!(status, 503, "readiness while draining: {body}");
    assert!(body.contains("draining"), "{body}");
    assert_eq!(
        http_get(api.addr, "/livez").unwrap().0,
        200,
        "liveness stays up while draining"
    );

    for request in in_flight {
        let (status, body) = request
            .join()
            .unwrap()
            .expect("in-flight request must complete");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"slept_ms\":2500"), "{body}");
    }
    let exit = api
        .process
        .wait_exit(Duration::from_secs(10))
        .expect("process must exit within the deadline");
    assert!(exit.success(), "exit status {exit}");
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(2000),
        "exited before in-flight work finished ({took:?})"
    );
    assert!(
        TcpStream::connect_timeout(&api.addr, Duration::from_millis(300)).is_err(),
        "still accepting"
    );
    assert!(
        api.process
            .wait_for_output("shutdown complete", Duration::from_secs(2))
    );
}

/// The records `/debug/instances` lists (development: the in-process registry).
fn registered(addr: SocketAddr) -> Vec<serde_json::Value> {
    let Ok((200, body)) = http_get(addr, "/debug/instances") else {
        return Vec::new();
    };
    let listing: serde_json::Value = serde_json::from_str(&body).unwrap();
    listing["instances"].as_array().cloned().unwrap_or_default()
}

#[test]
fn without_redis_the_instance_registers_in_process_with_its_requests_in_flight_then_drains() {
    let dir = tempfile::tempdir().unwrap();
    let mut api = start_api(
        dir.path(),
        &[
            ("SHUTDOWN_DRAIN_DELAY", "2s"),
            ("REGISTRY_HEARTBEAT", "100ms"),
            ("REGISTRY_TTL", "1s"),
        ],
    );
    let in_flight: Vec<_> = (0..2)
        .map(|_| get_in_background(api.addr, "/debug/sleep?ms=1500"))
        .collect();
    let busy = wait_until(Duration::from_secs(5), || {
        registered(api.addr)
            .first()
            .is_some_and(|record| record["connections"].as_u64() >= Some(2))
    });
    let records = registered(api.addr);
    assert!(
        busy,
        "the API's connections are its requests in flight: {records:?}"
    );
    let record = &records[0];
    assert_eq!(record["service"], "api");
    assert_eq!(record["state"], "ready");
    assert_eq!(record["slot"], serde_json::Value::Null);
    assert_eq!(record["address"], format!("{}", api.addr));
    assert_eq!(
        (record["rooms"].as_u64(), record["live_games"].as_u64()),
        (Some(0), Some(0))
    );
    for request in in_flight {
        assert_eq!(request.join().unwrap().unwrap().0, 200);
    }

    api.process.signal(Signal::SIGTERM);
    assert!(
        wait_until(Duration::from_secs(1), || registered(api.addr)
            .first()
            .is_some_and(|record| record["state"] == "draining")),
        "draining in the registry while readiness reports draining"
    );
    let exit = api.process.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(exit.success(), "exit status {exit}");
    assert!(api.process.output_contains("registry: record deleted"));
}

#[test]
fn shutdown_deadline_ends_work_that_would_not_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut api = start_api(
        dir.path(),
        &[("SHUTDOWN_DRAIN_DELAY", "0s"), ("SHUTDOWN_TIMEOUT", "1s")],
    );
    let stuck = get_in_background(api.addr, "/debug/sleep?ms=30000");
    std::thread::sleep(Duration::from_millis(300));
    api.process.signal(Signal::SIGTERM);
    let exit = api
        .process
        .wait_exit(Duration::from_secs(5))
        .expect("the deadline must end the process");
    assert_eq!(
        exit.code(),
        Some(1),
        "a missed deadline is a failed shutdown"
    );
    let cut_off = stuck.join().unwrap();
    assert!(
        cut_off.is_err() || cut_off.is_ok_and(|(status, _)| status != 200),
        "the stuck request must be cut off, not answered"
    );
    assert!(
        api.process
            .output_contains("did not finish before the deadline")
    );
}

#[test]
fn watchdog_aborts_a_stalled_runtime() {
    let dir = tempfile::tempdir().unwrap();
    // One worker thread, so blocking it stalls the whole runtime.
    let mut api = start_api(
        dir.path(),
        &[("TOKIO_WORKER_THREADS", "1"), ("WATCHDOG_TIMEOUT", "1s")],
    );
    assert_eq!(http_get(api.addr, "/livez").unwrap().0, 200);
    let addr = api.addr;
    std::thread::spawn(move || {
        use std::io::Write;
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let _ = stream.write_all(
                b"POST /debug/stall?secs=60 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            );
            std::thread::sleep(Duration::from_secs(10));
        }
    });
    let started = Instant::now();
    let exit = api
        .process
        .wait_exit(Duration::from_secs(10))
        .expect("watchdog must abort within seconds");
    assert_eq!(exit.signal(), Some(6), "expected SIGABRT, got {exit}");
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(
        api.process
            .wait_for_output("async runtime stalled", Duration::from_secs(2))
    );
}

fn debug_request_lines(api: &Api) -> usize {
    api.process
        .output()
        .iter()
        .filter(|line| {
            line.contains("\"level\":\"DEBUG\"") && line.contains("started processing request")
        })
        .count()
}

#[test]
fn config_reload_changes_the_log_level_without_restart_and_rejects_invalid_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("development.toml");
    std::fs::write(&file, "log_level = \"info\"\n").unwrap();
    let mut api = start_api(dir.path(), &[]);
    let pid = api.process.pid();

    http_get(api.addr, "/livez").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        debug_request_lines(&api),
        0,
        "debug lines logged at info level"
    );

    // A file change alone triggers the reload.
    std::fs::write(&file, "log_level = \"debug\"\n").unwrap();
    assert!(
        api.process
            .wait_for_output("configuration reloaded", Duration::from_secs(10)),
        "no reload after the file changed"
    );
    http_get(api.addr, "/livez").unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || debug_request_lines(&api) > 0),
        "log level did not change"
    );

    // An invalid file, announced with SIGHUP, is rejected and the running level kept.
    std::fs::write(&file, "log_level = \"shouting\"\n").unwrap();
    api.process.signal(Signal::SIGHUP);
    assert!(
        api.process
            .wait_for_output("configuration reload rejected", Duration::from_secs(10))
    );
    let before = debug_request_lines(&api);
    http_get(api.addr, "/livez").unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || debug_request_lines(&api)
            > before),
        "old level not kept"
    );

    // Changing a fixed key is reported, not applied.
    std::fs::write(&file, "log_level = \"debug\"\nshutdown_timeout = \"15s\"\n").unwrap();
    api.process.signal(Signal::SIGHUP);
    assert!(
        api.process
            .wait_for_output("needs restart", Duration::from_secs(10))
    );
    assert!(
        api.process.is_running(),
        "reload must not restart or stop the process"
    );
    assert_eq!(api.process.pid(), pid);
    let (_, metrics) = http_get(api.addr, "/metrics").unwrap();
    assert!(
        metrics.contains("config_reloads_total{result=\"rejected\"}"),
        "{metrics}"
    );
}

#[test]
fn invalid_configuration_exits_before_binding_with_the_validator_messages() {
    let port = free_port();
    let port_text = port.to_string();
    let env_pairs = [
        ("APP_ENV", "production"),
        ("JWT_SECRET", "short"),
        ("PORT", port_text.as_str()),
        ("CONFIG_DIR", "/nonexistent"),
    ];
    let env: BTreeMap<String, String> = env_pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for (service, binary) in [
        (ServiceKind::Api, "avalon-api"),
        (ServiceKind::Ws, "avalon-ws"),
    ] {
        let mut process = Process::spawn(binary, service_binary(binary), &[], &env_pairs);
        let exit = process
            .wait_exit(Duration::from_secs(10))
            .expect("must exit at once");
        assert_eq!(exit.code(), Some(2), "{binary}: {exit}");
        assert!(
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
                .is_err()
        );
        let expected = config::check(&Sources::from_env(env.clone()), &[service]);
        assert!(expected.iter().any(|v| v.variable == "JWT_SECRET"));
        std::thread::sleep(Duration::from_millis(100));
        for violation in expected {
            assert!(
                process.output_contains(&violation.to_string()),
                "{binary} did not print `{violation}`: {:?}",
                process.output()
            );
        }
    }
}

#[test]
fn healthcheck_subcommand_reports_the_running_process() {
    let dir = tempfile::tempdir().unwrap();
    let api = start_api(dir.path(), &[]);
    let port = api.addr.port().to_string();
    let healthy = std::process::Command::new(service_binary("avalon-api"))
        .arg("healthcheck")
        .env("PORT", &port)
        .env("CONFIG_DIR", "/nonexistent")
        .status()
        .unwrap();
    assert!(healthy.success());
    drop(api);

    let started = Instant::now();
    let down = std::process::Command::new(service_binary("avalon-api"))
        .arg("healthcheck")
        .env("PORT", &port)
        .env("CONFIG_DIR", "/nonexistent")
        .status()
        .unwrap();
    assert_eq!(down.code(), Some(1));
    assert!(started.elapsed() < Duration::from_millis(2500));
}

/// Raw request returning the head (status line and headers) in lower case.
fn request_head(addr: SocketAddr, extra_headers: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra_headers}\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

#[test]
fn every_response_carries_a_request_id_and_metrics_show_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let api = start_api(dir.path(), &[]);
    let propagated = request_head(api.addr, "X-Request-ID: trace-from-nginx-42\r\n");
    assert!(
        propagated.contains("x-request-id: trace-from-nginx-42"),
        "{propagated}"
    );
    let generated = request_head(api.addr, "");
    let id = generated
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .expect("a request id is generated");
    assert_eq!(id.len(), 36, "a UUID: {id}");

    let (status, metrics) = http_get(api.addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("build_info{revision="), "{metrics}");
    assert!(
        metrics.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{metrics}"
    );
    assert!(
        metrics.contains("http_requests_total{method=\"GET\",route=\"/livez\",status=\"200\"}"),
        "{metrics}"
    );
}
