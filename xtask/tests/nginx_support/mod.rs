//! Shared fixtures for the nginx edge tests: a real nginx from a temporary state directory, driven by the
//! real `cargo xtask nginx` binary; real API replicas on loopback; a raw HTTP/WebSocket client.
//!
//! Every load loop here is bounded in requests and time, and every address is on loopback.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use avalon_testkit::{Process, free_port, require_tool, wait_for_port};
use serde_json::{Value, json};

/// A model for a test edge: plain HTTP on a free loopback port, every path inside `state`.
pub fn base_model(state: &Path, http_port: u16, slots: Value) -> Value {
    let logs = state.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::create_dir_all(state.join("tmp")).unwrap();
    json!({
        "listen": { "address": "127.0.0.1", "http": http_port },
        "slots": slots,
        "rate_limits": { "api_per_second": 100000, "api_burst": 100000, "ws_connections_per_ip": 1000 },
        "paths": {
            "pid": logs.join("nginx.pid"),
            "error_log": logs.join("error.log"),
            "access_log": logs.join("access.log"),
            "temp": state.join("tmp"),
            "acme_root": state.join("acme"),
        },
        "worker_processes": "2",
        "worker_connections": 1024,
    })
}

/// One slot, weight 100.
pub fn single_slot(api: &[String], websocket: &[String]) -> Value {
    json!([{ "name": "blue", "api": api, "websocket": websocket, "weight": 100 }])
}

/// The xtask binary under test.
pub fn xtask() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xtask"))
}

/// Runs `cargo xtask nginx <args>` and returns (success, stdout, stderr).
pub fn run_xtask(args: &[&str]) -> (bool, String, String) {
    eprintln!("$ xtask {}", args.join(" "));
    let output = Command::new(xtask()).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!("{stderr}");
    (output.status.success(), stdout, stderr)
}

/// A running nginx edge in a temporary state directory.
pub struct Edge {
    pub state: tempfile::TempDir,
    pub addr: SocketAddr,
    pub nginx: Process,
}

impl Edge {
    /// Installs `model` with `nginx reload --install-only` and starts nginx in the foreground; `None` (a
    /// loud skip) when nginx is not installed locally.
    pub fn start(make_model: impl FnOnce(&Path, u16) -> Value) -> Option<Edge> {
        let nginx = require_tool("nginx")?;
        let state = tempfile::tempdir().unwrap();
        // Workers drop root privileges; they must be able to enter the directory.
        std::fs::set_permissions(
            state.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let port = free_port();
        let model = make_model(state.path(), port);
        let edge_state = state.path().to_path_buf();
        let model_file = write_model(&edge_state, &model);
        let (ok, _, stderr) = run_xtask(&[
            "nginx",
            "reload",
            "--prefix",
            edge_state.to_str().unwrap(),
            "--model",
            model_file.to_str().unwrap(),
            "--install-only",
        ]);
        assert!(ok, "install failed: {stderr}");
        let prefix = format!("{}/", edge_state.join("live").display());
        let process = Process::spawn(
            "nginx",
            nginx,
            &[
                "-e",
                "stderr",
                "-p",
                &prefix,
                "-c",
                "nginx.conf",
                "-g",
                "daemon off;",
            ],
            &[],
        );
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert!(
            wait_for_port(addr, Duration::from_secs(10)),
            "nginx did not listen on {addr}"
        );
        Some(Edge {
            state,
            addr,
            nginx: process,
        })
    }

    /// Applies a new model through `cargo xtask nginx reload --prefix` (render, check, swap, reload, verify).
    pub fn apply(&self, model: &Value) -> (bool, String) {
        let model_file = write_model(self.state.path(), model);
        let (ok, stdout, stderr) = run_xtask(&[
            "nginx",
            "reload",
            "--prefix",
            self.state.path().to_str().unwrap(),
            "--model",
            model_file.to_str().unwrap(),
            "--allow-unhealthy",
            "--json",
        ]);
        (ok, format!("{stdout}{stderr}"))
    }

    /// The JSON access log, one object per request.
    pub fn access_log(&self) -> Vec<Value> {
        let text =
            std::fs::read_to_string(self.state.path().join("logs/access.log")).unwrap_or_default();
        text.lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|err| panic!("bad log line {line}: {err}"))
            })
            .collect()
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[])
    }
}

impl Drop for Edge {
    /// SIGTERM first: the master then stops its workers (a SIGKILL would leave them orphaned).
    fn drop(&mut self) {
        if self.nginx.is_running() {
            self.nginx.signal(avalon_testkit::Signal::SIGTERM);
            self.nginx.wait_exit(Duration::from_secs(10));
        }
    }
}

