//! Helpers for tests that run real processes: the service binaries, nginx, redis-server, docker.
//!
//! A test that needs a tool calls [`require_tool`]; one that cannot run for another reason calls [`skip`] with a
//! stable id. Locally the test is skipped with a loud message; under `CI=true` it fails unless `.ci/skips.toml`
//! lists the id, because `.ci/run` installs every tool the suite needs (see [`skips`]).

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;

pub mod figures;
pub mod skips;
pub use skips::{in_ci, skip, try_skip};

/// The skip id of a missing program: `tool-<program>`.
pub fn tool_skip_id(tool: &str) -> String {
    format!("tool-{tool}")
}

/// The path of `tool` on PATH, or `None` after a loud skip (`tool-<tool>`; a panic under CI unless listed).
pub fn require_tool(tool: &str) -> Option<PathBuf> {
    if let Some(path) = which(tool) {
        return Some(path);
    }
    skip(
        &tool_skip_id(tool),
        &format!(
            "`{tool}` is not installed: run `bash scripts/ci/install-tools.sh` (CI does) to run this test"
        ),
    );
    None
}

pub fn which(tool: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A TCP port that was free a moment ago on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|err| panic!("no free port: {err}"))
}

/// `N` distinct free ports for a stack a test brings up minutes later, chosen with every listener open at
/// once (one `free_port()` after another can draw the same port twice) and below the kernel's ephemeral
/// range, so an outgoing connection in the meantime cannot take one (`free_port()` draws from that range).
pub fn free_ports<const N: usize>() -> [u16; N] {
    const FIRST: u16 = 20_000;
    const LAST: u16 = 32_000;
    let span = u32::from(LAST - FIRST);
    let start = std::process::id() % span;
    let mut listeners: Vec<TcpListener> = Vec::with_capacity(N);
    for offset in 0..span {
        if listeners.len() == N {
            break;
        }
        let port = FIRST + u16::try_from((start + offset * 7) % span).unwrap_or(0);
        if let Ok(listener) = TcpListener::bind(("0.0.0.0", port)) {
            listeners.push(listener);
        }
    }
    assert_eq!(listeners.len(), N, "no {N} free ports in {FIRST}-{LAST}");
    std::array::from_fn(|i| {
        listeners[i]
            .local_addr()
            .map(|addr| addr.port())
            .unwrap_or_else(|err| panic!("no free port: {err}"))
    })
}

/// A child process whose stdout and stderr lines are captured (and echoed, prefixed, for test output).
pub struct Process {
    pub name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    status: Option<ExitStatus>,
}

impl Process {
    pub fn spawn(
        name: &str,
        program: impl AsRef<Path>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Process {
        let mut command = Command::new(program.as_ref());
        command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Process::spawn_command(name, command)
    }

    pub fn spawn_command(name: &str, mut command: Command) -> Process {
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            capture(name, out, Arc::clone(&lines));
        }
        if let Some(err) = child.stderr.take() {
            capture(name, err, Arc::clone(&lines));
        }
        Process {
            name: name.to_owned(),
            child,
            lines,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line printed so far.
    pub fn output(&self) -> Vec<String> {
        self.lines
            .lock()
            .map(|lines| lines.clone())
            .unwrap_or_default()
    }

    pub fn output_contains(&self, needle: &str) -> bool {
        self.output().iter().any(|line| line.contains(needle))
    }

    /// Waits until a printed line contains `needle`.
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.output_contains(needle))
    }

    pub fn signal(&self, signal: Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
        if let Err(err) = nix::sys::signal::kill(pid, signal) {
            panic!("cannot send {signal} to {}: {err}", self.name);
        }
    }

    /// The exit status if the process ended within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.status.is_none() && Instant::now() < deadline {
            self.status = self.child.try_wait().ok().flatten();
            if self.status.is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.status = self.status.or_else(|| self.child.try_wait().ok().flatten());
        self.status.is_none()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn capture(name: &str, stream: impl Read + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    let name = name.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            eprintln!("[{name}] {line}");
            if let Ok(mut lines) = lines.lock() {
                lines.push(line);
            }
        }
    });
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> bool {
    wait_until(timeout, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    })
}

/// A private redis-server on a free loopback port, without persistence; `None` (a loud skip, a panic under
/// CI=true) when redis-server is not installed. Stopped when dropped.
pub struct RedisServer {
    pub port: u16,
    pub process: Process,
}

impl RedisServer {
    pub fn start() -> Option<RedisServer> {
        let binary = require_tool("redis-server")?;
        let port = free_port();
        let port_text = port.to_string();
        // Nothing is written with saving and the AOF off; the directory only keeps redis out of the cwd.
        let dir = std::env::temp_dir().display().to_string();
        let process = Process::spawn(
            &format!("redis:{port}"),
            binary,
            &[
                "--port",
                &port_text,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &dir,
            ],
            &[],
        );
        assert!(
            wait_for_port(
                SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_secs(10)
            ),
            "redis-server did not start"
        );
        Some(RedisServer { port, process })
    }

    /// `redis://127.0.0.1:<port>/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// A minimal blocking HTTP/1.1 GET (no client crate needed): returns the status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, None)
}

/// A minimal blocking HTTP/1.1 POST of a JSON body: returns the status code and body.
pub fn http_post_json(addr: SocketAddr, path: &str, json: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "POST", path, Some(json))
}

fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> std::io::Result<(u16, String)> {
    use std::io::Write;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = match json {
        Some(json) => format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        ),
        None => "\r\n".to_owned(),
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{body}"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The workspace root (testkit sits at `services/testkit`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// Path to a freshly built debug service binary (`avalon-api` or `avalon-ws`), for tests outside that
/// binary's own package. Builds both binaries once per test process; cargo is idle while tests run, so the
/// nested build does not deadlock on the target-dir lock.
pub fn service_binary(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let root = workspace_root();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        eprintln!("$ {cargo} build --package avalon-api --package avalon-ws");
        let status = Command::new(cargo)
            .args(["build", "--package", "avalon-api", "--package", "avalon-ws"])
            .current_dir(&root)
            .status()
            .map_err(|err| err.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("cargo build failed: {status}"))
        }
    });
    if let Err(err) = built {
        panic!("cannot build the service binaries: {err}");
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    target.join("debug").join(name)
}