fn write_model(state: &Path, model: &Value) -> PathBuf {
    let file = state.join(format!("model-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec_pretty(model).unwrap()).unwrap();
    file
}

/// A real avalon-api replica on a free loopback port, on its own embedded store.
pub struct ApiReplica {
    pub addr: String,
    pub process: Process,
    _data: tempfile::TempDir,
}

/// A service binary with a clean environment (nothing from the shell or CI leaks in) and its own data
/// and config directories.
fn spawn_service(name: &str, binary: &str, data: &Path, vars: &[(&str, &str)]) -> Process {
    let mut command = Command::new(avalon_testkit::service_binary(binary));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command.envs([
        ("APP_ENV", "development"),
        ("BIND_ADDRESS", "127.0.0.1"),
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "warn"),
        ("SHUTDOWN_DRAIN_DELAY", "0s"),
        // The edge's limits are under test; the API's own per-IP budget (100/min) would answer first.
        ("RATE_LIMIT_IP", "10000000"),
        ("RATE_LIMIT_USER", "10000000"),
    ]);
    command
        .env("DATA_DIR", data.join("data"))
        .env("CONFIG_DIR", data.join("config"));
    command.envs(vars.iter().copied());
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Process::spawn_command(name, command)
}

/// Waits until `GET /readyz` on `addr` answers 200.
fn wait_ready(name: &str, addr: &str) {
    let socket: SocketAddr = addr.parse().unwrap();
    assert!(
        wait_for_port(socket, Duration::from_secs(60)),
        "{name} did not listen on {addr}"
    );
    assert!(
        avalon_testkit::wait_until(Duration::from_secs(30), || {
            avalon_testkit::http_get(socket, "/readyz").is_ok_and(|(status, _)| status == 200)
        }),
        "{name} never became ready"
    );
}

pub fn start_api(name: &str) -> ApiReplica {
    let data = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let ws_port = free_port().to_string();
    let process = spawn_service(
        name,
        "avalon-api",
        data.path(),
        &[
            ("PORT", &port),
            ("WS_PORT", &ws_port),
            ("DEBUG_ENDPOINTS", "true"),
        ],
    );
    let addr = format!("127.0.0.1:{port}");
    wait_ready(name, &addr);
    ApiReplica {
        addr,
        process,
        _data: data,
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, Vec<String>>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .and_then(|values| values.first())
            .map(String::as_str)
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map_or(0, Vec::len)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }
}

/// One request on a fresh connection; panics on a transport error (see [`try_request`]).
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    try_request(addr, method, path, headers).unwrap_or_else(|err| panic!("{method} {path}: {err}"))
}

pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("incomplete response: {text:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {text:?}")))?;
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            headers
                .entry(name.trim().to_ascii_lowercase())
                .or_default()
                .push(value.trim().to_owned());
        }
    }
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.iter().any(|v| v.contains("chunked")))
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The security headers every response must carry.
pub fn assert_security_headers(response: &Response, context: &str) {
    for (name, expected) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("content-security-policy", "frame-ancestors 'none'"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(
            response.header(name),
            Some(expected),
            "{context}: {name} in {response:?}"
        );
        assert_eq!(
            response.header_count(name),
            1,
            "{context}: {name} sent once"
        );
    }
    assert!(
        response.header("x-request-id").is_some(),
        "{context}: x-request-id"
    );
    assert!(
        response
            .header("server")
            .is_none_or(|server| server == "nginx"),
        "{context}: server_tokens off hides the version: {:?}",
        response.header("server")
    );
}

/// An open WebSocket (or any upgraded connection) through the edge.
pub struct Tunnel {
    pub stream: TcpStream,
    pub response: Response,
}

/// Sends a WebSocket upgrade to `path`; returns the connection and the response head (101 when upgraded).
pub fn open_upgrade(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Tunnel {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let mut response = parse_response(&head).unwrap();
    if response.status != 101 {
        // An error page: read its body too — by its length when given, since nginx keeps the connection
        // open and reading to the end would block for the whole read timeout (which made callers retrying
        // within a deadline see one attempt only).
        let length = response
            .header("content-length")
            .and_then(|value| value.trim().parse::<usize>().ok());
        let mut rest = Vec::new();
        match length {
            Some(length) => {
                rest.resize(length, 0);
                let read = stream.read_exact(&mut rest);
                if read.is_err() {
                    rest.clear();
                }
            }
            None => {
                let _ = stream.read_to_end(&mut rest);
            }
        }
        response.body = String::from_utf8_lossy(&rest).into_owned();
    }
    Tunnel { stream, response }
}

impl Tunnel {
    /// Sends bytes and reads the echo back (the test upstream echoes after the upgrade).
    pub fn echo(&mut self, payload: &[u8]) -> std::io::Result<Vec<u8>> {
        self.stream.write_all(payload)?;
        let mut got = vec![0u8; payload.len()];
        self.stream.read_exact(&mut got)?;
        Ok(got)
    }
}

/// A tiny WebSocket stand-in upstream: answers upgrades with 101 and then echoes bytes; answers other
/// requests with 200 and a small JSON body. Records every request head it saw.
pub struct EchoUpstream {
    pub addr: String,
    pub heads: Arc<Mutex<Vec<String>>>,
    pub upgrades: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl EchoUpstream {
    pub fn start() -> EchoUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let upgrades = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (heads2, upgrades2, stop2) =
            (Arc::clone(&heads), Arc::clone(&upgrades), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (heads, upgrades) = (Arc::clone(&heads2), Arc::clone(&upgrades2));
                        std::thread::spawn(move || serve_echo(stream, &heads, &upgrades));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        EchoUpstream {
            addr,
            heads,
            upgrades,
            stop,
        }
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_echo(mut stream: TcpStream, heads: &Mutex<Vec<String>>, upgrades: &AtomicUsize) {
    stream.set_nonblocking(false).ok();
    stream.set_read_timeout(Some(Duration::from_secs(120))).ok();
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        heads.lock().unwrap().push(head.clone());
        if head.to_ascii_lowercase().contains("\r\nupgrade: websocket") {
            upgrades.fetch_add(1, Ordering::Relaxed);
            let _ = stream.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            );
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buffer) {
                if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                    return;
                }
            }
            return;
        }
        let body = r#"{"transport":"polling"}"#;
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Outcome counts of a bounded load loop.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub sent: usize,
    pub failed: usize,
    pub statuses: BTreeMap<u16, usize>,
    pub errors: Vec<String>,
}

/// `threads` clients each sending GET `path` until `stop` is set, `max_per_thread` requests are sent or
/// `max_time` passes. A request fails on a transport error or a 5xx.
pub fn run_load(
    addr: SocketAddr,
    path: &'static str,
    threads: usize,
    max_per_thread: usize,
    max_time: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<LoadReport> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + max_time;
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut report = LoadReport::default();
                    for _ in 0..max_per_thread {
                        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                            break;
                        }
                        report.sent += 1;
                        match try_request(addr, "GET", path, &[]) {
                            Ok(response) => {
                                *report.statuses.entry(response.status).or_default() += 1;
                                if response.status >= 500 {
                                    report.failed += 1;
                                    report
                                        .errors
                                        .push(format!("{} {}", response.status, response.body));
                                }
                            }
                            Err(err) => {
                                report.failed += 1;
                                report.errors.push(err.to_string());
                            }
                        }
                    }
                    report
                })
            })
            .collect();
        let mut total = LoadReport::default();
        for worker in workers {
            let report = worker.join().unwrap();
            total.sent += report.sent;
            total.failed += report.failed;
            for (status, count) in report.statuses {
                *total.statuses.entry(status).or_default() += count;
            }
            total.errors.extend(report.errors);
        }
        total
    })
}

/// A real avalon-ws (Socket.IO) replica on a free loopback port, on its embedded in-process store.
pub struct WsReplica {
    pub addr: String,
    pub process: Process,
    _data: tempfile::TempDir,
}

pub fn start_ws(name: &str) -> WsReplica {
    let data = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let api_port = free_port().to_string();
    let process = spawn_service(
        name,
        "avalon-ws",
        data.path(),
        &[
            ("WS_PORT", &port),
            ("PORT", &api_port),
            ("JWT_SECRET", "nginx-edge-tests-secret-0123456789abcdef"),
        ],
    );
    let addr = format!("127.0.0.1:{port}");
    wait_ready(name, &addr);
    WsReplica {
        addr,
        process,
        _data: data,
    }
}

impl Tunnel {
    /// Reads one unfragmented, unmasked server frame; returns (opcode, payload).
    pub fn read_frame(&mut self) -> std::io::Result<(u8, Vec<u8>)> {
        let mut head = [0u8; 2];
        self.stream.read_exact(&mut head)?;
        let opcode = head[0] & 0x0f;
        let len = match head[1] & 0x7f {
            126 => {
                let mut ext = [0u8; 2];
                self.stream.read_exact(&mut ext)?;
                usize::from(u16::from_be_bytes(ext))
            }
            127 => {
                let mut ext = [0u8; 8];
                self.stream.read_exact(&mut ext)?;
                usize::try_from(u64::from_be_bytes(ext)).unwrap()
            }
            short => usize::from(short),
        };
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload)?;
        Ok((opcode, payload))
    }

    /// Sends a masked text frame (clients must mask).
    pub fn send_text(&mut self, text: &str) -> std::io::Result<()> {
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        let payload = text.as_bytes();
        assert!(payload.len() < 126);
        let mut frame = vec![0x81, 0x80 | u8::try_from(payload.len()).unwrap()];
        frame.extend_from_slice(&mask);
        frame.extend(
            payload
                .iter()
                .enumerate()
                .map(|(i, byte)| byte ^ mask[i % 4]),
        );
        self.stream.write_all(&frame)
    }
}
